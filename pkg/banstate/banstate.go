// Package banstate keeps block's bans and offense counts in a bbolt file:
// one bucket of live bans (address -> the ban as a JSON object) and one of
// offense counts (address -> decimal count, then, once the address's last
// ban has ended, a space and when it ended in RFC 3339). bbolt commits are atomic and
// fsynced, so the file survives kill -9 and power loss without corruption.
package banstate

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/record"
)

var (
	bansBucket     = []byte("bans")
	offensesBucket = []byte("offenses")
)

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("in use by another block process")

// Store is a ban.Store in a bbolt file.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens (creating if needed) the state file at path, waiting at most
// wait for another process to release it.
func Open(path string, wait time.Duration) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: wait})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("state %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bansBucket, offensesBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Load implements ban.Store. Entries it cannot read are reported together
// in the error after everything readable was loaded.
func (s *Store) Load() ([]ban.Ban, map[netip.Addr]ban.Offense, error) {
	var bans []ban.Ban
	offenses := map[netip.Addr]ban.Offense{}
	var bad []error
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bansBucket).ForEach(func(k, v []byte) error {
			b, err := decode(k, v)
			if err != nil {
				bad = append(bad, err)
				return nil
			}
			bans = append(bans, b)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(offensesBucket).ForEach(func(k, v []byte) error {
			a, err := netip.ParseAddr(string(k))
			o, ok := decodeOffense(v)
			if err != nil || !ok {
				bad = append(bad, fmt.Errorf("offense %q: unreadable", k))
				return nil
			}
			offenses[a] = o
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", s.path, err)
	}
	if len(bad) > 0 {
		return bans, offenses, fmt.Errorf("%s: %w", s.path, errors.Join(bad...))
	}
	return bans, offenses, nil
}

func decode(k, v []byte) (ban.Ban, error) {
	var r record.Ban
	if err := record.Unmarshal(v, &r); err != nil {
		return ban.Ban{}, fmt.Errorf("ban %q: %w", k, err)
	}
	a, err := netip.ParseAddr(string(k))
	if err != nil {
		return ban.Ban{}, fmt.Errorf("ban %q: %w", k, err)
	}
	until, err := time.Parse(time.RFC3339Nano, r.Until)
	if err != nil {
		return ban.Ban{}, fmt.Errorf("ban %q: %w", k, err)
	}
	return ban.Ban{Addr: a, Until: until, Timeout: time.Duration(r.TimeoutS) * time.Second,
		Offense: r.Offense, Backends: r.Backends, AlertID: r.AlertID, RuleID: r.RuleID, Reason: r.Reason}, nil
}

// decodeOffense reads "COUNT" or "COUNT ENDED".
func decodeOffense(v []byte) (ban.Offense, bool) {
	n, t, hasEnd := strings.Cut(string(v), " ")
	count, err := strconv.Atoi(n)
	if err != nil {
		return ban.Offense{}, false
	}
	o := ban.Offense{Count: count}
	if hasEnd {
		if o.Ended, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return ban.Offense{}, false
		}
	}
	return o, true
}

func encodeOffense(o ban.Offense) []byte {
	v := strconv.AppendInt(nil, int64(o.Count), 10)
	if !o.Ended.IsZero() {
		v = append(v, ' ')
		v = o.Ended.UTC().AppendFormat(v, time.RFC3339Nano)
	}
	return v
}

func encode(b ban.Ban) ([]byte, error) {
	return record.Marshal(record.Ban{Action: "add", IP: b.Addr.String(), Until: b.Until.Format(time.RFC3339Nano),
		TimeoutS: int64(b.Timeout / time.Second), Offense: b.Offense, Backends: b.Backends,
		AlertID: b.AlertID, RuleID: b.RuleID, Reason: b.Reason})
}

// Save implements ban.Store.
func (s *Store) Save(put []ban.Ban, del []netip.Addr, offenses map[netip.Addr]ban.Offense) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bb, ob := tx.Bucket(bansBucket), tx.Bucket(offensesBucket)
		for _, b := range put {
			v, err := encode(b)
			if err != nil {
				return err
			}
			if err := bb.Put([]byte(b.Addr.String()), v); err != nil {
				return err
			}
		}
		for _, a := range del {
			if err := bb.Delete([]byte(a.String())); err != nil {
				return err
			}
		}
		for a, o := range offenses {
			if err := ob.Put([]byte(a.String()), encodeOffense(o)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Forget implements ban.Store.
func (s *Store) Forget(addrs []netip.Addr) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		ob := tx.Bucket(offensesBucket)
		for _, a := range addrs {
			if err := ob.Delete([]byte(a.String())); err != nil {
				return err
			}
		}
		return nil
	})
}

// Memory is a ban.Store in memory, for tests and --state "".
type Memory struct {
	bans     map[netip.Addr]ban.Ban
	offenses map[netip.Addr]ban.Offense
	// Saves counts the Save calls.
	Saves int
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{bans: map[netip.Addr]ban.Ban{}, offenses: map[netip.Addr]ban.Offense{}}
}

// Load implements ban.Store.
func (m *Memory) Load() ([]ban.Ban, map[netip.Addr]ban.Offense, error) {
	var out []ban.Ban
	for _, b := range m.bans {
		out = append(out, b)
	}
	off := map[netip.Addr]ban.Offense{}
	for a, n := range m.offenses {
		off[a] = n
	}
	return out, off, nil
}

// Save implements ban.Store.
func (m *Memory) Save(put []ban.Ban, del []netip.Addr, offenses map[netip.Addr]ban.Offense) error {
	m.Saves++
	for _, b := range put {
		m.bans[b.Addr] = b
	}
	for _, a := range del {
		delete(m.bans, a)
	}
	for a, n := range offenses {
		m.offenses[a] = n
	}
	return nil
}

// Forget implements ban.Store.
func (m *Memory) Forget(addrs []netip.Addr) error {
	for _, a := range addrs {
		delete(m.offenses, a)
	}
	return nil
}
