//go:build linux

package firewall

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// maxSetTimeout is the longest timeout the kernel takes for an ipset entry
// (in seconds, about 24 days).
const maxSetTimeout = 2147483

// setMaxElements bounds each set; the kernel's default (65536) is low for a
// server under a wide scan.
const setMaxElements = 1 << 20

// IPSet is the ipset backend: one set per family (SetName), a hash:ip set
// for IPv4 and a hash:net set for IPv6 (an IPv6 attacker is banned as its
// /64 or so; a single address is a /128 member), changed
// over netlink (no process per address), and one rule in our chain that
// drops the set's members: one lookup per packet however many bans.
//
// The sets are created with timeout support and every entry carries the
// time its ban has left (plus a second): block's reaper lifts bans on time,
// and if block is dead the kernel lifts them anyway, so a crash never leaves
// a ban forever. A restarted block re-adds live bans from its state.
type IPSet struct {
	chain string
	// ownsChain is true when the iptables backend is not in use: then Sync
	// removes every other rule from the chain.
	ownsChain bool
	fams      [2]*family
}

func newIPSet(cfg Config) (*IPSet, error) {
	fams, err := newFamilies("ipset")
	if err != nil {
		return nil, err
	}
	if _, _, err := netlink.IpsetProtocol(); err != nil {
		return nil, &UnavailableError{Backend: "ipset", Err: fmt.Errorf("kernel ipset over netlink: %w", err)}
	}
	owns := true
	for _, b := range cfg.Backends {
		owns = owns && b != "iptables"
	}
	return &IPSet{chain: cfg.Chain, ownsChain: owns, fams: fams}, nil
}

// Name implements Backend.
func (*IPSet) Name() string { return "ipset" }

// setTimeout returns the kernel timeout for an entry with ttl left: ttl
// plus a second, or 0 (no kernel timeout) for a ban longer than the kernel
// can time, which block's reaper alone then lifts.
func setTimeout(ttl time.Duration) *uint32 {
	s := max(math.Ceil(ttl.Seconds())+1, 1)
	if s > maxSetTimeout {
		s = 0
	}
	v := uint32(s)
	return &v
}

func (s *IPSet) set(p netip.Prefix) string { return SetName(s.chain, p.Addr().Is6()) }

// setType is the type of the family's set.
func setType(v6 bool) string {
	if v6 {
		return "hash:net"
	}
	return "hash:ip"
}

// ensureSet creates the family's set if it does not exist, and moves the
// members of an IPv6 hash:ip set (what block before prefix bans created)
// to a hash:net set of the same name.
func (s *IPSet) ensureSet(f *family) error {
	name := SetName(s.chain, f.v6)
	res, err := netlink.IpsetList(name)
	if err == nil {
		if f.v6 && res.TypeName == "hash:ip" && res.Timeout != nil {
			// The rule matching the set holds a reference, so the set can
			// be neither destroyed nor renamed in place: move it out to a
			// temporary set and back, each move creating the new set,
			// copying the members, swapping the rule and destroying the
			// old set; packets always meet one of the two.
			tmp := name + "-mv"
			if err := s.moveSet(f, name, tmp); err != nil {
				return err
			}
			return s.moveSet(f, tmp, name)
		}
		if res.TypeName != setType(f.v6) || res.Timeout == nil {
			return fmt.Errorf("ipset: set %s exists but is not a %s set with timeouts: run 'block flush' first", name, setType(f.v6))
		}
		return nil
	}
	return createSet(name, f.v6)
}

func createSet(name string, v6 bool) error {
	fam := uint8(unix.AF_INET)
	if v6 {
		fam = unix.AF_INET6
	}
	zero := uint32(0)
	err := netlink.IpsetCreate(name, setType(v6), netlink.IpsetCreateOptions{Family: fam, Timeout: &zero, MaxElements: setMaxElements})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ipset: create %s: %w", name, err)
	}
	return nil
}

