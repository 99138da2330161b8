//go:build linux

package firewall

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// The real-firewall tests run in a network namespace of their own: the
// parent test creates it and runs this test binary again inside it with
// `ip netns exec` (so every iptables process it starts, and its netlink
// sockets, act on that namespace only). The child refuses to run in the
// parent's namespace.

const netnsEnv = "QWB_FIREWALL_NETNS"

var nsSeq atomic.Int32

// inNetns reports whether t runs in its namespace; if not, it runs t there
// and reports false.
func inNetns(t *testing.T) bool {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if parent := os.Getenv(netnsEnv); parent != "" {
		if self == parent {
			t.Fatalf("refusing to touch the firewall of the parent's namespace %s", self)
		}
		return true
	}
	hosttest.Require(t, "ip", "iptables", "ip6tables", "iptables-restore", "ip6tables-restore")
	ns := fmt.Sprintf("qwb-fw%d-%d", os.Getpid()%100000, nsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsEnv+"="+self)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in namespace %s: %v\n%s", ns, err, out)
	}
	return false
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

const pristine = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"

var (
	v4a, v4b = netip.MustParseAddr("198.51.100.241"), netip.MustParseAddr("198.51.100.7")
	v6a, v6b = netip.MustParseAddr("2001:db8::241"), netip.MustParseAddr("2001:db8::7")
)

func mustNew(t *testing.T, name string, backends ...string) Backend {
	t.Helper()
	b, err := New(name, Config{Chain: "QWTEST", Backends: backends})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantList(t *testing.T, b Backend, want ...netip.Addr) {
	t.Helper()
	wantNets(t, b, nets(want...)...)
}

func wantNets(t *testing.T, b Backend, want ...netip.Prefix) {
	t.Helper()
	got, err := b.List()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, sortAddrs(want)) {
		t.Fatalf("%s holds %v, want %v", b.Name(), got, want)
	}
}

func wantPristine(t *testing.T) {
	t.Helper()
	for _, p := range []string{"iptables", "ip6tables"} {
		if got := run(t, p, "-S"); got != pristine {
			t.Fatalf("%s -S after flush:\n%s", p, got)
		}
	}
	if _, err := exec.LookPath("ipset"); err == nil {
		if got := run(t, "ipset", "list", "-n"); got != "" {
			t.Fatalf("ipset list -n after flush:\n%s", got)
		}
	}
}

