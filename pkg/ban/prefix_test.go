package ban

import (
	"net/netip"
	"testing"
)

func TestPrefixFor(t *testing.T) {
	for _, c := range []struct {
		addr, src string
		bits      int
		want      string
	}{
		{"198.51.100.7", "", 64, "198.51.100.7/32"},
		{"::ffff:198.51.100.7", "", 64, "198.51.100.7/32"},
		{"2001:db8::1:2", "", 64, "2001:db8::/64"},
		{"2001:db8::1:2", "", 128, "2001:db8::1:2/128"},
		{"2001:db8:0:1::5", "", 48, "2001:db8::/48"},
		{"2001:db8::1", "2001:db8::/56", 64, "2001:db8::/56"},   // correlate's own, consistent
		{"2001:db8::1", "2001:db9::/64", 64, "2001:db8::/64"},   // does not contain src_ip
		{"2001:db8::1", "2001:db8::1/64", 64, "2001:db8::/64"},  // not canonical
		{"2001:db8::1", "::/0", 64, "2001:db8::/64"},            // too wide
		{"2001:db8::1", "2001:db8::/32", 64, "2001:db8::/64"},   // too wide
		{"2001:db8::1", "198.51.100.0/24", 64, "2001:db8::/64"}, // wrong family
		{"2001:db8::1", "rm -rf /", 64, "2001:db8::/64"},
		{"2001:db8::1", "", 7, "2001:db8::1/128"},
	} {
		if got := PrefixFor(netip.MustParseAddr(c.addr), c.src, c.bits); got.String() != c.want {
			t.Errorf("PrefixFor(%s, %q, %d) = %s, want %s", c.addr, c.src, c.bits, got, c.want)
		}
	}
}

func TestVetoed(t *testing.T) {
	m := NewManager(Policy{Allow: []netip.Prefix{netip.MustParsePrefix("2001:db8:0:1::10/128")}}, nil, nil)
	m.SetOwn([]netip.Addr{netip.MustParseAddr("2001:db8:0:2::1")})
	for p, want := range map[string]string{
		"2001:db8::/64":       "",
		"2001:db8:0:1::/64":   "allowlisted", // the allow list's address
		"2001:db8:0:2::/64":   "own-address", // our own address
		"2001:db8::/48":       "own-address", // both
		"2001:db8:0:1::5/128": "",            // a single address is judged on its own
		"198.51.100.7/32":     "",
	} {
		if got := m.vetoed(netip.MustParsePrefix(p)); got != want {
			t.Errorf("vetoed(%s) = %q, want %q", p, got, want)
		}
	}
}
