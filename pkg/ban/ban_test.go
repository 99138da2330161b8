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

var t0 = time.Date(2026, 5, 17, 21, 11, 31, 0, time.UTC)

func alert(src string, level int, id string) *record.Alert {
	return &record.Alert{Event: record.Event{SrcIP: src}, Rule: &record.Rule{ID: "300011", Level: level}, ID: id}
}

type rig struct {
	m     *ban.Manager
	fake  *firewall.Fake
	store *banstate.Memory
}

func newRig(t *testing.T, p ban.Policy) *rig {
	t.Helper()
	if p.Timeout == 0 {
		p.Timeout = 5 * time.Minute
	}
	if p.MinLevel == 0 {
		p.MinLevel = 9
	}
	r := &rig{fake: firewall.NewFake("fake"), store: banstate.NewMemory()}
	r.m = ban.NewManager(p, []firewall.Backend{r.fake}, r.store)
	if _, err := r.m.Reconcile(t0); err != nil {
		t.Fatal(err)
	}
	r.fake.Calls()
	return r
}

func (r *rig) handle(t *testing.T, now time.Time, alerts ...*record.Alert) []record.Decision {
	t.Helper()
	ds, err := r.m.Handle(now, alerts)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != len(alerts) {
		t.Fatalf("%d decisions for %d alerts", len(ds), len(alerts))
	}
	return ds
}

func actions(ds []record.Decision) string {
	var s []string
	for _, d := range ds {
		x := d.Ban.Action + " " + d.Ban.IP
		if d.Ban.Reason != "" {
			x += " " + d.Ban.Reason
		}
		s = append(s, x)
	}
	return strings.Join(s, "; ")
}

func TestAddExtendExpire(t *testing.T) {
	r := newRig(t, ban.Policy{})
	atk := netip.MustParseAddr("192.0.2.241")
	ds := r.handle(t, t0, alert("192.0.2.241", 10, "1.1"))
	d := ds[0]
	want := record.Ban{Action: "add", IP: "192.0.2.241", Until: "2026-05-17T21:16:31.000000+0000", TimeoutS: 300,
		Offense: 1, Backends: []string{"fake"}, AlertID: "1.1", RuleID: "300011"}
	if d.Timestamp != "2026-05-17T21:11:31.000000+0000" || !equalBan(d.Ban, want) {
		t.Fatalf("decision %+v, want %+v", d, want)
	}
	if !r.fake.Has(atk) || r.fake.TTL(atk) != 5*time.Minute {
		t.Fatalf("fake: has %v ttl %v", r.fake.Has(atk), r.fake.TTL(atk))
	}
	// A repeat while banned restarts the timer: extend, no second add.
	ds = r.handle(t, t0.Add(4*time.Minute), alert("192.0.2.241", 10, "1.2"))
	if ds[0].Ban.Action != "extend" || ds[0].Ban.Until != "2026-05-17T21:20:31.000000+0000" || ds[0].Ban.Offense != 1 || ds[0].Ban.AlertID != "1.2" {
		t.Fatalf("extend: %+v", ds[0].Ban)
	}
	if c := r.fake.Calls(); !slices.Equal(c, []string{"add 192.0.2.241", "extend 192.0.2.241"}) {
		t.Fatalf("calls %q", c)
	}
	next, ok := r.m.NextExpiry()
	if !ok || !next.Equal(t0.Add(9*time.Minute)) {
		t.Fatalf("next expiry %v %v", next, ok)
	}
	// Not yet: the old expiry passes without a delete.
	if ds, _ := r.m.Reap(t0.Add(5 * time.Minute)); len(ds) != 0 {
		t.Fatalf("reaped early: %v", actions(ds))
	}
	ds, err := r.m.Reap(t0.Add(9 * time.Minute))
	if err != nil || actions(ds) != "delete 192.0.2.241 expired" || ds[0].Ban.AlertID != "1.2" {
		t.Fatalf("reap: %v %v", actions(ds), err)
	}
	if r.fake.Has(atk) || r.m.Len() != 0 {
		t.Fatal("ban still there after reap")
	}
	if _, ok := r.m.NextExpiry(); ok {
		t.Fatal("next expiry with no bans")
	}
}

func equalBan(a, b record.Ban) bool {
	return a.Action == b.Action && a.IP == b.IP && a.Until == b.Until && a.TimeoutS == b.TimeoutS &&
		a.Offense == b.Offense && slices.Equal(a.Backends, b.Backends) && a.AlertID == b.AlertID &&
		a.RuleID == b.RuleID && a.Reason == b.Reason
}

