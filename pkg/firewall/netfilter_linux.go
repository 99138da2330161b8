//go:build linux

package firewall

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// family is one IP family's iptables: go-iptables for single changes and
// listing, iptables-restore for batches (one transaction, one process).
type family struct {
	v6      bool
	ipt     *iptables.IPTables
	prog    string // path of iptables / ip6tables
	restore string // path of iptables-restore / ip6tables-restore
}

const table = "filter"

// parents are the built-in chains that jump to ours.
var parents = []string{"INPUT", "FORWARD"}

func newFamilies(backend string) ([2]*family, error) {
	var fams [2]*family
	for i, v6 := range []bool{false, true} {
		prog, restore := "iptables", "iptables-restore"
		proto := iptables.ProtocolIPv4
		if v6 {
			prog, restore = "ip6tables", "ip6tables-restore"
			proto = iptables.ProtocolIPv6
		}
		for _, p := range []string{prog, restore} {
			if _, err := exec.LookPath(p); err != nil {
				return fams, &UnavailableError{Backend: backend, Err: fmt.Errorf("%s not found: %w", p, err)}
			}
		}
		path, _ := exec.LookPath(restore)
		progPath, _ := exec.LookPath(prog)
		ipt, err := iptables.New(iptables.IPFamily(proto))
		if err != nil {
			return fams, &UnavailableError{Backend: backend, Err: err}
		}
		fams[i] = &family{v6: v6, ipt: ipt, prog: progPath, restore: path}
	}
	return fams, nil
}

func (f *family) name() string {
	if f.v6 {
		return "ip6tables"
	}
	return "iptables"
}

// ensureChain creates chain and the jumps to it from INPUT and FORWARD
// (first rule, so nothing earlier accepts a banned address).
func (f *family) ensureChain(chain string) error {
	ok, err := f.ipt.ChainExists(table, chain)
	if err != nil {
		return fmt.Errorf("%s: %w", f.name(), err)
	}
	if !ok {
		if err := f.ipt.NewChain(table, chain); err != nil {
			return fmt.Errorf("%s: create chain %s: %w", f.name(), chain, err)
		}
	}
	for _, p := range parents {
		ok, err := f.ipt.Exists(table, p, "-j", chain)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name(), err)
		}
		if !ok {
			if err := f.ipt.Insert(table, p, 1, "-j", chain); err != nil {
				return fmt.Errorf("%s: jump from %s: %w", f.name(), p, err)
			}
		}
	}
	return nil
}

// removeChain deletes the jumps and the chain with everything in it.
func (f *family) removeChain(chain string) error {
	ok, err := f.ipt.ChainExists(table, chain)
	if err != nil {
		return fmt.Errorf("%s: %w", f.name(), err)
	}
	if !ok {
		return nil // no jump can refer to a missing chain
	}
	for _, p := range parents {
		// Every copy: another tool (or a repair racing one) may have
		// added a second jump, and one left keeps the chain in use.
		for range 100 {
			ok, err := f.ipt.Exists(table, p, "-j", chain)
			if err != nil {
				return fmt.Errorf("%s: %w", f.name(), err)
			}
			if !ok {
				break
			}
			if err := f.ipt.Delete(table, p, "-j", chain); err != nil {
				return fmt.Errorf("%s: %w", f.name(), err)
			}
		}
	}
	if err := f.ipt.ClearAndDeleteChain(table, chain); err != nil {
		return fmt.Errorf("%s: remove chain %s: %w", f.name(), chain, err)
	}
	return nil
}

// rules lists the rules of chain as iptables -S writes them (without the
// -N line). A missing chain has no rules.
func (f *family) rules(chain string) ([]string, error) {
	ok, err := f.ipt.ChainExists(table, chain)
	if err != nil || !ok {
		return nil, err
	}
	all, err := f.ipt.List(table, chain)
	if err != nil {
		return nil, fmt.Errorf("%s: list %s: %w", f.name(), chain, err)
	}
	var out []string
	for _, r := range all {
		if strings.HasPrefix(r, "-A ") {
			out = append(out, r)
		}
	}
	return out, nil
}

// view is what one listing of a family's filter table shows of ours.
type view struct {
	chain bool            // our chain exists
	jumps map[string]bool // parent chains that jump to it
	rules []string        // our chain's rules, as -S writes them
}

