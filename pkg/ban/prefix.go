package ban

import (
	"net/netip"

	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// IPv6 prefix bans: an IPv6 attacker owns at least its /64 and rotates
// addresses inside it, so block bans an IPv6 source as its network of
// --ipv6-prefix bits. IPv4 sources stay single addresses.

// DefaultIPv6Prefix is block's and correlate's --ipv6-prefix default.
const DefaultIPv6Prefix = 64

// MinIPv6Prefix and MaxIPv6Prefix bound --ipv6-prefix.
const (
	MinIPv6Prefix = 48
	MaxIPv6Prefix = 128
)

// Single returns addr as a one-address prefix (/32 or /128).
func Single(addr netip.Addr) netip.Prefix { return firewall.Single(addr) }

// PrefixFor returns the network an alert's source addr is banned as:
// IPv4 as itself; IPv6 as the alert's srcPrefix (correlate's src_prefix)
// when that parses, is canonical IPv6 (masked), contains addr and has
// MinIPv6Prefix to 128 bits; else addr's own network of bits bits. bits outside 48..128 is taken as
// 128 (the caller validates the flag).
func PrefixFor(addr netip.Addr, srcPrefix string, bits int) netip.Prefix {
	if !addr.Is6() || addr.Is4In6() {
		return Single(addr.Unmap())
	}
	if srcPrefix != "" && len(srcPrefix) <= 64 {
		if p, err := netip.ParsePrefix(srcPrefix); err == nil && p.Addr().Is6() && p.Addr().Zone() == "" &&
			p == p.Masked() && p.Bits() >= MinIPv6Prefix && p.Contains(addr) {
			return p
		}
	}
	if bits < MinIPv6Prefix || bits > MaxIPv6Prefix {
		bits = MaxIPv6Prefix
	}
	p, _ := addr.Prefix(bits)
	return p
}

// vetoed returns why the network p, wider than one address, must not be
// banned whole: it holds an own address ("own-address") or an address of
// the allow list ("allowlisted": an allow-list network that overlaps p);
// "" if neither.
func (m *Manager) vetoed(p netip.Prefix) string {
	if p.IsSingleIP() {
		return ""
	}
	for a := range m.own {
		if p.Contains(a) {
			return "own-address"
		}
	}
	for _, n := range m.policy.Allow {
		if n.Overlaps(p) {
			return "allowlisted"
		}
	}
	return ""
}
