package block

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// shareLock reports whether two blocks with these configurations would
// hold a lock in common (so the second refuses to start).
func shareLock(a, b firewall.Config) bool {
	kb := instanceKeys(b)
	for _, k := range instanceKeys(a) {
		if slices.Contains(kb, k) {
			return true
		}
	}
	return false
}

// Two blocks that would manage the same things exclude each other: the
// ipset sets are named after the chain in lower case (QUIETWATCH and
// quietwatch both use quietwatch-v4, and each block's start would remove
// the other's members), and a hosts.deny file named through a symlink is
// the file it points to.
func TestInstanceKeysSameThings(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "hosts.deny")
	os.WriteFile(real, nil, 0o644)
	link := filepath.Join(dir, "link.deny")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		a, b firewall.Config
		want bool
	}{
		{"ipset, chains differing in case", firewall.Config{Chain: "QUIETWATCH", Backends: []string{"ipset"}}, firewall.Config{Chain: "quietwatch", Backends: []string{"ipset"}}, true},
		{"iptables, chains differing in case", firewall.Config{Chain: "QUIETWATCH", Backends: []string{"iptables"}}, firewall.Config{Chain: "quietwatch", Backends: []string{"iptables"}}, false},
		{"iptables and ipset, one chain", firewall.Config{Chain: "QW", Backends: []string{"iptables"}}, firewall.Config{Chain: "QW", Backends: []string{"ipset"}}, true},
		{"hosts.deny through a symlink", firewall.Config{HostsDeny: real, Backends: []string{"hosts-deny"}}, firewall.Config{HostsDeny: link, Backends: []string{"hosts-deny"}}, true},
		{"two hosts.deny files", firewall.Config{HostsDeny: real, Backends: []string{"hosts-deny"}}, firewall.Config{HostsDeny: filepath.Join(dir, "other"), Backends: []string{"hosts-deny"}}, false},
	} {
		if got := shareLock(c.a, c.b); got != c.want {
			t.Errorf("%s: share a lock: %v, want %v (%q, %q)", c.name, got, c.want, instanceKeys(c.a), instanceKeys(c.b))
		}
	}
}