func TestEscalation(t *testing.T) {
	r := newRig(t, ban.Policy{Timeout: time.Minute, Repeat: []time.Duration{30 * time.Minute, time.Hour, 24 * time.Hour}})
	now := t0
	var got []int64
	for i := range 6 {
		ds := r.handle(t, now, alert("2001:db8::241", 10, "a"))
		if ds[0].Ban.Action != "add" || ds[0].Ban.Offense != i+1 {
			t.Fatalf("ban %d: %+v", i+1, ds[0].Ban)
		}
		got = append(got, ds[0].Ban.TimeoutS)
		// A repeat while banned keeps the offense and its timeout.
		ds = r.handle(t, now.Add(time.Second), alert("2001:db8::241", 10, "b"))
		if ds[0].Ban.Action != "extend" || ds[0].Ban.Offense != i+1 || ds[0].Ban.TimeoutS != got[i] {
			t.Fatalf("extend %d: %+v", i+1, ds[0].Ban)
		}
		now = now.Add(time.Duration(got[i])*time.Second + 2*time.Second)
		if ds, _ := r.m.Reap(now); len(ds) != 1 {
			t.Fatalf("reap %d: %v", i+1, actions(ds))
		}
	}
	want := []int64{60, 1800, 3600, 86400, 86400, 86400}
	if !slices.Equal(got, want) {
		t.Fatalf("timeouts %v, want %v", got, want)
	}
	// Offense counts persist: a new manager on the same store continues.
	m2 := ban.NewManager(ban.Policy{MinLevel: 9, Timeout: time.Minute, Repeat: []time.Duration{30 * time.Minute}}, []firewall.Backend{r.fake}, r.store)
	if _, err := m2.Reconcile(now); err != nil {
		t.Fatal(err)
	}
	ds, _ := m2.Handle(now, []*record.Alert{alert("2001:db8::241", 10, "c")})
	if ds[0].Ban.Offense != 7 || ds[0].Ban.TimeoutS != 1800 {
		t.Fatalf("after restart: %+v", ds[0].Ban)
	}
}

func TestRefusals(t *testing.T) {
	r := newRig(t, ban.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}})
	r.m.SetOwn([]netip.Addr{netip.MustParseAddr("198.51.100.44"), netip.MustParseAddr("2001:db8::44")})
	long := strings.Repeat("1", 300)
	cases := []struct {
		src    string
		level  int
		reason string
	}{
		{"1.2.3.4; rm -rf /", 10, "invalid-ip"},
		{"0.0.0.0/0", 10, "invalid-ip"},
		{"::/0", 10, "invalid-ip"},
		{"1.2.3.4/32", 10, "invalid-ip"},
		{long, 10, "invalid-ip"},
		{"2001:db8::" + long, 10, "invalid-ip"},
		{"fe80::1%eth0", 10, "invalid-ip"},
		{"192.0.2.1:80", 10, "invalid-ip"},
		{"-s 0.0.0.0/0 -j ACCEPT", 10, "invalid-ip"},
		{"192.0.2.1\n", 10, "invalid-ip"},
		{" 192.0.2.1", 10, "invalid-ip"},
		{"0.0.0.0", 10, "unspecified"},
		{"::", 10, "unspecified"},
		{"127.0.0.1", 10, "loopback"},
		{"127.8.9.10", 10, "loopback"},
		{"::1", 10, "loopback"},
		{"::ffff:127.0.0.1", 10, "loopback"},
		{"169.254.1.1", 10, "link-local"},
		{"fe80::1", 10, "link-local"},
		{"224.0.0.1", 10, "multicast"},
		{"ff02::1", 10, "multicast"},
		{"255.255.255.255", 10, "broadcast"},
		{"198.51.100.44", 10, "own-address"},
		{"::ffff:198.51.100.44", 10, "own-address"},
		{"2001:db8::44", 10, "own-address"},
		{"203.0.113.12", 10, "allowlisted"},
		{"::ffff:203.0.113.12", 10, "allowlisted"},
		{"2001:db8:1::5", 10, "allowlisted"},
		{"", 10, "no-source"},
		{"192.0.2.9", 8, "below-level"},
	}
	for _, c := range cases {
		ds := r.handle(t, t0, alert(c.src, c.level, "x"))
		if ds[0].Ban.Action != "skip" || ds[0].Ban.Reason != c.reason || ds[0].Ban.IP != c.src {
			t.Errorf("src %.40q: got %s %q, want skip %q", c.src, ds[0].Ban.Action, ds[0].Ban.Reason, c.reason)
		}
	}
	ds, _ := r.m.Handle(t0, []*record.Alert{{Event: record.Event{SrcIP: "192.0.2.9"}}})
	if ds[0].Ban.Reason != "no-rule" {
		t.Errorf("no rule: %+v", ds[0].Ban)
	}
	if c := r.fake.Calls(); len(c) != 0 {
		t.Errorf("backend called for refused alerts: %q", c)
	}
	// Mapped addresses fold to IPv4; the level threshold is inclusive.
	ds = r.handle(t, t0, alert("::ffff:192.0.2.241", 9, "y"))
	if ds[0].Ban.Action != "add" || ds[0].Ban.IP != "192.0.2.241" {
		t.Errorf("mapped: %+v", ds[0].Ban)
	}
	// Own addresses change on SIGHUP.
	r.m.SetOwn(nil)
	ds = r.handle(t, t0, alert("198.51.100.44", 10, "z"))
	if ds[0].Ban.Action != "add" {
		t.Errorf("after own addresses changed: %+v", ds[0].Ban)
	}
	r.m.SetAllow(nil)
	ds = r.handle(t, t0, alert("203.0.113.12", 10, "z"))
	if ds[0].Ban.Action != "add" {
		t.Errorf("after allow list changed: %+v", ds[0].Ban)
	}
}

