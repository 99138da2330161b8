package banstate

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quietwatch/quietwatch/pkg/ban"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2026, 5, 17, 21, 11, 31, 123456789, time.UTC)
	b1 := ban.Ban{Net: ban.Single(netip.MustParseAddr("192.0.2.1")), Until: until, Timeout: 5 * time.Minute, Offense: 2,
		Backends: []string{"ipset", "hosts-deny"}, AlertID: "1.7", RuleID: "300011"}
	b2 := ban.Ban{Net: ban.Single(netip.MustParseAddr("2001:db8::241")), Until: until.Add(time.Hour), Timeout: time.Hour, Offense: 1}
	if err := s.Save([]ban.Ban{b1, b2}, nil, map[netip.Prefix]ban.Offense{b1.Net: {Count: 2}, b2.Net: {Count: 1, Ended: until.Add(time.Minute).In(time.FixedZone("X", 3600))}}); err != nil {
		t.Fatal(err)
	}
	// A second process waits, then gives up with ErrLocked.
	if _, err := Open(path, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if err := s.Save(nil, []netip.Prefix{b2.Net}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bans, off, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(bans) != 1 {
		t.Fatalf("bans %+v", bans)
	}
	g := bans[0]
	if g.Net != b1.Net || !g.Until.Equal(until) || g.Timeout != b1.Timeout || g.Offense != 2 ||
		!slices.Equal(g.Backends, b1.Backends) || g.AlertID != "1.7" || g.RuleID != "300011" {
		t.Fatalf("loaded %+v, want %+v", g, b1)
	}
	if off[b1.Net] != (ban.Offense{Count: 2}) || off[b2.Net].Count != 1 || !off[b2.Net].Ended.Equal(until.Add(time.Minute)) {
		t.Fatalf("offenses %v", off)
	}
	if err := s.Forget([]netip.Prefix{b2.Net}); err != nil {
		t.Fatal(err)
	}
	if _, off, _ = s.Load(); len(off) != 1 {
		t.Fatalf("after forget: %v", off)
	}
	// A count written before end times were kept is a bare number.
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(offensesBucket).Put([]byte("192.0.2.9"), []byte("3")) })
	if err != nil {
		t.Fatal(err)
	}
	if _, off, err = s.Load(); err != nil || off[ban.Single(netip.MustParseAddr("192.0.2.9"))] != (ban.Offense{Count: 3}) {
		t.Fatalf("bare count: %v %v", off, err)
	}
}

// A ban of a network is kept under its network's text ("2001:db8::/64");
// bans of one address keep their plain-address keys, so a state file from
// before prefix bans loads as it did.
func TestPrefixRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("2001:db8::/64")
	one := ban.Single(netip.MustParseAddr("2001:db8::1:1"))
	until := time.Date(2026, 5, 17, 21, 11, 31, 0, time.UTC)
	put := []ban.Ban{{Net: p, Until: until, Timeout: time.Hour, Offense: 3}, {Net: one, Until: until, Timeout: time.Hour, Offense: 1}}
	if err := s.Save(put, nil, map[netip.Prefix]ban.Offense{p: {Count: 3}, one: {Count: 1}}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bansBucket).ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
	})
	if !slices.Equal(keys, []string{"2001:db8::/64", "2001:db8::1:1"}) {
		t.Fatalf("keys %q", keys)
	}
	s.Close()
	s, err = Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bans, off, err := s.Load()
	if err != nil || len(bans) != 2 || off[p].Count != 3 || off[one].Count != 1 {
		t.Fatalf("load: %+v %v %v", bans, off, err)
	}
	slices.SortFunc(bans, func(x, y ban.Ban) int { return x.Net.Addr().Compare(y.Net.Addr()) })
	if bans[0].Net != p || bans[0].Offense != 3 || bans[1].Net != one {
		t.Fatalf("load: %+v", bans)
	}
}
