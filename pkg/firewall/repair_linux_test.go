//go:build linux

package firewall

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Repair puts back what another tool removed (the chain's rules, the whole
// chain, the jumps, the set rule, the set and its members), one line per
// fix, and nothing when nothing is missing; Held reports what is there,
// with ipset's kernel timeouts.
func TestRepairReal(t *testing.T) {
	if !inNetns(t) {
		return
	}
	hasIPSet := true
	if _, err := New("ipset", Config{Chain: "QWTEST"}); err != nil {
		hasIPSet = false
	}
	live := []Entry{{Net: Single(v4a), TTL: time.Hour}, {Net: Single(v4b), TTL: time.Hour}, {Net: Single(v6a), TTL: time.Hour}}
	repair := func(b Backend, want ...string) {
		t.Helper()
		got, err := b.Repair(live)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s repair: %q, want %q", b.Name(), got, want)
		}
	}

	ipt := mustNew(t, "iptables", "iptables")
	if err := ipt.Sync(live); err != nil {
		t.Fatal(err)
	}
	before := run(t, "iptables", "-S")
	repair(ipt)
	run(t, "iptables", "-F", "QWTEST")
	repair(ipt, "iptables: chain QWTEST lost 2 rules: restored")
	run(t, "iptables", "-F", "INPUT")
	run(t, "ip6tables", "-D", "QWTEST", "-s", v6a.String()+"/128", "-j", "DROP")
	repair(ipt, "iptables: jump from INPUT to QWTEST was missing: restored", "ip6tables: chain QWTEST lost 1 rules: restored")
	run(t, "ip6tables", "-D", "INPUT", "-j", "QWTEST")
	run(t, "ip6tables", "-D", "FORWARD", "-j", "QWTEST")
	run(t, "ip6tables", "-F", "QWTEST")
	run(t, "ip6tables", "-X", "QWTEST")
	repair(ipt, "ip6tables: chain QWTEST was missing: created",
		"ip6tables: jump from INPUT to QWTEST was missing: restored",
		"ip6tables: jump from FORWARD to QWTEST was missing: restored",
		"ip6tables: chain QWTEST lost 1 rules: restored")
	repair(ipt)
	after := run(t, "iptables", "-S")
	if len(after) != len(before) {
		t.Errorf("iptables -S before:\n%s\nafter:\n%s", before, after)
	}
	held, err := ipt.Held()
	if err != nil || len(held) != 3 || held[0].TTL != 0 {
		t.Errorf("held %v %v", held, err)
	}
	if err := ipt.Flush(); err != nil {
		t.Fatal(err)
	}
	wantPristine(t)

	if !hasIPSet {
		return
	}
	set := mustNew(t, "ipset", "ipset")
	if err := set.Sync(live); err != nil {
		t.Fatal(err)
	}
	repair(set)
	run(t, "ipset", "flush", "qwtest-v4")
	repair(set, "ipset: set qwtest-v4 lost 2 members: restored")
	run(t, "iptables", "-F", "QWTEST")
	repair(set, "iptables: rule matching set qwtest-v4 in chain QWTEST was missing: restored")
	run(t, "ip6tables", "-F", "QWTEST")
	run(t, "ipset", "destroy", "qwtest-v6")
	repair(set, "ipset: set qwtest-v6 was missing: created",
		"ip6tables: rule matching set qwtest-v6 in chain QWTEST was missing: restored",
		"ipset: set qwtest-v6 lost 1 members: restored")
	repair(set)
	if got := run(t, "ipset", "list", "qwtest-v4"); !strings.Contains(got, v4a.String()+" timeout ") {
		t.Errorf("set after repair:\n%s", got)
	}
	held, err = set.Held()
	if err != nil || len(held) != 3 {
		t.Fatalf("held %v %v", held, err)
	}
	for _, e := range held {
		if e.TTL < time.Hour-5*time.Second || e.TTL > time.Hour+2*time.Second {
			t.Errorf("held %v with ttl %v", e.Net, e.TTL)
		}
	}
	if err := set.Flush(); err != nil {
		t.Fatal(err)
	}
	wantPristine(t)
}
