package banstate

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quietwatch/quietwatch/pkg/ban"
)

// goodFile writes a state file with n bans and returns its bytes.
func goodFile(t testing.TB, dir string, n int) []byte {
	t.Helper()
	path := filepath.Join(dir, "good.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var bans []ban.Ban
	off := map[netip.Prefix]ban.Offense{}
	for i := range n {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		bans = append(bans, ban.Ban{Net: ban.Single(a), Until: until, Timeout: time.Hour, Offense: 1, Backends: []string{"ipset"}, AlertID: fmt.Sprint(i)})
		off[ban.Single(a)] = ban.Offense{Count: 1}
	}
	if err := s.Save(bans, nil, off); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	return b
}

// Damaged state files (the three cases and more) never panic or
// fault: Open moves them aside, keeps what it could read, and the new
// store works.
func TestDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	good := goodFile(t, dir, 600)
	page := 4096
	zero := func(b []byte, from, n int) []byte {
		c := append([]byte(nil), b...)
		for i := from; i < from+n && i < len(c); i++ {
			c[i] = 0
		}
		return c
	}
	cases := map[string][]byte{
		"half":        good[:len(good)/2],
		"one page":    good[:page],
		"zeroed page": zero(good, 4*page, page),
		"zeroed area": zero(good, 2*page, len(good)-3*page),
		"zeroed meta": zero(zero(good, 0, 100), page, 100),
		"text":        []byte("this is not a state file\n"),
		"last page":   zero(good, len(good)-page, page),
	}
	for i := 2; i*page < len(good)/2; i += 3 {
		cases[fmt.Sprintf("page %d", i)] = zero(good, i*page, page)
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "block.db")
			os.WriteFile(path, data, 0o600)
			s, err := Open(path, time.Second)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			bans, _, lerr := s.Load()
			if s.Damage == "" {
				// Still readable: what it holds loads.
				if lerr != nil {
					t.Fatalf("no damage reported, but load: %v", lerr)
				}
				return
			}
			if !strings.Contains(s.Damage, "moved to "+path+".damaged-") || strings.Contains(s.Damage, "\n") {
				t.Errorf("damage: %q", s.Damage)
			}
			if m, _ := filepath.Glob(path + ".damaged-*"); len(m) != 1 {
				t.Errorf("moved aside: %v", m)
			}
			if !s.New || lerr != nil {
				t.Errorf("new %v, load error %v", s.New, lerr)
			}
			if err := s.Save([]ban.Ban{{Net: ban.Single(netip.MustParseAddr("192.0.2.1")), Until: time.Now(), Offense: 1}}, nil, nil); err != nil {
				t.Fatal(err)
			}
			after, _, err := s.Load()
			if err != nil || len(after) != len(bans)+1 {
				t.Errorf("after save: %d bans (had %d), %v", len(after), len(bans), err)
			}
			t.Logf("%s", s.Damage)
		})
	}
}

// A damaged file another process holds is left alone.
func TestDamagedButLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "block.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt(make([]byte, 8192), 0)
	f.Close()
	if _, err := Open(path, 20*time.Millisecond); err == nil || !strings.Contains(err.Error(), ErrLocked.Error()) {
		t.Fatalf("open: %v", err)
	}
	if m, _ := filepath.Glob(path + ".damaged-*"); len(m) != 0 {
		t.Errorf("moved aside: %v", m)
	}
}

// A file bbolt reads fine whose entries do not decode (written by hand, or
// by a broken version) is damage too: what decodes is kept, the file moved
// aside, and the new store loads without error.
func TestUndecodableEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "block.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	good := ban.Ban{Net: ban.Single(netip.MustParseAddr("192.0.2.1")), Until: time.Now().Add(time.Hour), Timeout: time.Hour, Offense: 1}
	if err := s.Save([]ban.Ban{good}, nil, nil); err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(tx *bolt.Tx) error {
		tx.Bucket(bansBucket).Put([]byte("192.0.2.2"), []byte("{not json"))
		return tx.Bucket(offensesBucket).Put([]byte("x"), []byte("y"))
	})
	s.Close()
	s, err = Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bans, _, err := s.Load()
	if err != nil || len(bans) != 1 || bans[0].Net != good.Net || !strings.Contains(s.Damage, "1 bans and 0 offense counts recovered") {
		t.Fatalf("%v %v %q", bans, err, s.Damage)
	}
}
