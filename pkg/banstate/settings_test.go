package banstate

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
)

func TestSettingsAndReason(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Setting("block"); v != nil || err != nil {
		t.Fatalf("fresh file: %q %v", v, err)
	}
	b := ban.Ban{Net: ban.Single(netip.MustParseAddr("192.0.2.1")), Until: time.Now().Add(time.Hour), Timeout: time.Hour, Offense: 1, Reason: "manual"}
	if err := s.Save([]ban.Ban{b}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting("block", []byte(`{"ar_log":"/x"}`)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, time.Second); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Setting("block"); string(v) != `{"ar_log":"/x"}` || err != nil {
		t.Fatalf("after reopen: %q %v", v, err)
	}
	if bans, _, err := s.Load(); err != nil || len(bans) != 1 || bans[0].Reason != "manual" {
		t.Fatalf("ban's reason not kept: %+v %v", bans, err)
	}
}