// plant adds rules by hand to the chain, as a stray admin or an older
// version might have left them.
func plant(t *testing.T) {
	run(t, "iptables", "-N", "QWTEST")
	run(t, "iptables", "-A", "QWTEST", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
	run(t, "iptables", "-A", "QWTEST", "-s", "192.0.2.99/32", "-j", "DROP")
	run(t, "ip6tables", "-N", "QWTEST")
	run(t, "ip6tables", "-A", "QWTEST", "-s", "2001:db8::99/128", "-j", "DROP")
}

func TestIPTablesReal(t *testing.T) {
	if !inNetns(t) {
		return
	}
	plant(t)
	b := mustNew(t, "iptables", "iptables")
	for range 2 { // twice: no duplicate jumps or rules
		if err := b.Sync([]Entry{{Net: Single(v4a)}, {Net: Single(v6a)}}); err != nil {
			t.Fatal(err)
		}
	}
	got := run(t, "iptables", "-S")
	want := pristine + "-N QWTEST\n-A INPUT -j QWTEST\n-A FORWARD -j QWTEST\n-A QWTEST -s 198.51.100.241/32 -j DROP\n"
	if got != want {
		t.Fatalf("iptables -S:\n%s\nwant:\n%s", got, want)
	}
	if got := run(t, "ip6tables", "-S", "QWTEST"); got != "-N QWTEST\n-A QWTEST -s 2001:db8::241/128 -j DROP\n" {
		t.Fatalf("ip6tables -S QWTEST:\n%s", got)
	}
	wantList(t, b, v4a, v6a)
	if err := b.Add([]Entry{{Net: Single(v4b)}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add([]Entry{{Net: Single(v4a)}, {Net: Single(v6b)}, {Net: Single(v6b)}}); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, v4a, v4b, v6a, v6b)
	if err := b.Delete(nets(v4a)); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(nets(v4a)); err != nil { // absent: fine
		t.Fatal(err)
	}
	if err := b.Delete(nets(v6a, v6b, netip.MustParseAddr("2001:db8::5"))); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, v4b)
	// Copies added by hand (or a lost Add retried) all go with the ban.
	run(t, "iptables", "-A", "QWTEST", "-s", "198.51.100.7/32", "-j", "DROP")
	if err := b.Delete(nets(v4b)); err != nil {
		t.Fatal(err)
	}
	wantList(t, b)
	for range 2 {
		run(t, "iptables", "-A", "QWTEST", "-s", "198.51.100.7/32", "-j", "DROP")
		run(t, "ip6tables", "-A", "QWTEST", "-s", "2001:db8::7/128", "-j", "DROP")
	}
	if err := b.Delete(nets(v4b, v6b, v4a)); err != nil {
		t.Fatal(err)
	}
	wantList(t, b)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil { // nothing left: fine
		t.Fatal(err)
	}
	// Deleting from a missing chain is not an error either.
	if err := b.Delete(nets(v4a)); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(nets(v4a, v6a)); err != nil {
		t.Fatal(err)
	}
	wantPristine(t)
}

func TestIPSetReal(t *testing.T) {
	hosttest.Require(t, "ipset")
	if !inNetns(t) {
		return
	}
	plant(t)
	b := mustNew(t, "ipset", "ipset")
	for range 2 {
		if err := b.Sync([]Entry{{Net: Single(v4a), TTL: time.Hour}, {Net: Single(v6a), TTL: time.Hour}}); err != nil {
			t.Fatal(err)
		}
	}
	got := run(t, "iptables", "-S")
	want := pristine + "-N QWTEST\n-A INPUT -j QWTEST\n-A FORWARD -j QWTEST\n-A QWTEST -m set --match-set qwtest-v4 src -j DROP\n"
	if got != want {
		t.Fatalf("iptables -S:\n%s\nwant:\n%s", got, want)
	}
	if got := run(t, "ip6tables", "-S", "QWTEST"); got != "-N QWTEST\n-A QWTEST -m set --match-set qwtest-v6 src -j DROP\n" {
		t.Fatalf("ip6tables -S QWTEST:\n%s", got)
	}
	wantList(t, b, v4a, v6a)
	if out := run(t, "ipset", "list", "qwtest-v4"); !strings.Contains(out, "Type: hash:ip") || !strings.Contains(out, "198.51.100.241 timeout 3") {
		t.Fatalf("ipset list:\n%s", out)
	}
	// A stray member is removed by Sync.
	run(t, "ipset", "add", "qwtest-v4", "192.0.2.55")
	if err := b.Sync([]Entry{{Net: Single(v4a), TTL: time.Hour}, {Net: Single(v6a), TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, v4a, v6a)
	// The kernel's timeout is the safety net: an entry lives its TTL plus
	// a second, even if no one deletes it.
	if err := b.Add([]Entry{{Net: Single(v4b), TTL: time.Second}, {Net: Single(v6b), TTL: time.Second}}); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, v4a, v4b, v6a, v6b)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, _ := b.List()
		if len(l) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kernel did not expire entries: %v", l)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Extend refreshes the kernel timeout.
	if err := b.Extend([]Entry{{Net: Single(v4a), TTL: 2 * time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "ipset", "list", "qwtest-v4"); !strings.Contains(out, "198.51.100.241 timeout 720") {
		t.Fatalf("after extend:\n%s", out)
	}
	if err := b.Delete(nets(v4a, v4b, v6a)); err != nil {
		t.Fatal(err)
	}
	wantList(t, b)
	// Many members: listing (the kernel answers in several messages) and
	// Sync see them all.
	var many []Entry
	for i := range 5000 {
		many = append(many, Entry{Net: Single(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})), TTL: time.Hour})
	}
	if err := b.Add(many); err != nil {
		t.Fatal(err)
	}
	if l, err := b.List(); err != nil || len(l) != 5000 {
		t.Fatalf("listed %d of 5000 (%v)", len(l), err)
	}
	if err := b.Sync(many[:10]); err != nil {
		t.Fatal(err)
	}
	if l, err := b.List(); err != nil || len(l) != 10 {
		t.Fatalf("after Sync: %d, want 10 (%v)", len(l), err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(nets(v4a, v6a)); err != nil {
		t.Fatal(err)
	}
	wantPristine(t)
}

// TestBothReal uses iptables and ipset together on one chain: neither
// removes the other's rules.
func TestBothReal(t *testing.T) {
	hosttest.Require(t, "ipset")
	if !inNetns(t) {
		return
	}
	plant(t)
	set := mustNew(t, "ipset", "ipset", "iptables")
	ipt := mustNew(t, "iptables", "ipset", "iptables")
	entries := []Entry{{Net: Single(v4a), TTL: time.Hour}, {Net: Single(v6a), TTL: time.Hour}}
	for _, b := range []Backend{set, ipt, set, ipt} {
		if err := b.Sync(entries); err != nil {
			t.Fatal(err)
		}
	}
	got := run(t, "iptables", "-S", "QWTEST")
	want := "-N QWTEST\n-A QWTEST -m set --match-set qwtest-v4 src -j DROP\n-A QWTEST -s 198.51.100.241/32 -j DROP\n"
	if got != want {
		t.Fatalf("iptables -S QWTEST:\n%s\nwant:\n%s", got, want)
	}
	wantList(t, set, v4a, v6a)
	wantList(t, ipt, v4a, v6a)
	for _, b := range []Backend{ipt, set} {
		if err := b.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	wantPristine(t)
}

func TestParseBan(t *testing.T) {
	for rule, want := range map[string]string{
		"-A QW -s 192.0.2.1/32 -j DROP":        "192.0.2.1/32",
		"-A QW -s 2001:db8::1/128 -j DROP":     "2001:db8::1/128",
		"-A QW -s 2001:db8::/64 -j DROP":       "2001:db8::/64",
		"-A QW -s 192.0.2.0/24 -j DROP":        "192.0.2.0/24",
		"-A QW -s 192.0.2.1/24 -j DROP":        "",
		"-A QW -s 192.0.2.1/32 -j ACCEPT":      "",
		"-A OTHER -s 192.0.2.1/32 -j DROP":     "",
		"-A QW -s 192.0.2.1/32 -p tcp -j DROP": "",
	} {
		a, ok := parseBan("QW", rule)
		if got := ""; ok {
			got = a.String()
			if got != want {
				t.Errorf("%q: %q, want %q", rule, got, want)
			}
		} else if want != "" {
			t.Errorf("%q: not a ban, want %q", rule, want)
		}
	}
}
