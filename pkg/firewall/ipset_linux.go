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

// IPSet is the ipset backend: one hash:ip set per family (SetName), changed
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

func (s *IPSet) set(addr netip.Addr) string { return SetName(s.chain, addr.Is6()) }

// ensureSet creates the family's set if it does not exist.
func (s *IPSet) ensureSet(f *family) error {
	name := SetName(s.chain, f.v6)
	res, err := netlink.IpsetList(name)
	if err == nil {
		if res.TypeName != "hash:ip" || res.Timeout == nil {
			return fmt.Errorf("ipset: set %s exists but is not a hash:ip set with timeouts: run 'block flush' first", name)
		}
		return nil
	}
	fam := uint8(unix.AF_INET)
	if f.v6 {
		fam = unix.AF_INET6
	}
	zero := uint32(0)
	err = netlink.IpsetCreate(name, "hash:ip", netlink.IpsetCreateOptions{Family: fam, Timeout: &zero, MaxElements: setMaxElements})
	if err != nil {
		return fmt.Errorf("ipset: create %s: %w", name, err)
	}
	return nil
}

// Sync implements Backend.
func (s *IPSet) Sync(entries []Entry) error {
	want := map[netip.Addr]Entry{}
	for _, e := range entries {
		want[e.Addr] = e
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

func listSet(name string) ([]netip.Addr, error) {
	res, err := netlink.IpsetList(name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("ipset: list %s: %w", name, err)
	}
	out := make([]netip.Addr, 0, len(res.Entries))
	for _, e := range res.Entries {
		if a, ok := netip.AddrFromSlice(e.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

func toIP(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

func delAddr(set string, a netip.Addr) error {
	err := netlink.IpsetDel(set, &netlink.IPSetEntry{IP: toIP(a)})
	if err == nil || errors.Is(err, unix.ENOENT) { // ENOENT: no such set
		return nil
	}
	// Already gone (the kernel's own timeout, or a second delete) is fine.
	if ok, terr := netlink.IpsetTest(set, &netlink.IPSetEntry{IP: toIP(a)}); terr == nil && !ok {
		return nil
	}
	return fmt.Errorf("ipset: delete %s from %s: %w", a, set, err)
}

// put adds or refreshes entries (Replace: an existing entry gets the new
// timeout instead of an error).
func (s *IPSet) put(entries []Entry) error {
	for _, e := range entries {
		name := s.set(e.Addr)
		err := netlink.IpsetAdd(name, &netlink.IPSetEntry{IP: toIP(e.Addr), Timeout: setTimeout(e.TTL), Replace: true})
		if err != nil {
			return fmt.Errorf("ipset: add %s to %s: %w", e.Addr, name, err)
		}
	}
	return nil
}

// Add implements Backend.
func (s *IPSet) Add(entries []Entry) error { return s.put(entries) }

// Extend implements Backend: it restarts the kernel timeout.
func (s *IPSet) Extend(entries []Entry) error { return s.put(entries) }

// Delete implements Backend.
func (s *IPSet) Delete(addrs []netip.Addr) error {
	for _, a := range addrs {
		if err := delAddr(s.set(a), a); err != nil {
			return err
		}
	}
	return nil
}

// List implements Backend.
func (s *IPSet) List() ([]netip.Addr, error) {
	var out []netip.Addr
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
			a, ok := netip.AddrFromSlice(e.IP)
			if !ok {
				continue
			}
			var ttl time.Duration
			if e.Timeout != nil {
				ttl = time.Duration(*e.Timeout) * time.Second
			}
			out = append(out, Entry{Addr: a.Unmap(), TTL: ttl})
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
		byFam[e.Addr.Is6()] = append(byFam[e.Addr.Is6()], e)
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
		have := make(map[netip.Addr]bool, len(res.Entries))
		for _, e := range res.Entries {
			if a, ok := netip.AddrFromSlice(e.IP); ok {
				have[a.Unmap()] = true
			}
		}
		var lost []Entry
		for _, e := range byFam[f.v6] {
			// A ban about to end may have left the set by the kernel's
			// own timeout: that is no loss.
			if !have[e.Addr] && e.TTL > time.Second {
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
