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

func reported(m *ban.Manager) *[]string {
	var lines []string
	m.SetReport(func(s string) { lines = append(lines, s) })
	return &lines
}

// A new (empty) store does not lift the bans the backends hold: they are
// adopted, with the backend's own timeout where it has one, else for the
// first timeout; refused addresses are not adopted.
func TestAdoptWhenStoreEmpty(t *testing.T) {
	timed, plain := firewall.NewFake("ipset"), firewall.NewFake("iptables")
	a, b, own := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::9"), netip.MustParseAddr("198.51.100.44")
	timed.Add([]firewall.Entry{{Net: ban.Single(a), TTL: 101 * time.Second}})
	plain.Add([]firewall.Entry{{Net: ban.Single(a)}, {Net: ban.Single(b)}, {Net: ban.Single(own)}})
	store := banstate.NewMemory()
	m := ban.NewManager(ban.Policy{MinLevel: 9, Timeout: time.Hour}, []firewall.Backend{timed, plain}, store)
	m.SetOwn([]netip.Addr{own})
	lines := reported(m)
	ds, err := m.Reconcile(t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(ds); got != "add 192.0.2.1 adopted; add 2001:db8::9 adopted" {
		t.Fatalf("decisions: %s", got)
	}
	if ds[0].Ban.TimeoutS != 100 || ds[1].Ban.TimeoutS != 3600 || !slices.Equal(ds[0].Ban.Backends, []string{"ipset", "iptables"}) {
		t.Errorf("adopted: %+v / %+v", ds[0].Ban, ds[1].Ban)
	}
	want := "adopted 2 bans found in the firewall, as the state holds no bans (1 for the time their kernel timeout had left, 1 with none of their own for 1h0m0s); 1 more removed (addresses never banned: own, allow-listed or special)"
	if !slices.Equal(*lines, []string{want}) {
		t.Errorf("reported %q", *lines)
	}
	for _, f := range []*firewall.Fake{timed, plain} {
		if !f.Has(a) || !f.Has(b) || f.Has(own) {
			t.Errorf("%s after reconcile: %v %v %v", f.Name(), f.Has(a), f.Has(b), f.Has(own))
		}
	}
	bans, _, _ := store.Load()
	if len(bans) != 2 || m.Len() != 2 {
		t.Fatalf("store holds %d bans, manager %d", len(bans), m.Len())
	}
	// Adopted bans end like any other.
	ds, _ = m.Reap(t0.Add(100 * time.Second))
	if actions(ds) != "delete 192.0.2.1 expired" {
		t.Errorf("reap: %s", actions(ds))
	}
}

// A store that holds bans removes unknown ones (a crash between the
// backend and the save), and says how many.
func TestUnknownRemovedAndReported(t *testing.T) {
	store := banstate.NewMemory()
	store.Save([]ban.Ban{{Net: ban.Single(netip.MustParseAddr("192.0.2.1")), Until: t0.Add(time.Hour), Timeout: time.Hour, Offense: 1}}, nil, nil)
	fake := firewall.NewFake("fake")
	fake.Add([]firewall.Entry{{Net: ban.Single(netip.MustParseAddr("192.0.2.7"))}, {Net: ban.Single(netip.MustParseAddr("192.0.2.8"))}})
	m := ban.NewManager(ban.Policy{MinLevel: 9, Timeout: time.Hour}, []firewall.Backend{fake}, store)
	lines := reported(m)
	ds, err := m.Reconcile(t0)
	if err != nil || len(ds) != 0 {
		t.Fatalf("%s %v", actions(ds), err)
	}
	if len(*lines) != 1 || !strings.HasPrefix((*lines)[0], "removed 2 bans of ours that the state does not know") {
		t.Errorf("reported %q", *lines)
	}
	if l, _ := fake.List(); len(l) != 1 {
		t.Errorf("backend holds %v", l)
	}
	// AdoptUnknown (a damaged state) adopts them instead.
	fake.Add([]firewall.Entry{{Net: ban.Single(netip.MustParseAddr("192.0.2.7"))}})
	m = ban.NewManager(ban.Policy{MinLevel: 9, Timeout: time.Hour}, []firewall.Backend{fake}, store)
	m.AdoptUnknown("the state file was damaged")
	lines = reported(m)
	ds, _ = m.Reconcile(t0)
	if actions(ds) != "add 192.0.2.7 adopted" || len(*lines) != 1 || !strings.Contains((*lines)[0], "as the state file was damaged") {
		t.Errorf("%s %q", actions(ds), *lines)
	}
}

// Bans lost from a backend (another tool flushed it) are put back by the
// periodic check in Reap and by the check after a batch of alerts, and
// each repair is reported.
func TestRepairLostBans(t *testing.T) {
	r := newRig(t, ban.Policy{Timeout: time.Hour})
	r.m.SetVerifyEvery(5 * time.Second)
	lines := reported(r.m)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	r.handle(t, t0, alert("192.0.2.1", 10, "1"), alert("192.0.2.2", 10, "2"))
	r.fake.Lose(a, b)
	// The reaper wakes for the check, not only for expiries.
	next, ok := r.m.NextExpiry()
	if !ok || next != t0.Add(5*time.Second) {
		t.Fatalf("next wake-up %v %v", next, ok)
	}
	if ds, err := r.m.Reap(next); err != nil || len(ds) != 0 {
		t.Fatalf("reap: %s %v", actions(ds), err)
	}
	if !r.fake.Has(a) || !r.fake.Has(b) || r.fake.TTL(a) != time.Hour-5*time.Second {
		t.Errorf("not restored: %v %v %v", r.fake.Has(a), r.fake.Has(b), r.fake.TTL(a))
	}
	if !slices.Equal(*lines, []string{"fake: lost 2 bans: restored"}) {
		t.Errorf("reported %q", *lines)
	}
	// A batch of alerts is followed by a check (no wait for the next
	// periodic one).
	r.fake.Lose(a)
	r.handle(t, t0.Add(7*time.Second), alert("192.0.2.3", 10, "3"))
	if !r.fake.Has(a) || len(*lines) != 2 || (*lines)[1] != "fake: lost 1 bans: restored" {
		t.Errorf("not restored after a batch: %v %q", r.fake.Has(a), *lines)
	}
}

// A backend whose check fails is not claimed by new decisions (the bans
// are pending) until a check succeeds; then the pending adds are made.
func TestFailedCheckNotClaimed(t *testing.T) {
	r := newRig(t, ban.Policy{Timeout: time.Hour})
	r.m.SetVerifyEvery(5 * time.Second)
	broken := true
	r.fake.Fail = func(kind string) error {
		if kind == "repair" && broken {
			return errors.New("chain cannot be created")
		}
		return nil
	}
	ds, err := r.m.Handle(t0.Add(time.Second), []*record.Alert{alert("192.0.2.1", 10, "1")})
	if err == nil || !strings.Contains(err.Error(), "fake: check: chain cannot be created") {
		t.Fatalf("err %v", err)
	}
	if len(ds[0].Ban.Backends) != 0 || !slices.Equal(ds[0].Ban.Pending, []string{"fake"}) {
		t.Fatalf("decision claims %v pending %v", ds[0].Ban.Backends, ds[0].Ban.Pending)
	}
	ds, _ = r.m.Handle(t0.Add(3*time.Second), []*record.Alert{alert("192.0.2.2", 10, "2")})
	if len(ds[0].Ban.Backends) != 0 {
		t.Fatalf("second decision claims %v", ds[0].Ban.Backends)
	}
	broken = false
	next, _ := r.m.NextExpiry()
	if _, err := r.m.Reap(next); err != nil {
		t.Fatal(err)
	}
	for _, b := range r.m.Bans() {
		if !slices.Equal(b.Backends, []string{"fake"}) || len(b.Pending) != 0 {
			t.Errorf("after a good check: %+v", b)
		}
	}
}
