// Package firewall changes what the kernel (or tcp_wrappers) lets in: it
// adds and removes address bans through a small Backend interface with an
// iptables, an ipset, a hosts.deny, a dry-run and a fake implementation.
// It knows nothing of alerts, timers or state: block's ban package decides,
// a Backend only carries the decision out.
package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Entry is one ban: a network (a single address is a /32 or a /128; an
// IPv6 attacker is banned as its /64 or so) and how long it has left to live. Backends
// that can expire entries on their own (ipset) use TTL as a safety net, so
// a crashed block never leaves a ban forever; the others ignore it.
type Entry struct {
	Net netip.Prefix
	TTL time.Duration
}

// Backend applies bans. Every method is idempotent: adding a present
// address or deleting an absent one is not an error. Add and Delete take
// batches so a backend can apply many changes in one transaction.
type Backend interface {
	// Name is the backend's name as written in --backend.
	Name() string
	// Sync makes the backend hold exactly entries: it creates what it
	// needs (a chain, sets, jump rules), adds missing bans and removes any
	// other ban or unknown rule in what it owns. block calls it at start.
	Sync(entries []Entry) error
	// Add bans addresses that are not banned yet.
	Add(entries []Entry) error
	// Extend refreshes the TTL of addresses already banned.
	Extend(entries []Entry) error
	// Delete lifts bans.
	Delete(nets []netip.Prefix) error
	// List returns the networks the backend currently bans.
	List() ([]netip.Prefix, error)
	// Held returns the bans the backend holds now in what it owns, each
	// with the time the backend itself would keep it (TTL 0: the backend
	// has no timeouts of its own). block adopts them when its state is
	// new, empty or lost.
	Held() ([]Entry, error)
	// Repair checks that the backend still enforces entries (the live
	// bans it took) and everything they need (chain, jumps, sets, the
	// matching rule), puts back whatever is missing and removes nothing.
	// It looks with one listing (not one check per ban), and returns one
	// line for each thing it had to fix, e.g. "iptables: chain QUIETWATCH
	// lost 3 rules: restored".
	Repair(entries []Entry) ([]string, error)
	// Flush removes every ban and everything the backend created.
	Flush() error
}

// Names lists the backends New knows, in the order block applies them.
var Names = []string{"ipset", "iptables", "nftables", "hosts-deny", "dry-run"}

// Config is what New needs to build a backend.
type Config struct {
	// Chain is the iptables chain of our own (iptables and ipset); the
	// nftables backend names its table after it, in lower case.
	Chain string
	// HostsDeny is the hosts.deny file (hosts-deny).
	HostsDeny string
	// Backends lists every backend in use, so iptables and ipset, which
	// share the chain, each leave the other's rules alone.
	Backends []string
}

// UnavailableError reports a program or kernel feature a backend needs
// and cannot find (exit 69).
type UnavailableError struct {
	Backend string
	Err     error
}

func (e *UnavailableError) Error() string { return e.Backend + ": " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// New returns the backend called name.
func New(name string, cfg Config) (Backend, error) {
	switch name {
	case "iptables", "ipset":
		if err := CheckChain(cfg.Chain); err != nil {
			return nil, err
		}
		if name == "iptables" {
			return newIPTables(cfg)
		}
		return newIPSet(cfg)
	case "nftables":
		// Our table is named after the chain (lower case).
		if err := CheckChain(cfg.Chain); err != nil {
			return nil, err
		}
		return newNFTables(cfg)
	case "hosts-deny":
		if cfg.HostsDeny == "" {
			return nil, errors.New("hosts-deny: no file given")
		}
		return NewHostsDeny(cfg.HostsDeny), nil
	case "dry-run":
		return NewDryRun(), nil
	}
	return nil, fmt.Errorf("unknown backend %q (want one of %s)", name, strings.Join(Names, ", "))
}

// CheckChain reports whether name can be an iptables chain of ours: 1 to
// 28 letters, digits, '-' or '_', starting with a letter, and not a
// built-in chain or target.
func CheckChain(name string) error {
	if name == "" || len(name) > 28 {
		return fmt.Errorf("chain %q: want 1 to 28 characters", name)
	}
	for i, c := range name {
		letter := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '-' || c == '_')) {
			return fmt.Errorf("chain %q: want letters, digits, '-' and '_', starting with a letter", name)
		}
	}
	switch strings.ToUpper(name) {
	case "INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING", "ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "QUEUE":
		return fmt.Errorf("chain %q: a built-in chain or target", name)
	}
	return nil
}

// SetName returns the name of the ipset set for chain and IP family.
func SetName(chain string, v6 bool) string {
	if v6 {
		return strings.ToLower(chain) + "-v6"
	}
	return strings.ToLower(chain) + "-v4"
}

// ComparePrefix orders networks by address, then by length.
func ComparePrefix(x, y netip.Prefix) int {
	if c := x.Addr().Compare(y.Addr()); c != 0 {
		return c
	}
	return x.Bits() - y.Bits()
}

// sortAddrs sorts networks so batches and listings are deterministic.
func sortAddrs(a []netip.Prefix) []netip.Prefix {
	slices.SortFunc(a, ComparePrefix)
	return a
}

// Single returns addr as a one-address network (/32 or /128).
func Single(addr netip.Addr) netip.Prefix { return netip.PrefixFrom(addr, addr.BitLen()) }

// PrefixText is the text of a ban's network: a plain address for a single
// address, "2001:db8::/64" for a wider network.
func PrefixText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// ParsePrefix reads what PrefixText wrote: a plain address (a single
// address) or a canonical network; IPv4-mapped IPv6 is folded to IPv4.
func ParsePrefix(s string) (netip.Prefix, bool) {
	if len(s) > 64 {
		return netip.Prefix{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, false
		}
		return Single(a.Unmap()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p != p.Masked() || p.Addr().Is4In6() {
		return netip.Prefix{}, false
	}
	return p, true
}

// memory is the set of bans of the in-memory backends.
type memory map[netip.Prefix]time.Duration

func (m memory) held() []Entry {
	out := make([]Entry, 0, len(m))
	for _, a := range m.list() {
		out = append(out, Entry{Net: a, TTL: m[a]})
	}
	return out
}

// repair puts back the entries missing from m and says how many were.
func (m memory) repair(name string, entries []Entry) []string {
	lost := 0
	for _, e := range entries {
		if _, ok := m[e.Net]; !ok {
			m[e.Net] = e.TTL
			lost++
		}
	}
	if lost == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s: lost %d bans: restored", name, lost)}
}

func (m memory) list() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	return sortAddrs(out)
}
