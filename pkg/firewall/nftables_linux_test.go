//go:build linux

package firewall

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// nftView is what `nft -j list ruleset` shows of one table.
type nftView struct {
	sets   map[string][]string // set -> "addr timeout N" / "addr" / "prefix/len ..."
	chains map[string]string   // chain -> "hook prio policy"
	rules  map[string]int      // chain -> number of rules
}

// readNFT reads table inet name back with the real nft (nil: no table).
func readNFT(t *testing.T, name string) *nftView {
	t.Helper()
	out := run(t, "nft", "-j", "list", "ruleset")
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v\n%s", err, out)
	}
	var v *nftView
	for _, o := range doc.Nftables {
		var head struct {
			Family, Table, Name, Chain, Hook, Policy string
			Prio                                     int
			Elem                                     []json.RawMessage
		}
		for kind, raw := range o {
			if err := json.Unmarshal(raw, &head); err != nil {
				continue
			}
			if kind == "table" && head.Family == "inet" && head.Name == name {
				v = &nftView{sets: map[string][]string{}, chains: map[string]string{}, rules: map[string]int{}}
			}
			if head.Family != "inet" || head.Table != name || v == nil {
				continue
			}
			switch kind {
			case "set":
				els := []string{}
				for _, e := range head.Elem {
					els = append(els, elemString(t, e))
				}
				slices.Sort(els)
				v.sets[head.Name] = els
			case "chain":
				v.chains[head.Name] = fmt.Sprintf("%s %d %s", head.Hook, head.Prio, head.Policy)
			case "rule":
				v.rules[head.Chain]++
			}
		}
	}
	return v
}

// elemString renders one set element of nft's JSON: "198.51.100.7",
// "198.51.100.7 timeout 61", "198.51.100.0/24".
func elemString(t *testing.T, raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var e struct {
		Elem struct {
			Val     json.RawMessage
			Timeout int
		}
		Prefix struct {
			Addr string
			Len  int
		}
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("element %s: %v", raw, err)
	}
	if e.Prefix.Addr != "" {
		return fmt.Sprintf("%s/%d", e.Prefix.Addr, e.Prefix.Len)
	}
	v := elemString(t, e.Elem.Val)
	if e.Elem.Timeout != 0 {
		v += fmt.Sprintf(" timeout %d", e.Elem.Timeout)
	}
	return v
}

func wantSet(t *testing.T, v *nftView, set string, want ...string) {
	t.Helper()
	if v == nil {
		t.Fatalf("table missing, want set %s %v", set, want)
	}
	if want == nil {
		want = []string{}
	}
	slices.Sort(want)
	if got := v.sets[set]; !slices.Equal(got, want) {
		t.Fatalf("set %s holds %q, want %q", set, got, want)
	}
}

// wantShape checks the table's chains and rules.
func wantShape(t *testing.T, v *nftView) {
	t.Helper()
	if v == nil {
		t.Fatal("table inet qwtest missing")
	}
	for _, c := range []string{"input", "forward"} {
		if got := v.chains[c]; got != c+" -10 accept" {
			t.Errorf("chain %s: %q, want %q", c, got, c+" -10 accept")
		}
		if v.rules[c] != 4 {
			t.Errorf("chain %s has %d rules, want 4", c, v.rules[c])
		}
	}
	for _, s := range []string{"local-v4", "local-v6", "fleet-v4", "fleet-v6"} {
		if _, ok := v.sets[s]; !ok {
			t.Errorf("set %s missing", s)
		}
	}
}