// look lists the family's whole filter table once (one process, however
// many bans) and picks out chain, the jumps to it and its rules.
func (f *family) look(chain string) (*view, error) {
	cmd := exec.Command(f.prog, "--wait", "-t", table, "-S")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s -S: %v: %s", f.name(), err, strings.TrimSpace(errb.String()))
	}
	v := &view{jumps: map[string]bool{}}
	newLine, ruleP, jump := "-N "+chain, "-A "+chain+" ", " -j "+chain
	for _, l := range strings.Split(out.String(), "\n") {
		switch {
		case l == newLine:
			v.chain = true
		case strings.HasPrefix(l, ruleP):
			v.rules = append(v.rules, l)
		case strings.HasPrefix(l, "-A ") && strings.HasSuffix(l, jump):
			if p := l[3 : len(l)-len(jump)]; !strings.Contains(p, " ") {
				v.jumps[p] = true
			}
		}
	}
	return v, nil
}

// repairBase puts back chain and the jumps to it if v lacks them and
// returns the restore lines that do it (run before any rule in chain is
// written) and what it fixed.
func (f *family) repairBase(chain string, v *view) (lines, notes []string) {
	if !v.chain {
		lines = append(lines, ":"+chain+" - [0:0]")
		notes = append(notes, fmt.Sprintf("%s: chain %s was missing: created", f.name(), chain))
	}
	for _, p := range parents {
		if !v.jumps[p] {
			lines = append(lines, "-I "+p+" 1 -j "+chain)
			notes = append(notes, fmt.Sprintf("%s: jump from %s to %s was missing: restored", f.name(), p, chain))
		}
	}
	return lines, notes
}

// banSpec is the rule spec that bans the network p.
func banSpec(p netip.Prefix) []string {
	return []string{"-s", p.String(), "-j", "DROP"}
}

