package ban_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/banstate"
	"github.com/quietwatch/quietwatch/pkg/firewall"
	"github.com/quietwatch/quietwatch/pkg/record"
)

func TestForgetAfter(t *testing.T) {
	for _, c := range []struct {
		p    ban.Policy
		want time.Duration
	}{
		{ban.Policy{Timeout: 5 * time.Minute}, 24 * time.Hour},
		{ban.Policy{Timeout: 5 * time.Minute, Repeat: []time.Duration{30 * time.Minute, 24 * time.Hour}}, 48 * time.Hour},
		{ban.Policy{Timeout: 20 * time.Hour}, 40 * time.Hour},
	} {
		if got := c.p.ForgetAfter(); got != c.want {
			t.Errorf("%+v: %v, want %v", c.p, got, c.want)
		}
	}
}

// An offense count is forgotten ForgetAfter after the address's last ban
// ended (a flood of spoofed sources does not grow the books forever), and
// not while the address is banned or before that time.
func TestOffensesForgotten(t *testing.T) {
	store := banstate.NewMemory()
	p := ban.Policy{MinLevel: 9, Timeout: time.Minute, Repeat: []time.Duration{time.Hour}}
	m := ban.NewManager(p, []firewall.Backend{firewall.NewFake("fake")}, store)
	if _, err := m.Reconcile(t0); err != nil {
		t.Fatal(err)
	}
	forget := p.ForgetAfter() // 24 h
	var flood []*record.Alert
	for i := range 100 {
		flood = append(flood, alert(fmt.Sprintf("198.18.%d.%d", i/250, i%250+1), 10, "f"))
	}
	atk := netip.MustParseAddr("192.0.2.241")
	if _, err := m.Handle(t0, append(flood, alert("192.0.2.241", 10, "1"))); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reap(t0.Add(time.Minute)); err != nil || m.Len() != 0 {
		t.Fatalf("reap: %v, %d bans", err, m.Len())
	}
	// The attacker comes back an hour later: second offense, still known.
	m.Handle(t0.Add(time.Hour), []*record.Alert{alert("192.0.2.241", 10, "2")})
	if m.Offense(ban.Single(atk)) != 2 {
		t.Fatalf("offense %d", m.Offense(ban.Single(atk)))
	}
	// The next wake-up for the books is when the flood's counts are due.
	if next, ok := m.NextForget(); !ok || !next.Equal(t0.Add(time.Minute+forget)) {
		t.Fatalf("next forget %v %v", next, ok)
	}
	m.Reap(t0.Add(time.Minute + forget - time.Second))
	if _, off, _ := store.Load(); len(off) != 101 {
		t.Fatalf("forgotten early: %d counts", len(off))
	}
	// 24 h after the flood's bans ended: their counts are gone; the
	// attacker's (banned again, until 2 h) stays.
	m.Reap(t0.Add(time.Minute + forget))
	if _, off, _ := store.Load(); len(off) != 1 || off[ban.Single(atk)].Count != 2 {
		t.Fatalf("after the sweep: %v", off)
	}
	if m.Offense(ban.Single(netip.MustParseAddr("198.18.0.1"))) != 0 || m.Offense(ban.Single(atk)) != 2 {
		t.Fatal("books not swept")
	}
	// The attacker's ban ended at 2 h; 24 h later its count goes too,
	// also after a restart (the end time is in the state).
	m2 := ban.NewManager(p, []firewall.Backend{firewall.NewFake("fake")}, store)
	if _, err := m2.Reconcile(t0.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if m2.Offense(ban.Single(atk)) != 2 {
		t.Fatalf("after restart: offense %d", m2.Offense(ban.Single(atk)))
	}
	if next, ok := m2.NextForget(); !ok || !next.Equal(t0.Add(2*time.Hour+forget)) {
		t.Fatalf("next forget after restart %v %v", next, ok)
	}
	m2.Reap(t0.Add(2*time.Hour + forget))
	if _, off, _ := store.Load(); len(off) != 0 || m2.Offense(ban.Single(atk)) != 0 {
		t.Fatalf("after the second sweep: %v", off)
	}
	if _, ok := m2.NextForget(); ok {
		t.Fatal("next forget with nothing to forget")
	}
}
