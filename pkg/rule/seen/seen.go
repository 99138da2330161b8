// Package seen remembers which keys have been seen before, for
// first-time-seen (if_fts) rules. A key is kept as a 64-bit FNV-1a hash
// (8 bytes; the odds that any two of a million keys share a hash are
// about 1 in 37 million), in two generations so memory stays bounded: when
// the current generation holds half the cap it becomes the old one and
// the previous old one is dropped; a key found in the old generation moves
// back to the current one. So the keys forgotten first are those not seen
// for longest. A Set persists to a file.
package seen

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Hash is an FNV-1a hash under construction.
type Hash uint64

// NewHash starts a hash.
func NewHash() Hash { return 14695981039346656037 }

// Add mixes b into h, followed by a separator byte so ("ab","c") and
// ("a","bc") differ.
func (h Hash) Add(b []byte) Hash {
	for _, c := range b {
		h ^= Hash(c)
		h *= 1099511628211
	}
	h ^= 0xff
	h *= 1099511628211
	return h
}

// Set is a bounded set of key hashes.
type Set struct {
	cur, old map[uint64]struct{}
	max      int
	dirty    bool
}

// New returns a set that keeps at most about max keys (at least 2).
func New(max int) *Set {
	if max < 2 {
		max = 2
	}
	return &Set{cur: map[uint64]struct{}{}, old: map[uint64]struct{}{}, max: max}
}

// Len returns the number of keys held.
func (s *Set) Len() int { return len(s.cur) + len(s.old) }

// FirstTime records h and reports whether it was new.
func (s *Set) FirstTime(h Hash) bool {
	k := uint64(h)
	if _, ok := s.cur[k]; ok {
		return false
	}
	_, wasOld := s.old[k]
	if wasOld {
		delete(s.old, k)
	}
	if len(s.cur) >= s.max/2 {
		s.old = s.cur
		s.cur = make(map[uint64]struct{}, s.max/8)
	}
	s.cur[k] = struct{}{}
	s.dirty = true
	return !wasOld
}

const magic = "quietwatch-seen-1\n"

// Load reads a set saved by Save from path; a missing file is an empty
// set. A file that is not a first-time-seen file gives a nil set and an
// error. A damaged one (cut short, or a read error part way) gives the keys
// read before the damage and an error saying so: the set is marked changed,
// so the next Save repairs the file instead of the damage costing every
// key.
func Load(path string, max int) (*Set, error) {
	s := New(max)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(r, head); err != nil || string(head) != magic {
		return nil, fmt.Errorf("%s: not a first-time-seen file", path)
	}
	var buf [8]byte
	for n := 0; ; n++ {
		k, err := io.ReadFull(r, buf[:])
		if err == io.EOF {
			break
		}
		if err != nil {
			s.dirty = true
			if err == io.ErrUnexpectedEOF {
				return s, fmt.Errorf("%s: truncated (%d stray bytes after %d keys)", path, k, n)
			}
			return s, fmt.Errorf("%s: after %d keys: %w", path, n, err)
		}
		s.FirstTime(Hash(binary.LittleEndian.Uint64(buf[:])))
	}
	s.dirty = false
	return s, nil
}

// Save writes the set to path atomically (a temporary file renamed over
// it), oldest generation first so a reload keeps the order of forgetting.
// It does nothing when nothing changed since the last Load or Save.
func (s *Set) Save(path string) error {
	if !s.dirty {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".seen-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	w.WriteString(magic)
	var buf [8]byte
	for _, gen := range []map[uint64]struct{}{s.old, s.cur} {
		for k := range gen {
			binary.LittleEndian.PutUint64(buf[:], k)
			w.Write(buf[:])
		}
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	s.dirty = false
	return nil
}
