package ban_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/banstate"
	"github.com/quietwatch/quietwatch/pkg/firewall"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// failOnce makes f's next add fail, and only that one.
func failOnce(f *firewall.Fake) {
	failed := false
	f.Fail = func(kind string) error {
		if kind == "add" && !failed {
			failed = true
			return errors.New("xtables lock")
		}
		return nil
	}
}

// A backend that failed to add a ban is not claimed in the decision and
// gets the add again with the next alert for the address (the extend).
func TestAddFailedRetriedOnExtend(t *testing.T) {
	good, bad := firewall.NewFake("good"), firewall.NewFake("bad")
	store := banstate.NewMemory()
	m := ban.NewManager(ban.Policy{MinLevel: 9, Timeout: 5 * time.Minute}, []firewall.Backend{bad, good}, store)
	if _, err := m.Reconcile(t0); err != nil {
		t.Fatal(err)
	}
	failOnce(bad)
	good.Calls()
	atk := netip.MustParseAddr("192.0.2.241")
	ds, err := m.Handle(t0, []*record.Alert{alert("192.0.2.241", 10, "1.1")})
	if err == nil || !strings.Contains(err.Error(), "bad: add: xtables lock") {
		t.Fatalf("err = %v", err)
	}
	if b := ds[0].Ban; b.Action != "add" || !slices.Equal(b.Backends, []string{"good"}) || !slices.Equal(b.Pending, []string{"bad"}) {
		t.Fatalf("add decision: %+v", b)
	}
	if bad.Has(atk) || !good.Has(atk) {
		t.Fatal("fakes after the failed add")
	}
	bad.Calls()
	ds, err = m.Handle(t0.Add(time.Second), []*record.Alert{alert("192.0.2.241", 10, "1.2")})
	if err != nil {
		t.Fatal(err)
	}
	if b := ds[0].Ban; b.Action != "extend" || !slices.Equal(b.Backends, []string{"bad", "good"}) || len(b.Pending) != 0 {
		t.Fatalf("extend decision: %+v", b)
	}
	if c := bad.Calls(); !slices.Equal(c, []string{"add 192.0.2.241"}) || !bad.Has(atk) || bad.TTL(atk) != 5*time.Minute {
		t.Fatalf("not retried on extend: calls %q", c)
	}
	if c := good.Calls(); !slices.Equal(c, []string{"add 192.0.2.241", "extend 192.0.2.241"}) {
		t.Fatalf("good: calls %q", c)
	}
	bans, _, _ := store.Load()
	if len(bans) != 1 || !slices.Equal(bans[0].Backends, []string{"bad", "good"}) {
		t.Fatalf("state: %+v", bans)
	}
}

// Without another alert, the reaper retries the add.
func TestAddFailedRetriedByReaper(t *testing.T) {
	r := newRig(t, ban.Policy{})
	failOnce(r.fake)
	atk := netip.MustParseAddr("192.0.2.241")
	ds, _ := r.m.Handle(t0, []*record.Alert{alert("192.0.2.241", 10, "1.1")})
	if b := ds[0].Ban; len(b.Backends) != 0 || !slices.Equal(b.Pending, []string{"fake"}) {
		t.Fatalf("add decision: %+v", b)
	}
	next, ok := r.m.NextExpiry()
	if !ok || !next.Equal(t0.Add(ban.RetryDelay)) {
		t.Fatalf("next wake %v %v, want the retry at %v", next, ok, t0.Add(ban.RetryDelay))
	}
	ds, err := r.m.Reap(next)
	if err != nil || len(ds) != 0 {
		t.Fatalf("reap: %v %v", actions(ds), err)
	}
	if !r.fake.Has(atk) || r.fake.TTL(atk) != 5*time.Minute-ban.RetryDelay {
		t.Fatalf("not retried by the reaper: has %v ttl %v", r.fake.Has(atk), r.fake.TTL(atk))
	}
	if b := r.m.Bans()[0]; !slices.Equal(b.Backends, []string{"fake"}) || len(b.Pending) != 0 {
		t.Fatalf("ban after retry: %+v", b)
	}
	if next, _ := r.m.NextExpiry(); !next.Equal(t0.Add(5 * time.Minute)) {
		t.Fatalf("next wake after retry %v", next)
	}
}

// A backend that keeps failing is retried less and less often.
func TestAddRetryBacksOff(t *testing.T) {
	r := newRig(t, ban.Policy{Timeout: time.Hour})
	r.fake.Fail = func(kind string) error {
		if kind == "add" {
			return errors.New("set is full")
		}
		return nil
	}
	r.m.Handle(t0, []*record.Alert{alert("192.0.2.241", 10, "1.1")})
	now := t0
	var gaps []time.Duration
	for range 4 {
		next, _ := r.m.NextExpiry()
		gaps = append(gaps, next.Sub(now))
		now = next
		if _, err := r.m.Reap(now); err == nil {
			t.Fatal("retry did not report the failure")
		}
	}
	if !slices.Equal(gaps, []time.Duration{ban.RetryDelay, 2 * ban.RetryDelay, 4 * ban.RetryDelay, 8 * ban.RetryDelay}) {
		t.Fatalf("retry gaps %v", gaps)
	}
}
