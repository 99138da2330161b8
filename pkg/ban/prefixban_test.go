package ban_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// An IPv6 attacker hopping across its /64 is one ban: the first alert adds
// the /64, the others extend it; after it ends, another address of the /64
// is a repeat offense (escalated).
func TestPrefixBanEscalates(t *testing.T) {
	r := newRig(t, ban.Policy{IPv6Prefix: 64, Repeat: []time.Duration{time.Hour}})
	var alerts []*record.Alert
	for _, a := range []string{"2001:db8::1:1", "2001:db8::1:2", "2001:db8::1:3", "2001:db8::1:4", "2001:db8::1:5"} {
		alerts = append(alerts, alert(a, 10, a))
	}
	ds := r.handle(t, t0, alerts...)
	want := "add 2001:db8::/64; extend 2001:db8::/64; extend 2001:db8::/64; extend 2001:db8::/64; extend 2001:db8::/64"
	if got := actions(ds); got != want {
		t.Fatalf("decisions %s, want %s", got, want)
	}
	if c := r.fake.Calls(); len(c) != 1 || c[0] != "add 2001:db8::/64" {
		t.Fatalf("backend calls %q", c)
	}
	p := netip.MustParsePrefix("2001:db8::/64")
	if !r.fake.HasNet(p) || r.m.Offense(p) != 1 {
		t.Fatalf("fake holds /64: %v, offense %d", r.fake.HasNet(p), r.m.Offense(p))
	}
	ds, _ = r.m.Reap(t0.Add(10 * time.Minute))
	if got := actions(ds); got != "delete 2001:db8::/64 expired" {
		t.Fatalf("reap: %s", got)
	}
	ds = r.handle(t, t0.Add(11*time.Minute), alert("2001:db8::9:9", 10, "x"))
	if ds[0].Ban.IP != "2001:db8::/64" || ds[0].Ban.Offense != 2 || ds[0].Ban.TimeoutS != 3600 {
		t.Fatalf("repeat: %+v", ds[0].Ban)
	}
	// block unban with one address of the network lifts the network.
	ds, was, err := r.m.Unban(t0.Add(12*time.Minute), ban.Single(netip.MustParseAddr("2001:db8::7")))
	if err != nil || !was || actions(ds) != "delete 2001:db8::/64 unban" || r.fake.HasNet(p) {
		t.Fatalf("unban: %s %v %v", actions(ds), was, err)
	}
}

// The allow list and own addresses veto a network that holds one of them:
// then only the source's own /128 is banned, and the decision says why.
func TestPrefixVeto(t *testing.T) {
	r := newRig(t, ban.Policy{IPv6Prefix: 64, Allow: []netip.Prefix{netip.MustParsePrefix("2001:db8::12/128")}})
	r.m.SetOwn([]netip.Addr{netip.MustParseAddr("2001:db8:0:2::44")})
	ds := r.handle(t, t0,
		alert("2001:db8::1:1", 10, "1"), alert("2001:db8::1:2", 10, "2"), alert("2001:db8::1:1", 10, "3"),
		alert("2001:db8:0:2::5", 10, "4"), alert("2001:db8:0:3::5", 10, "5"), alert("2001:db8::12", 10, "6"))
	want := "add 2001:db8::1:1 prefix-allowlisted; add 2001:db8::1:2 prefix-allowlisted; extend 2001:db8::1:1 prefix-allowlisted; " +
		"add 2001:db8:0:2::5 prefix-own-address; add 2001:db8:0:3::/64; skip 2001:db8::12 allowlisted"
	if got := actions(ds); got != want {
		t.Fatalf("decisions\n%s\nwant\n%s", got, want)
	}
	if !r.fake.Has(netip.MustParseAddr("2001:db8::1:1")) || r.fake.HasNet(netip.MustParsePrefix("2001:db8::/64")) {
		t.Fatal("the vetoed /64 is banned whole")
	}
}

// correlate's src_prefix is used when it holds src_ip; a wrong one is
// ignored and the prefix computed.
func TestPrefixFromAlert(t *testing.T) {
	r := newRig(t, ban.Policy{IPv6Prefix: 64})
	a1 := alert("2001:db8:5::1", 10, "1")
	a1.SrcPrefix = "2001:db8:5::/56"
	a2 := alert("2001:db8:6::1", 10, "2")
	a2.SrcPrefix = "2001:db8:5::/56"
	a3 := alert("198.51.100.7", 10, "3")
	a3.SrcPrefix = "198.51.100.0/24"
	ds := r.handle(t, t0, a1, a2, a3)
	if got, want := actions(ds), "add 2001:db8:5::/56; add 2001:db8:6::/64; add 198.51.100.7"; got != want {
		t.Fatalf("decisions %s, want %s", got, want)
	}
}

// Bans of networks survive a restart through the store.
func TestPrefixBanRestart(t *testing.T) {
	r := newRig(t, ban.Policy{IPv6Prefix: 48})
	r.handle(t, t0, alert("2001:db8:7:1::1", 10, "1"))
	m2 := ban.NewManager(ban.Policy{Timeout: 5 * time.Minute, MinLevel: 9, IPv6Prefix: 48}, nil, r.store)
	if _, err := m2.Reconcile(t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if b := m2.Bans(); len(b) != 1 || b[0].Net != netip.MustParsePrefix("2001:db8:7::/48") {
		t.Fatalf("after restart: %+v", b)
	}
}
