package ban_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/record"
)

func TestManual(t *testing.T) {
	r := newRig(t, ban.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}})
	r.m.SetOwn([]netip.Addr{netip.MustParseAddr("198.51.100.44")})
	for _, c := range []struct{ addr, reason string }{
		{"203.0.113.12", "allowlisted"}, {"198.51.100.44", "own-address"}, {"127.0.0.1", "loopback"},
		{"::1", "loopback"}, {"0.0.0.0", "unspecified"}, {"fe80::1", "link-local"}, {"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
	} {
		ds, err := r.m.Manual(t0, netip.MustParseAddr(c.addr), 0)
		var re *ban.RefusedError
		if !errors.As(err, &re) || re.Reason != c.reason || ds != nil {
			t.Errorf("%s: %v %v, want refused: %s", c.addr, ds, err, c.reason)
		}
	}
	if calls := r.fake.Calls(); len(calls) != 0 || r.store.Saves != 0 {
		t.Fatalf("a refused ban changed something: %q, %d saves", calls, r.store.Saves)
	}

	atk := netip.MustParseAddr("192.0.2.241")
	ds, err := r.m.Manual(t0, atk, 0)
	want := record.Ban{Action: "add", IP: "192.0.2.241", Until: "2026-05-17T21:16:31.000000+0000", TimeoutS: 300,
		Offense: 1, Backends: []string{"fake"}, Reason: "manual"}
	if err != nil || len(ds) != 1 || !equalBan(ds[0].Ban, want) {
		t.Fatalf("manual ban: %+v %v, want %+v", ds, err, want)
	}
	if !r.fake.Has(atk) || r.fake.TTL(atk) != 5*time.Minute {
		t.Fatalf("backend: %q", r.fake.Calls())
	}
	bans, offenses, _ := r.store.Load()
	if len(bans) != 1 || bans[0].Reason != "manual" || offenses[ban.Single(atk)].Count != 1 {
		t.Fatalf("store: %+v %+v", bans, offenses)
	}
	// Banned already: the timer restarts with the given length.
	ds, err = r.m.Manual(t0.Add(time.Minute), atk, time.Hour)
	if err != nil || ds[0].Ban.Action != "extend" || ds[0].Ban.TimeoutS != 3600 || ds[0].Ban.Offense != 1 ||
		r.fake.TTL(atk) != time.Hour || !slices.Contains(r.fake.Calls(), "extend 192.0.2.241") {
		t.Fatalf("second manual ban: %+v %v %q", ds, err, r.fake.Calls())
	}
	// An alert extends it: it is the alert's ban now.
	ds = r.handle(t, t0.Add(2*time.Minute), alert("192.0.2.241", 10, "1.1"))
	if ds[0].Ban.Action != "extend" || ds[0].Ban.RuleID != "300011" || r.m.Bans()[0].Reason != "" {
		t.Fatalf("alert after a manual ban: %+v, %+v", ds[0].Ban, r.m.Bans())
	}
	// Lifted, then banned by hand again: a repeat offense, but of the
	// given length (no escalation).
	r.m.Unban(t0.Add(3*time.Minute), ban.Single(atk))
	r.handle(t, t0.Add(4*time.Minute), alert("192.0.2.241", 10, "1.2"))
	r.m.Reap(t0.Add(time.Hour))
	ds, _ = r.m.Manual(t0.Add(2*time.Hour), atk, 10*time.Second)
	if ds[0].Ban.Action != "add" || ds[0].Ban.Offense != 2 || ds[0].Ban.TimeoutS != 10 {
		t.Fatalf("repeat manual ban: %+v", ds[0].Ban)
	}
}

// A backend that fails a manual ban leaves it pending, retried by Reap.
func TestManualPending(t *testing.T) {
	r := newRig(t, ban.Policy{})
	fail := true
	r.fake.Fail = func(kind string) error {
		if kind == "add" && fail {
			return errors.New("xtables lock")
		}
		return nil
	}
	atk := netip.MustParseAddr("2001:db8::241")
	ds, err := r.m.Manual(t0, atk, time.Hour)
	if err == nil || len(ds) != 1 || len(ds[0].Ban.Backends) != 0 || !slices.Equal(ds[0].Ban.Pending, []string{"fake"}) {
		t.Fatalf("%+v %v", ds, err)
	}
	fail = false
	if _, err := r.m.Reap(t0.Add(ban.RetryDelay)); err != nil || !r.fake.Has(atk) {
		t.Fatalf("retry: %v %q", err, r.fake.Calls())
	}
	if b := r.m.Bans()[0]; len(b.Pending) != 0 || !slices.Equal(b.Backends, []string{"fake"}) {
		t.Fatalf("after retry: %+v", b)
	}
}
