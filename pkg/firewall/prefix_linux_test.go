//go:build linux

package firewall

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Every kernel backend takes a network ban, lists it, keeps single bans
// beside it and deletes it; ipset migrates an old hash:ip IPv6 set (with
// its members and its rule) to hash:net.
func TestPrefixReal(t *testing.T) {
	if !inNetns(t) {
		return
	}
	p := netip.MustParsePrefix("2001:db8::1:0/112")
	for _, name := range []string{"iptables", "ipset", "nftables"} {
		t.Run(name, func(t *testing.T) {
			if name == "ipset" {
				// What a block from before network bans left.
				run(t, "ipset", "create", "qwtest-v6", "hash:ip", "family", "inet6", "timeout", "0")
				run(t, "ipset", "add", "qwtest-v6", "2001:db8::9", "timeout", "600")
				run(t, "iptables", "-N", "QWTEST")
				run(t, "ip6tables", "-N", "QWTEST")
				run(t, "ip6tables", "-A", "QWTEST", "-m", "set", "--match-set", "qwtest-v6", "src", "-j", "DROP")
			}
			b := mustNew(t, name, name)
			if err := b.Sync([]Entry{{Net: Single(v4a), TTL: time.Hour}, {Net: Single(netip.MustParseAddr("2001:db8::9")), TTL: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			if name == "ipset" {
				if got := run(t, "ipset", "list", "-t", "qwtest-v6"); !strings.Contains(got, "Type: hash:net") {
					t.Fatalf("not migrated:\n%s", got)
				}
				if got := run(t, "ip6tables", "-S", "QWTEST"); strings.Count(got, "--match-set qwtest-v6 src -j DROP") != 1 || strings.Contains(got, "-mv") {
					t.Fatalf("rules after migration:\n%s", got)
				}
			}
			if err := b.Add([]Entry{{Net: p, TTL: time.Hour}, {Net: Single(v6a), TTL: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			wantNets(t, b, Single(v4a), Single(v6a), Single(netip.MustParseAddr("2001:db8::9")), p)
			if err := b.Extend([]Entry{{Net: p, TTL: 2 * time.Hour}}); err != nil {
				t.Fatal(err)
			}
			if notes, err := b.Repair([]Entry{{Net: p, TTL: time.Hour}}); err != nil || len(notes) != 0 {
				t.Fatalf("repair: %q %v", notes, err)
			}
			if err := b.Delete([]netip.Prefix{p}); err != nil {
				t.Fatal(err)
			}
			wantNets(t, b, Single(v4a), Single(v6a), Single(netip.MustParseAddr("2001:db8::9")))
			if err := b.Flush(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