// moveSet creates the set to (of the family's type), copies from's members
// with the time they have left, puts a rule matching to ahead of the one
// matching from, removes that one and destroys from.
func (s *IPSet) moveSet(f *family, from, to string) error {
	res, err := netlink.IpsetList(from)
	if err != nil {
		return fmt.Errorf("ipset: list %s: %w", from, err)
	}
	if err := createSet(to, f.v6); err != nil {
		return err
	}
	for _, e := range res.Entries {
		n := netlink.IPSetEntry{IP: e.IP, CIDR: e.CIDR, Timeout: e.Timeout, Replace: true}
		if n.CIDR == 0 {
			n.CIDR = 128
		}
		if err := netlink.IpsetAdd(to, &n); err != nil {
			return fmt.Errorf("ipset: copy %s to %s: %w", e.IP, to, err)
		}
	}
	if err := f.ensureChain(s.chain); err != nil {
		return err
	}
	had, err := f.ipt.Exists(table, s.chain, setSpec(from)...)
	if err != nil {
		return fmt.Errorf("%s: %w", f.name(), err)
	}
	if had {
		lines := []string{"-I " + s.chain + " 1 " + strings.Join(setSpec(to), " "), "-D " + s.chain + " " + strings.Join(setSpec(from), " ")}
		if err := f.runRestore(lines); err != nil {
			return err
		}
	}
	if err := netlink.IpsetDestroy(from); err != nil {
		return fmt.Errorf("ipset: destroy %s: %w", from, err)
	}
	return nil
}

// Sync implements Backend.
func (s *IPSet) Sync(entries []Entry) error {
	want := map[netip.Prefix]Entry{}
	for _, e := range entries {
		want[e.Net] = e
	}
	for _, f := range s.fams {
		if err := s.ensureSet(f); err != nil {
			return err
		}
		if err := f.ensureChain(s.chain); err != nil {
			return err
		}
		name := SetName(s.chain, f.v6)
		rule := "-A " + s.chain + " " + strings.Join(setSpec(name), " ")
		if s.ownsChain {
			// One transaction: no moment without the rule.
			if err := f.runRestore([]string{"-F " + s.chain, rule}); err != nil {
				return err
			}
		} else {
			ok, err := f.ipt.Exists(table, s.chain, setSpec(name)...)
			if err != nil {
				return fmt.Errorf("%s: %w", f.name(), err)
			}
			if !ok {
				if err := f.ipt.Insert(table, s.chain, 1, setSpec(name)...); err != nil {
					return fmt.Errorf("%s: add set rule: %w", f.name(), err)
				}
			}
		}
		have, err := listSet(name)
		if err != nil {
			return err
		}
		for _, a := range have {
			if _, ok := want[a]; !ok {
				if err := delAddr(name, a); err != nil {
					return err
				}
			}
		}
	}
	// Every wanted entry is (re)written: it also sets the kernel timeout.
	return s.put(entries)
}