// parseBan returns the address an -S line bans, if it is one of our ban
// rules and nothing else.
func parseBan(chain, rule string) (netip.Prefix, bool) {
	f := strings.Fields(rule)
	if len(f) != 6 || f[0] != "-A" || f[1] != chain || f[2] != "-s" || f[4] != "-j" || f[5] != "DROP" {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(f[3])
	if err != nil || p != p.Masked() {
		return netip.Prefix{}, false
	}
	return p, true
}

// setSpec is the rule spec that drops members of set.
func setSpec(set string) []string {
	return []string{"-m", "set", "--match-set", set, "src", "-j", "DROP"}
}

// runRestore feeds lines to iptables-restore --noflush as one transaction
// on the filter table.
func (f *family) runRestore(lines []string) error {
	var in bytes.Buffer
	in.WriteString("*filter\n")
	for _, l := range lines {
		in.WriteString(l)
		in.WriteByte('\n')
	}
	in.WriteString("COMMIT\n")
	cmd := exec.Command(f.restore, "--noflush", "--wait")
	cmd.Stdin = &in
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", f.restore, err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// IPTables is the iptables backend: one "-s ADDR -j DROP" rule per ban in
// a chain of our own, jumped to from INPUT and FORWARD, for IPv4
// (iptables) and IPv6 (ip6tables). Single changes run iptables once;
// batches and Sync run one iptables-restore transaction per family.
type IPTables struct {
	chain string
	// keepSets names the ipset rules that belong to the ipset backend
	// when both are in use: Sync keeps them.
	keepSets bool
	fams     [2]*family
}

func newIPTables(cfg Config) (*IPTables, error) {
	fams, err := newFamilies("iptables")
	if err != nil {
		return nil, err
	}
	keep := false
	for _, b := range cfg.Backends {
		keep = keep || b == "ipset"
	}
	return &IPTables{chain: cfg.Chain, keepSets: keep, fams: fams}, nil
}

// Name implements Backend.
func (*IPTables) Name() string { return "iptables" }

func split(fams [2]*family, entries []Entry) [2][]netip.Prefix {
	var out [2][]netip.Prefix
	for _, e := range entries {
		if e.Net.Addr().Is6() {
			out[1] = append(out[1], e.Net)
		} else {
			out[0] = append(out[0], e.Net)
		}
	}
	return out
}

// Sync implements Backend: per family, one transaction flushes the chain
// and writes back the wanted bans (and the ipset rule, when the ipset
// backend is in use and its rule was there), so unknown rules go away and
// no packet ever sees a half-written chain.
func (t *IPTables) Sync(entries []Entry) error {
	byFam := split(t.fams, entries)
	for i, f := range t.fams {
		if err := f.ensureChain(t.chain); err != nil {
			return err
		}
		lines := []string{"-F " + t.chain}
		if t.keepSets {
			set := SetName(t.chain, f.v6)
			rules, err := f.rules(t.chain)
			if err != nil {
				return err
			}
			want := "-A " + t.chain + " " + strings.Join(setSpec(set), " ")
			for _, r := range rules {
				if r == want {
					lines = append(lines, want)
					break
				}
			}
		}
		for _, a := range sortAddrs(byFam[i]) {
			lines = append(lines, "-A "+t.chain+" "+strings.Join(banSpec(a), " "))
		}
		if err := f.runRestore(lines); err != nil {
			return err
		}
	}
	return nil
}

// Add implements Backend.
func (t *IPTables) Add(entries []Entry) error {
	byFam := split(t.fams, entries)
	for i, f := range t.fams {
		addrs := byFam[i]
		switch {
		case len(addrs) == 1:
			// One process, no check first: this is the latency path. A
			// duplicate (the rule added by hand too) does no harm: Delete
			// removes every copy.
			if err := f.ipt.Append(table, t.chain, banSpec(addrs[0])...); err != nil {
				return fmt.Errorf("%s: add %s: %w", f.name(), addrs[0], err)
			}
		case len(addrs) > 1:
			// A batch skips addresses already present, so it stays
			// idempotent without one check per address.
			have, err := t.present(f)
			if err != nil {
				return err
			}
			var lines []string
			for _, a := range addrs {
				if have[a] == 0 {
					have[a] = 1
					lines = append(lines, "-A "+t.chain+" "+strings.Join(banSpec(a), " "))
				}
			}
			if len(lines) > 0 {
				if err := f.runRestore(lines); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// present counts the ban rules for each address in the family's chain.
func (t *IPTables) present(f *family) (map[netip.Prefix]int, error) {
	rules, err := f.rules(t.chain)
	if err != nil {
		return nil, err
	}
	have := map[netip.Prefix]int{}
	for _, r := range rules {
		if a, ok := parseBan(t.chain, r); ok {
			have[a]++
		}
	}
	return have, nil
}

// Extend implements Backend: iptables rules have no timeout.
func (*IPTables) Extend([]Entry) error { return nil }

// Delete implements Backend.
func (t *IPTables) Delete(addrs []netip.Prefix) error {
	var byFam [2][]netip.Prefix
	for _, a := range addrs {
		if a.Addr().Is6() {
			byFam[1] = append(byFam[1], a)
		} else {
			byFam[0] = append(byFam[0], a)
		}
	}
	for i, f := range t.fams {
		addrs := byFam[i]
		switch {
		case len(addrs) == 1:
			// Every copy: -D until there is none left.
			for {
				err := f.ipt.Delete(table, t.chain, banSpec(addrs[0])...)
				if e, ok := err.(*iptables.Error); ok && e.IsNotExist() {
					break
				}
				if err != nil {
					return fmt.Errorf("%s: delete %s: %w", f.name(), addrs[0], err)
				}
			}
		case len(addrs) > 1:
			have, err := t.present(f)
			if err != nil {
				return err
			}
			var lines []string
			for _, a := range addrs {
				for range have[a] {
					lines = append(lines, "-D "+t.chain+" "+strings.Join(banSpec(a), " "))
				}
				delete(have, a)
			}
			if len(lines) > 0 {
				if err := f.runRestore(lines); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// List implements Backend.
func (t *IPTables) List() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range t.fams {
		have, err := t.present(f)
		if err != nil {
			return nil, err
		}
		for a := range have {
			out = append(out, a)
		}
	}
	return sortAddrs(out), nil
}

// Flush implements Backend: it removes the jumps and the chain.
func (t *IPTables) Flush() error {
	for _, f := range t.fams {
		if err := f.removeChain(t.chain); err != nil {
			return err
		}
	}
	return nil
}

// Held implements Backend: iptables rules have no timeout.
func (t *IPTables) Held() ([]Entry, error) {
	addrs, err := t.List()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(addrs))
	for i, a := range addrs {
		out[i] = Entry{Net: a}
	}
	return out, nil
}

// Repair implements Backend: per family, one listing, and one
// iptables-restore transaction if anything is missing.
func (t *IPTables) Repair(entries []Entry) ([]string, error) {
	byFam := split(t.fams, entries)
	var notes []string
	for i, f := range t.fams {
		v, err := f.look(t.chain)
		if err != nil {
			return notes, err
		}
		lines, fixed := f.repairBase(t.chain, v)
		have := map[netip.Prefix]bool{}
		for _, r := range v.rules {
			if a, ok := parseBan(t.chain, r); ok {
				have[a] = true
			}
		}
		lost := 0
		for _, a := range sortAddrs(byFam[i]) {
			if !have[a] {
				have[a] = true
				lost++
				lines = append(lines, "-A "+t.chain+" "+strings.Join(banSpec(a), " "))
			}
		}
		if len(lines) == 0 {
			continue
		}
		if err := f.runRestore(lines); err != nil {
			return notes, err
		}
		notes = append(notes, fixed...)
		if lost > 0 {
			notes = append(notes, fmt.Sprintf("%s: chain %s lost %d rules: restored", f.name(), t.chain, lost))
		}
	}
	return notes, nil
}
