package ban

import (
	"net/netip"
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
func Single(addr netip.Addr) netip.Prefix {
	return netip.PrefixFrom(addr, addr.BitLen())
}

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

// vetoed returns whether the network p, wider than one address, contains
// an address that must never be banned: an own address or one inside an
// allow-list network (an allow-list network that overlaps p counts too).
func (m *Manager) vetoed(p netip.Prefix) bool {
	if p.IsSingleIP() {
		return false
	}
	for a := range m.own {
		if p.Contains(a) {
			return true
		}
	}
	for _, n := range m.policy.Allow {
		if n.Overlaps(p) {
			return true
		}
	}
	return false
}