func TestBatchIsOneCall(t *testing.T) {
	r := newRig(t, ban.Policy{})
	ds := r.handle(t, t0,
		alert("192.0.2.1", 10, "1"), alert("192.0.2.2", 10, "2"), alert("192.0.2.1", 10, "3"),
		alert("127.0.0.1", 10, "4"), alert("2001:db8::9", 12, "5"))
	if got := actions(ds); got != "add 192.0.2.1; add 192.0.2.2; extend 192.0.2.1; skip 127.0.0.1 loopback; add 2001:db8::9" {
		t.Fatalf("decisions: %s", got)
	}
	if c := r.fake.Calls(); !slices.Equal(c, []string{"add 192.0.2.1 192.0.2.2 2001:db8::9"}) {
		t.Fatalf("calls %q", c)
	}
	if r.store.Saves != 1 {
		t.Fatalf("%d saves for one batch", r.store.Saves)
	}
}

func TestReconcile(t *testing.T) {
	store := banstate.NewMemory()
	fake := firewall.NewFake("fake")
	p := ban.Policy{MinLevel: 9, Timeout: time.Minute}
	m := ban.NewManager(p, []firewall.Backend{fake}, store)
	if _, err := m.Reconcile(t0); err != nil {
		t.Fatal(err)
	}
	m.Handle(t0, []*record.Alert{alert("192.0.2.1", 10, "1")})
	m.Handle(t0.Add(30*time.Second), []*record.Alert{alert("192.0.2.2", 10, "2")})
	// "Crash": a new manager and a backend that lost its bans but holds a
	// stranger.
	fake2 := firewall.NewFake("fake")
	fake2.Add([]firewall.Entry{{Net: ban.Single(netip.MustParseAddr("192.0.2.99"))}})
	m2 := ban.NewManager(p, []firewall.Backend{fake2}, store)
	ds, err := m2.Reconcile(t0.Add(70 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if actions(ds) != "delete 192.0.2.1 expired" {
		t.Fatalf("reconcile decisions: %s", actions(ds))
	}
	l, _ := fake2.List()
	if len(l) != 1 || l[0] != ban.Single(netip.MustParseAddr("192.0.2.2")) {
		t.Fatalf("backend after reconcile: %v", l)
	}
	if ttl := fake2.TTL(netip.MustParseAddr("192.0.2.2")); ttl != 20*time.Second {
		t.Fatalf("re-added with ttl %v, want the 20s left", ttl)
	}
	if m2.Len() != 1 {
		t.Fatalf("%d live bans", m2.Len())
	}
	bans, _, _ := store.Load()
	if len(bans) != 1 {
		t.Fatalf("store holds %d bans", len(bans))
	}
}

func TestUnbanAndFlush(t *testing.T) {
	r := newRig(t, ban.Policy{})
	r.handle(t, t0, alert("192.0.2.1", 10, "1"), alert("192.0.2.2", 10, "2"))
	ds, was, err := r.m.Unban(t0, ban.Single(netip.MustParseAddr("192.0.2.1")))
	if err != nil || !was || actions(ds) != "delete 192.0.2.1 unban" {
		t.Fatalf("unban: %s %v %v", actions(ds), was, err)
	}
	if r.m.Offense(ban.Single(netip.MustParseAddr("192.0.2.1"))) != 0 {
		t.Fatal("unban kept the offense count")
	}
	if _, was, _ := r.m.Unban(t0, ban.Single(netip.MustParseAddr("192.0.2.1"))); was {
		t.Fatal("second unban found a ban")
	}
	ds, err = r.m.Flush(t0)
	if err != nil || actions(ds) != "delete 192.0.2.2 flush" {
		t.Fatalf("flush: %s %v", actions(ds), err)
	}
	if l, _ := r.fake.List(); len(l) != 0 || r.m.Len() != 0 {
		t.Fatalf("left after flush: %v", l)
	}
	if r.m.Offense(ban.Single(netip.MustParseAddr("192.0.2.2"))) != 1 {
		t.Fatal("flush forgot the offense count")
	}
}

func TestBackendError(t *testing.T) {
	r := newRig(t, ban.Policy{})
	r.fake.Fail = func(kind string) error {
		if kind == "add" {
			return errors.New("boom")
		}
		return nil
	}
	ds, err := r.m.Handle(t0, []*record.Alert{alert("192.0.2.1", 10, "1")})
	if err == nil || !strings.Contains(err.Error(), "fake: add: boom") {
		t.Fatalf("err = %v", err)
	}
	// The decision stands and the ban is kept for the next reconcile.
	if actions(ds) != "add 192.0.2.1" || r.m.Len() != 1 || r.store.Saves != 1 {
		t.Fatalf("after error: %s, %d bans", actions(ds), r.m.Len())
	}
}

func TestARLine(t *testing.T) {
	d := record.Decision{Ban: record.Ban{Action: "add", IP: "192.0.2.241", AlertID: "1589749891.52882", RuleID: "300001"}}
	got := ban.ARLine(d, time.Date(2020, 5, 17, 21, 11, 31, 0, time.UTC), "/usr/local/bin/block")
	want := "Sun May 17 21:11:31 UTC 2020 /usr/local/bin/block add - 192.0.2.241 1589749891.52882 300001"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	d.Ban.Action, d.Ban.AlertID, d.Ban.RuleID = "delete", "a b\nc", ""
	got = ban.ARLine(d, time.Date(2020, 5, 7, 1, 2, 3, 0, time.UTC), "block")
	if want := "Thu May  7 01:02:03 UTC 2020 block delete - 192.0.2.241 a_b_c -"; got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if ban.ARLine(record.Decision{Ban: record.Ban{Action: "extend"}}, t0, "b") != "" {
		t.Fatal("extend logged")
	}
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.1": "192.0.2.1", "::ffff:192.0.2.1": "192.0.2.1",
		"2001:DB8:0:0:0:0:0:1": "2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0241": "2001:db8::241"} {
		a, ok := ban.ParseAddr(in)
		if !ok || a.String() != want {
			t.Errorf("ParseAddr(%q) = %v %v, want %s", in, a, ok, want)
		}
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "::ffff:1.2.3.4", "1.2.3.4; rm -rf /", "0.0.0.0/0", "fe80::1%eth0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := ban.ParseAddr(s)
		if !ok {
			return
		}
		// Whatever passes is a plain address whose text is safe on a
		// command line: hex digits, dots and colons only.
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("%q parsed to %v", s, a)
		}
		for _, c := range a.String() {
			if !strings.ContainsRune("0123456789abcdef.:", c) {
				t.Fatalf("%q parsed to %q", s, a)
			}
		}
	})
}

func TestInvalidUTF8(t *testing.T) {
	r := newRig(t, ban.Policy{})
	a := alert("1.2.3.4\xff", 10, "id\xfe")
	a.Rule.ID = "r\xff"
	ds := r.handle(t, t0, a, alert("192.0.2.1", 10, "x\xff"))
	if ds[0].Ban.IP != "1.2.3.4\uFFFD" || ds[0].Ban.AlertID != "id\uFFFD" || ds[0].Ban.RuleID != "r\uFFFD" || ds[1].Ban.AlertID != "x\uFFFD" {
		t.Fatalf("%+v %+v", ds[0].Ban, ds[1].Ban)
	}
}