func TestNFTablesReal(t *testing.T) {
	hosttest.Require(t, "nft")
	if !inNetns(t) {
		return
	}
	run(t, "nft", "add table inet other")
	run(t, "nft", "add chain inet other input { type filter hook input priority 0; policy accept; }")
	run(t, "nft", "add rule inet other input tcp dport 22 accept")
	other := run(t, "nft", "list table inet other")

	b := mustNew(t, "nftables", "nftables")
	for range 2 { // twice: nothing doubled
		if err := b.Sync([]Entry{{Net: Single(v4a), TTL: time.Hour}, {Net: Single(v6a), TTL: time.Hour}}); err != nil {
			t.Fatal(err)
		}
	}
	v := readNFT(t, "qwtest")
	wantShape(t, v)
	wantSet(t, v, "local-v4", "198.51.100.241 timeout 3601")
	wantSet(t, v, "local-v6", "2001:db8::241 timeout 3601")
	wantSet(t, v, "fleet-v4")
	wantList(t, b, v4a, v6a)

	// Strays (an address, a prefix, a rule) go at Sync.
	run(t, "nft", "add element inet qwtest local-v4 { 192.0.2.55, 203.0.113.0/24 }")
	run(t, "nft", "add rule inet qwtest input tcp dport 22 accept")
	if err := b.Sync([]Entry{{Net: Single(v4a), TTL: time.Hour}, {Net: Single(v6a), TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	v = readNFT(t, "qwtest")
	wantShape(t, v)
	wantSet(t, v, "local-v4", "198.51.100.241 timeout 3601")

	// Adjacent addresses are elements of their own; deleting one keeps
	// the other.
	adj := netip.MustParseAddr("198.51.100.242")
	if err := b.Add([]Entry{{Net: Single(adj), TTL: time.Hour}, {Net: Single(v4a), TTL: time.Hour}, {Net: Single(adj), TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, v4a, adj, v6a)
	if err := b.Delete(nets(adj, adj, netip.MustParseAddr("198.51.100.5"))); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(nets(adj)); err != nil { // absent: fine
		t.Fatal(err)
	}
	wantList(t, b, v4a, v6a)

	// The kernel's timeout is the safety net: an element lives its TTL
	// plus a second, even if no one deletes it.
	if err := b.Add([]Entry{{Net: Single(v4b), TTL: time.Second}, {Net: Single(v6b), TTL: time.Second}}); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, v4b, v4a, v6b, v6a)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, _ := b.List()
		if len(l) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kernel did not expire elements: %v", l)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Extend restarts the kernel timeout.
	if err := b.Extend([]Entry{{Net: Single(v4a), TTL: 2 * time.Hour}}); err != nil {
		t.Fatal(err)
	}
	wantSet(t, readNFT(t, "qwtest"), "local-v4", "198.51.100.241 timeout 7201")
	held, err := b.Held()
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 || held[0].Net.Addr() != v4a || held[0].TTL < 2*time.Hour-time.Minute || held[0].TTL > 2*time.Hour+time.Second {
		t.Fatalf("Held: %+v", held)
	}

	// An address inside a wider element is banned already: no error.
	run(t, "nft", "add element inet qwtest local-v4 { 192.0.2.0/24 }")
	if err := b.Add([]Entry{{Net: Single(netip.MustParseAddr("192.0.2.9")), TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(nets(netip.MustParseAddr("192.0.2.9"))); err != nil {
		t.Fatal(err)
	}
	wantSet(t, readNFT(t, "qwtest"), "local-v4", "192.0.2.0/24", "198.51.100.241 timeout 7201")

	// A restarted block finds its live bans (networks too: a prefix ban
	// is one element) and keeps them.
	b2 := mustNew(t, "nftables", "nftables")
	held, err = b2.Held()
	if err != nil || len(held) != 3 {
		t.Fatalf("Held after restart: %+v %v", held, err)
	}
	if err := b2.Sync(held); err != nil {
		t.Fatal(err)
	}
	wantNets(t, b2, Single(v4a), Single(v6a), netip.MustParsePrefix("192.0.2.0/24"))

	if got := run(t, "nft", "list table inet other"); got != other {
		t.Fatalf("other table changed:\n%s\nwas:\n%s", got, other)
	}

	// Another tool flushes our chain, our set, the whole ruleset, deletes
	// our table: Repair puts everything back, and says so.
	live := []Entry{{Net: Single(v4a), TTL: time.Hour}, {Net: Single(v6a), TTL: time.Hour}}
	for _, c := range []struct{ cmd, note string }{
		{"flush chain inet qwtest input", "chain input lost 4 rules: restored"},
		{"flush set inet qwtest local-v6", "set local-v6 lost 1 members: restored"},
		{"delete table inet qwtest", "table inet qwtest was missing: created"},
		{"flush ruleset", "table inet qwtest was missing: created"},
		{"delete chain inet qwtest forward", "chain forward was missing: created"},
	} {
		if strings.Contains(c.cmd, "forward") {
			run(t, "nft", "flush chain inet qwtest forward")
		}
		run(t, "nft", c.cmd)
		notes, err := b.Repair(live)
		if err != nil {
			t.Fatalf("%s: Repair: %v", c.cmd, err)
		}
		if !strings.Contains(strings.Join(notes, "\n"), c.note) {
			t.Errorf("%s: notes %q, want %q", c.cmd, notes, c.note)
		}
		v := readNFT(t, "qwtest")
		wantShape(t, v)
		if got := v.sets["local-v6"]; len(got) != 1 || !strings.HasPrefix(got[0], "2001:db8::241 timeout ") {
			t.Fatalf("%s: set local-v6 holds %q after Repair", c.cmd, got)
		}
		if notes, err := b.Repair(live); err != nil || len(notes) > 0 {
			t.Fatalf("%s: second Repair: %q %v", c.cmd, notes, err)
		}
	}
	// Many members: chunked writes (the v0.3.0 trap), several messages
	// per dump.
	var many []Entry
	for i := range 5000 {
		many = append(many, Entry{Net: Single(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})), TTL: time.Hour})
		many = append(many, Entry{Net: Single(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 7: 1, 14: byte(i >> 8), 15: byte(i)})), TTL: time.Hour})
	}
	if err := b.Add(many); err != nil {
		t.Fatal(err)
	}
	if l, err := b.List(); err != nil || len(l) != 10002 {
		t.Fatalf("listed %d of 10002 (%v)", len(l), err)
	}
	if err := b.Sync(many[:10]); err != nil {
		t.Fatal(err)
	}
	if l, err := b.List(); err != nil || len(l) != 10 {
		t.Fatalf("after Sync: %d, want 10 (%v)", len(l), err)
	}

	run(t, "nft", "add table inet other")
	other = run(t, "nft", "list table inet other")
	for range 2 {
		if err := b.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Delete(nets(v4a, v6a)); err != nil {
		t.Fatal(err)
	}
	if v := readNFT(t, "qwtest"); v != nil {
		t.Fatalf("table left after Flush: %+v", v)
	}
	if got := run(t, "nft", "list table inet other"); got != other {
		t.Fatalf("other table changed:\n%s\nwas:\n%s", got, other)
	}
}

// TestNFTablesCoexist checks that our table leaves another tool's table
// alone and that a ban drops before that table's accept.
func TestNFTablesCoexist(t *testing.T) {
	hosttest.Require(t, "nft")
	if !inNetns(t) {
		return
	}
	run(t, "nft", "add table inet other")
	run(t, "nft", "add chain inet other input { type filter hook input priority 0; policy accept; }")
	run(t, "nft", "add rule inet other input ip saddr 198.51.100.241 accept")
	other := run(t, "nft", "list table inet other")
	b := mustNew(t, "nftables", "nftables")
	if err := b.Sync([]Entry{{Net: Single(v4a), TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := run(t, "nft", "list table inet other"); got != other {
		t.Fatalf("other table changed:\n%s\nwas:\n%s", got, other)
	}
}

func TestNFTRanges(t *testing.T) {
	a := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	// As the kernel dumps an interval set: descending, ends flagged.
	got := ranges([]nftables.SetElement{
		{Key: a("255.255.255.255")},
		{Key: a("198.51.100.9"), IntervalEnd: true},
		{Key: a("198.51.100.8"), Expires: time.Minute},
		{Key: a("198.51.100.8"), IntervalEnd: true},
		{Key: a("198.51.100.7"), Expires: time.Second},
		{Key: a("192.0.3.0"), IntervalEnd: true},
		{Key: a("192.0.2.0")},
		{Key: a("10.0.0.3"), IntervalEnd: true},
		{Key: a("10.0.0.1")},
	})
	var s []string
	for _, r := range got {
		one, single := r.prefix()
		s = append(s, fmt.Sprintf("%s-%s %v %v %v", r.start, r.end, r.expires, one, single))
	}
	want := []string{
		"10.0.0.1-10.0.0.3 0s invalid Prefix false", // two addresses, not one network
		"192.0.2.0-192.0.3.0 0s 192.0.2.0/24 true",
		"198.51.100.7-198.51.100.8 1s 198.51.100.7/32 true",
		"198.51.100.8-198.51.100.9 1m0s 198.51.100.8/32 true",
		"255.255.255.255-invalid IP 0s 255.255.255.255/32 true",
	}
	if !slices.Equal(s, want) {
		t.Fatalf("ranges:\n%s\nwant:\n%s", strings.Join(s, "\n"), strings.Join(want, "\n"))
	}
	for ttl, want := range map[time.Duration]time.Duration{
		0: time.Second, -time.Second: time.Second, 300 * time.Second: 301 * time.Second,
		1500 * time.Millisecond: 3 * time.Second, 400 * 24 * time.Hour: 0,
	} {
		if got := nftTimeout(ttl); got != want {
			t.Errorf("nftTimeout(%v) = %v, want %v", ttl, got, want)
		}
	}
}