// member returns the network a set member stands for.
func member(e netlink.IPSetEntry) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(e.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	bits := int(e.CIDR)
	if bits == 0 || bits > a.BitLen() {
		bits = a.BitLen()
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

func entryOf(p netip.Prefix) *netlink.IPSetEntry {
	e := &netlink.IPSetEntry{IP: toIP(p.Addr())}
	if p.Addr().Is6() {
		e.CIDR = uint8(p.Bits())
	}
	return e
}

func listSet(name string) ([]netip.Prefix, error) {
	res, err := netlink.IpsetList(name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("ipset: list %s: %w", name, err)
	}
	out := make([]netip.Prefix, 0, len(res.Entries))
	for _, e := range res.Entries {
		if p, ok := member(e); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

func toIP(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

func delAddr(set string, a netip.Prefix) error {
	err := netlink.IpsetDel(set, entryOf(a))
	if err == nil || errors.Is(err, unix.ENOENT) { // ENOENT: no such set
		return nil
	}
	// Already gone (the kernel's own timeout, or a second delete) is fine.
	if ok, terr := netlink.IpsetTest(set, entryOf(a)); terr == nil && !ok {
		return nil
	}
	return fmt.Errorf("ipset: delete %s from %s: %w", a, set, err)
}

// put adds or refreshes entries (Replace: an existing entry gets the new
// timeout instead of an error).
func (s *IPSet) put(entries []Entry) error {
	for _, e := range entries {
		name := s.set(e.Net)
		n := entryOf(e.Net)
		n.Timeout, n.Replace = setTimeout(e.TTL), true
		if err := netlink.IpsetAdd(name, n); err != nil {
			return fmt.Errorf("ipset: add %s to %s: %w", e.Net, name, err)
		}
	}
	return nil
}

// Add implements Backend.
func (s *IPSet) Add(entries []Entry) error { return s.put(entries) }

// Extend implements Backend: it restarts the kernel timeout.
func (s *IPSet) Extend(entries []Entry) error { return s.put(entries) }

// Delete implements Backend.
func (s *IPSet) Delete(addrs []netip.Prefix) error {
	for _, a := range addrs {
		if err := delAddr(s.set(a), a); err != nil {
			return err
		}
	}
	return nil
}

// List implements Backend.
func (s *IPSet) List() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range s.fams {
		l, err := listSet(SetName(s.chain, f.v6))
		if err != nil {
			return nil, err
		}
		out = append(out, l...)
	}
	return sortAddrs(out), nil
}

// Flush implements Backend: it removes the chain (a set in use by a rule
// cannot be destroyed), then the sets.
func (s *IPSet) Flush() error {
	for _, f := range s.fams {
		if err := f.removeChain(s.chain); err != nil {
			return err
		}
	}
	for _, f := range s.fams {
		name := SetName(s.chain, f.v6)
		if err := netlink.IpsetDestroy(name); err != nil && !errors.Is(err, unix.ENOENT) {
			if _, lerr := netlink.IpsetList(name); lerr == nil {
				return fmt.Errorf("ipset: destroy %s: %w", name, err)
			}
		}
	}
	return nil
}

// Held implements Backend: each member with its kernel timeout left.
func (s *IPSet) Held() ([]Entry, error) {
	var out []Entry
	for _, f := range s.fams {
		res, err := netlink.IpsetList(SetName(s.chain, f.v6))
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ipset: list %s: %w", SetName(s.chain, f.v6), err)
		}
		for _, e := range res.Entries {
			a, ok := member(e)
			if !ok {
				continue
			}
			var ttl time.Duration
			if e.Timeout != nil {
				ttl = time.Duration(*e.Timeout) * time.Second
			}
			out = append(out, Entry{Net: a, TTL: ttl})
		}
	}
	return out, nil
}

// Repair implements Backend: per family, one netlink dump of the set and
// one listing of the filter table; what is missing is put back (the set,
// its members with the time they have left, the chain, the jumps, the
// rule matching the set).
func (s *IPSet) Repair(entries []Entry) ([]string, error) {
	byFam := map[bool][]Entry{}
	for _, e := range entries {
		byFam[e.Net.Addr().Is6()] = append(byFam[e.Net.Addr().Is6()], e)
	}
	var notes []string
	for _, f := range s.fams {
		name := SetName(s.chain, f.v6)
		res, err := netlink.IpsetList(name)
		switch {
		case errors.Is(err, unix.ENOENT):
			if err := s.ensureSet(f); err != nil {
				return notes, err
			}
			notes = append(notes, fmt.Sprintf("ipset: set %s was missing: created", name))
			res = &netlink.IPSetResult{}
		case err != nil:
			return notes, fmt.Errorf("ipset: list %s: %w", name, err)
		}
		have := make(map[netip.Prefix]bool, len(res.Entries))
		for _, e := range res.Entries {
			if a, ok := member(e); ok {
				have[a] = true
			}
		}
		var lost []Entry
		for _, e := range byFam[f.v6] {
			// A ban about to end may have left the set by the kernel's
			// own timeout: that is no loss.
			if !have[e.Net] && e.TTL > time.Second {
				lost = append(lost, e)
			}
		}
		v, err := f.look(s.chain)
		if err != nil {
			return notes, err
		}
		lines, fixed := f.repairBase(s.chain, v)
		rule := "-A " + s.chain + " " + strings.Join(setSpec(name), " ")
		hasRule := false
		for _, r := range v.rules {
			hasRule = hasRule || r == rule
		}
		if !hasRule {
			lines = append(lines, "-I "+s.chain+" 1 "+strings.Join(setSpec(name), " "))
			fixed = append(fixed, fmt.Sprintf("%s: rule matching set %s in chain %s was missing: restored", f.name(), name, s.chain))
		}
		if len(lines) > 0 {
			if err := f.runRestore(lines); err != nil {
				return notes, err
			}
			notes = append(notes, fixed...)
		}
		if len(lost) > 0 {
			if err := s.put(lost); err != nil {
				return notes, err
			}
			notes = append(notes, fmt.Sprintf("ipset: set %s lost %d members: restored", name, len(lost)))
		}
	}
	return notes, nil
}
