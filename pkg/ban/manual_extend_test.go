package ban_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/banstate"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// noTTL is a Fake whose Extend, like iptables', does nothing: a ban the
// backend lost stays lost by an extend.
type noTTL struct{ *firewall.Fake }

func (noTTL) Extend([]firewall.Entry) error { return nil }

// block ban of an address banned already is an extend, and an extend
// checks what the backends hold (as one from an alert does): a ban another
// tool removed (iptables -F) is put back at once, not at the next
// periodic check, and the decision does not claim a rule that is gone.
func TestManualExtendChecks(t *testing.T) {
	fake := firewall.NewFake("iptables")
	m := ban.NewManager(ban.Policy{MinLevel: 9, Timeout: time.Hour}, []firewall.Backend{noTTL{fake}}, banstate.NewMemory())
	m.SetVerifyEvery(time.Minute)
	if _, err := m.Reconcile(t0); err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("192.0.2.1")
	if _, err := m.Manual(t0.Add(2*time.Second), a, time.Hour); err != nil {
		t.Fatal(err)
	}
	fake.Lose(a)
	ds, err := m.Manual(t0.Add(4*time.Second), a, time.Hour)
	if err != nil || len(ds) != 1 || ds[0].Ban.Action != "extend" {
		t.Fatalf("%+v %v", ds, err)
	}
	if !fake.Has(a) {
		t.Errorf("the ban the backend lost was not put back by the extend (decision claims %v)", ds[0].Ban.Backends)
	}
}
