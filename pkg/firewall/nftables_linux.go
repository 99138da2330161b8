//go:build linux

package firewall

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// NFTables is the nftables backend: a table of our own (inet <chain lower
// case>, "inet quietwatch" by default), changed over netlink with
// github.com/google/nftables. It holds four sets, local-v4, local-v6,
// fleet-v4 and fleet-v6 (one per kind of ban and family, so one flush of
// the fleet sets lifts every peer ban and nothing else), and two base
// chains, input and forward, hooked at priority -10: ahead of the usual
// filter chains (iptables-nft, ufw, firewalld, docker: priority 0), and a
// drop in any base chain is final whatever later chains accept. Each chain
// has one rule per set: one lookup per packet however many bans.
//
// The sets have the interval flag (so a ban can be a prefix: one element
// per range, a start and an end element in the kernel) and per-element
// timeouts: an element lives the time its ban has left plus a second, so
// a crashed block never leaves a ban forever, as with ipset.
//
// Only our table is ever touched: other tables coexist. A block with this
// backend puts its bans in the local sets; the fleet sets are created and
// enforced, and lifted by Flush.
type NFTables struct {
	mu    sync.Mutex // one netlink batch at a time
	table *nftables.Table
	kind  string         // the sets this backend bans into: "local"
	c     *nftables.Conn // see conn
	// bigBuffer is true when the connection got nftSendBuffer.
	bigBuffer bool
	// complete is true when the last look found (or made) the table with
	// all its sets, chains and rules: Add then writes at once.
	complete bool
}

// nftKinds are the kinds of ban that have sets of their own.
var nftKinds = []string{"local", "fleet"}

// nftChains are our base chains and their hooks.
var nftChains = []struct {
	name string
	hook *nftables.ChainHook
}{{"input", nftables.ChainHookInput}, {"forward", nftables.ChainHookForward}}

const (
	// nftPriority puts our chains before the filter chains (priority 0).
	nftPriority = -10
	// nftChunk is the most elements one netlink message carries:
	// google/nftables v0.3.0 silently loses elements past about 2,300 in
	// one SetAddElements call (the nested attribute's 16-bit length).
	nftChunk = 1000
	// nftFlushBytes bounds one batch (several messages, one transaction):
	// the kernel refuses a send larger than the socket's buffer. We raise
	// the buffer to nftSendBuffer (SO_SNDBUFFORCE, as root): every commit
	// of an interval set walks all of it, so few large transactions are
	// much faster than many small ones (100,000 bans: 7 s in 120 kB
	// batches). Without the raise, batches stay under the default buffer
	// (212992 bytes).
	nftFlushBytes      = 4 << 20
	nftSendBuffer      = 8 << 20
	nftSmallFlushBytes = 120_000
	// maxNFTTimeout is the longest element timeout we give; a longer ban
	// gets none, and block's reaper alone lifts it.
	maxNFTTimeout = 365 * 24 * time.Hour
)

// NFTSetName returns the name of the nftables set for a kind of ban
// ("local" or "fleet") and IP family.
func NFTSetName(kind string, v6 bool) string {
	if v6 {
		return kind + "-v6"
	}
	return kind + "-v4"
}

// NFTTable returns the name of our nftables table (family inet) for chain.
func NFTTable(chain string) string { return strings.ToLower(chain) }

func newNFTables(cfg Config) (*NFTables, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, &UnavailableError{Backend: "nftables", Err: fmt.Errorf("netlink: %w", err)}
	}
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		return nil, &UnavailableError{Backend: "nftables", Err: fmt.Errorf("kernel nf_tables over netlink: %w", err)}
	}
	t := &nftables.Table{Name: NFTTable(cfg.Chain), Family: nftables.TableFamilyINet}
	return &NFTables{table: t, kind: "local"}, nil
}

// Name implements Backend.
func (*NFTables) Name() string { return "nftables" }

func (n *NFTables) what() string { return "nftables: table inet " + n.table.Name }

func (n *NFTables) set(kind string, v6 bool) *nftables.Set {
	key := nftables.TypeIPAddr
	if v6 {
		key = nftables.TypeIP6Addr
	}
	return &nftables.Set{Table: n.table, Name: NFTSetName(kind, v6), KeyType: key, Interval: true, HasTimeout: true}
}

func (n *NFTables) chain(name string, hook *nftables.ChainHook) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: n.table, Hooknum: hook, Priority: nftables.ChainPriorityRef(nftPriority),
		Type: nftables.ChainTypeFilter, Policy: ptr(nftables.ChainPolicyAccept)}
}

func ptr[T any](v T) *T { return &v }

// rule returns the rule of chain that drops the members of set.
func (n *NFTables) rule(c *nftables.Chain, set *nftables.Set, v6 bool) *nftables.Rule {
	proto, off, size := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if v6 {
		proto, off, size = unix.NFPROTO_IPV6, 8, 16
	}
	return &nftables.Rule{Table: n.table, Chain: c, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}}
}

// ruleSet returns the set a rule of ours drops the members of, or "".
func ruleSet(r *nftables.Rule) string {
	var set string
	var off uint32
	drop := false
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Lookup:
			if !e.Invert {
				set = e.SetName
			}
		case *expr.Payload:
			off = e.Offset
		case *expr.Verdict:
			drop = e.Kind == expr.VerdictDrop
		}
	}
	want := uint32(12)
	if strings.HasSuffix(set, "-v6") {
		want = 8
	}
	if !drop || off != want {
		return ""
	}
	return set
}

// nftRange is one element of an interval set: the addresses from start up
// to end, excluded (end invalid: up to the last address of the family).
type nftRange struct {
	start, end netip.Addr
	expires    time.Duration
}

// rangeOf returns the range of the network p.
func rangeOf(p netip.Prefix) nftRange {
	p = p.Masked()
	return nftRange{start: p.Addr(), end: lastOf(p).Next()}
}

// lastOf returns the last address of the network p.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	off := 128 - p.Addr().BitLen() // IPv4 sits in the last 4 bytes
	for i := off + p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// prefix returns the network the range holds when it is exactly one (a
// single address is a /32 or /128).
func (r nftRange) prefix() (netip.Prefix, bool) {
	for bits := r.start.BitLen(); bits >= 0; bits-- {
		p := netip.PrefixFrom(r.start, bits)
		if p.Masked().Addr() != r.start {
			break
		}
		end := lastOf(p).Next()
		if end == r.end || !end.IsValid() && !r.end.IsValid() {
			return p, true
		}
		if r.end.IsValid() && end.IsValid() && end.Compare(r.end) > 0 {
			break
		}
	}
	return netip.Prefix{}, false
}

func (r nftRange) contains(a netip.Addr) bool {
	return a.Is4() == r.start.Is4() && r.start.Compare(a) <= 0 && (!r.end.IsValid() || a.Compare(r.end) < 0)
}

// elems returns the kernel elements of r: its start (with the timeout) and
// its end (none when r reaches the family's last address).
func (r nftRange) elems(timeout time.Duration) []nftables.SetElement {
	out := []nftables.SetElement{{Key: r.start.AsSlice(), Timeout: timeout}}
	if r.end.IsValid() {
		out = append(out, nftables.SetElement{Key: r.end.AsSlice(), IntervalEnd: true})
	}
	return out
}

// nftTimeout returns the element timeout for a ban with ttl left (0: none).
func nftTimeout(ttl time.Duration) time.Duration {
	t := time.Duration(max(math.Ceil(ttl.Seconds())+1, 1)) * time.Second
	if t > maxNFTTimeout {
		return 0
	}
	return t
}

// ranges turns a dump of an interval set into ranges: the kernel lists a
// start element and an end element (flag interval end) for each.
func ranges(elems []nftables.SetElement) []nftRange {
	type el struct {
		a   netip.Addr
		end bool
		exp time.Duration
	}
	els := make([]el, 0, len(elems))
	for _, e := range elems {
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			els = append(els, el{a, e.IntervalEnd, e.Expires})
		}
	}
	// Ascending; at one key an end (of the range before) sorts first.
	slices.SortFunc(els, func(x, y el) int {
		if c := x.a.Compare(y.a); c != 0 {
			return c
		}
		switch {
		case x.end == y.end:
			return 0
		case x.end:
			return -1
		}
		return 1
	})
	var out []nftRange
	open := -1
	for _, e := range els {
		if e.end {
			if open >= 0 {
				out[open].end = e.a
				open = -1
			}
			continue
		}
		if open >= 0 { // a start without its end: a range of one
			out[open].end = out[open].start.Next()
		}
		out = append(out, nftRange{start: e.a, expires: e.exp})
		open = len(out) - 1
	}
	return out
}

// batch collects element changes and sends them in transactions of at
// most nftFlushBytes, each message with at most nftChunk elements. Changes
// to one address (its delete and its add) stay in one transaction.
type batch struct {
	c     *nftables.Conn
	n     *NFTables
	limit int // bytes per transaction
	size  int
	queue map[*nftables.Set]*[2][]nftables.SetElement // deletes, adds
	order []*nftables.Set
}

func (n *NFTables) newBatch(c *nftables.Conn) *batch {
	limit := nftSmallFlushBytes
	if n.bigBuffer {
		limit = nftFlushBytes
	}
	return &batch{c: c, n: n, limit: limit, queue: map[*nftables.Set]*[2][]nftables.SetElement{}}
}

func elemSize(e nftables.SetElement) int { return 24 + len(e.Key) }

// put queues deletes and adds of one ban, flushing first if they would
// not fit.
func (b *batch) put(s *nftables.Set, del, add []nftables.SetElement) error {
	sz := 0
	for _, e := range del {
		sz += elemSize(e)
	}
	for _, e := range add {
		sz += elemSize(e)
	}
	if b.size+sz > b.limit {
		if err := b.flush(); err != nil {
			return err
		}
	}
	q := b.queue[s]
	if q == nil {
		q = &[2][]nftables.SetElement{}
		b.queue[s] = q
		b.order = append(b.order, s)
	}
	q[0] = append(q[0], del...)
	q[1] = append(q[1], add...)
	b.size += sz
	return nil
}

// flush sends what is queued as one transaction.
func (b *batch) flush() error {
	if b.size == 0 {
		return nil
	}
	for _, s := range b.order {
		q := b.queue[s]
		for i, op := range []func(*nftables.Set, []nftables.SetElement) error{b.c.SetDeleteElements, b.c.SetAddElements} {
			for els := q[i]; len(els) > 0; {
				k := min(nftChunk, len(els))
				// Never split a start from its end.
				if k < len(els) && els[k].IntervalEnd {
					k--
				}
				if err := op(s, els[:k]); err != nil {
					return fmt.Errorf("%s: set %s: %w", b.n.what(), s.Name, err)
				}
				els = els[k:]
			}
		}
	}
	b.queue = map[*nftables.Set]*[2][]nftables.SetElement{}
	b.order, b.size = nil, 0
	if err := b.c.Flush(); err != nil {
		return fmt.Errorf("%s: %w", b.n.what(), err)
	}
	return nil
}

// state is what one look at the kernel found of our table.
type state struct {
	table  bool
	sets   map[string]*nftables.Set
	chains map[string]*nftables.Chain
	rules  map[string]map[string]bool // chain -> sets its rules drop
}

// complete reports whether st has the table with every set, chain and rule.
func (st *state) complete() bool {
	ok := st.table && len(st.sets) >= 2*len(nftKinds)
	for _, cd := range nftChains {
		ok = ok && st.chains[cd.name] != nil && len(st.rules[cd.name]) == 2*len(nftKinds)
	}
	return ok
}

func (n *NFTables) look(c *nftables.Conn) (*state, error) {
	st := &state{sets: map[string]*nftables.Set{}, chains: map[string]*nftables.Chain{}, rules: map[string]map[string]bool{}}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("%s: list tables: %w", n.what(), err)
	}
	for _, t := range tables {
		st.table = st.table || t.Name == n.table.Name
	}
	if !st.table {
		return st, nil
	}
	sets, err := c.GetSets(n.table)
	if err != nil {
		return nil, fmt.Errorf("%s: list sets: %w", n.what(), err)
	}
	for _, s := range sets {
		st.sets[s.Name] = s
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("%s: list chains: %w", n.what(), err)
	}
	for _, ch := range chains {
		if ch.Table.Name != n.table.Name {
			continue
		}
		st.chains[ch.Name] = ch
		rules, err := c.GetRules(n.table, ch)
		if err != nil {
			return nil, fmt.Errorf("%s: list rules of chain %s: %w", n.what(), ch.Name, err)
		}
		st.rules[ch.Name] = map[string]bool{}
		for _, r := range rules {
			if s := ruleSet(r); s != "" {
				st.rules[ch.Name][s] = true
			}
		}
	}
	return st, nil
}

// fix creates what is missing of the table, its sets, chains and rules,
// in one transaction, and says what it did. With rewrite it also removes
// every other rule from our chains (Sync).
func (n *NFTables) fix(c *nftables.Conn, st *state, rewrite bool) ([]string, error) {
	var notes []string
	if !st.table {
		notes = append(notes, n.what()+" was missing: created")
	}
	c.AddTable(n.table)
	sets := map[string]*nftables.Set{}
	for _, kind := range nftKinds {
		for _, v6 := range []bool{false, true} {
			want := n.set(kind, v6)
			if have, ok := st.sets[want.Name]; ok {
				if !have.Interval || !have.HasTimeout || have.KeyType.Name != want.KeyType.Name || have.IsMap {
					return nil, fmt.Errorf("%s: set %s exists but is not an interval set of %s with timeouts: run 'block flush' first", n.what(), want.Name, want.KeyType.Name)
				}
				sets[want.Name] = want
				continue
			}
			if st.table {
				notes = append(notes, fmt.Sprintf("%s: set %s was missing: created", n.what(), want.Name))
			}
			if err := c.AddSet(want, nil); err != nil {
				return nil, fmt.Errorf("%s: add set %s: %w", n.what(), want.Name, err)
			}
			sets[want.Name] = want
		}
	}
	for _, cd := range nftChains {
		ch := n.chain(cd.name, cd.hook)
		if have, ok := st.chains[cd.name]; ok {
			if have.Hooknum == nil || *have.Hooknum != *cd.hook {
				return nil, fmt.Errorf("%s: chain %s exists but is not hooked into %s: run 'block flush' first", n.what(), cd.name, cd.name)
			}
		} else {
			if st.table {
				notes = append(notes, fmt.Sprintf("%s: chain %s was missing: created", n.what(), cd.name))
			}
			c.AddChain(ch)
		}
		have := st.rules[cd.name]
		if rewrite {
			if _, ok := st.chains[cd.name]; ok {
				c.FlushChain(ch)
			}
			have = nil
		}
		lost := 0
		for _, kind := range nftKinds {
			for _, v6 := range []bool{false, true} {
				s := sets[NFTSetName(kind, v6)]
				if !have[s.Name] {
					c.AddRule(n.rule(ch, s, v6))
					lost++
				}
			}
		}
		if lost > 0 && !rewrite && st.chains[cd.name] != nil {
			notes = append(notes, fmt.Sprintf("%s: chain %s lost %d rules: restored", n.what(), cd.name, lost))
		}
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("%s: create: %w", n.what(), err)
	}
	return notes, nil
}

// members reads a set of ours (none if the table or set is missing).
func (n *NFTables) members(c *nftables.Conn, st *state, name string) ([]nftRange, error) {
	s, ok := st.sets[name]
	if !ok {
		return nil, nil
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		return nil, fmt.Errorf("%s: list set %s: %w", n.what(), name, err)
	}
	return ranges(els), nil
}

// byFamily splits entries by IP family (IPv4-mapped IPv6 as IPv4).
func byFamily(entries []Entry) [2][]Entry {
	var out [2][]Entry
	for _, e := range entries {
		if e.Net.Addr().Is4In6() {
			e.Net = netip.PrefixFrom(e.Net.Addr().Unmap(), max(e.Net.Bits()-96, 0))
		}
		if e.Net.Addr().Is6() {
			out[1] = append(out[1], e)
		} else {
			out[0] = append(out[0], e)
		}
	}
	return out
}

// covered returns the range of have that holds all of the network p.
func covered(have []nftRange, p netip.Prefix) (nftRange, bool) {
	a, last := p.Masked().Addr(), lastOf(p)
	i, _ := slices.BinarySearchFunc(have, a, func(r nftRange, a netip.Addr) int { return r.start.Compare(a) })
	// have is sorted by start: the range holding a starts at a or before.
	if i < len(have) && have[i].start == a && have[i].contains(last) {
		return have[i], true
	}
	if i > 0 && have[i-1].contains(a) && have[i-1].contains(last) {
		return have[i-1], true
	}
	return nftRange{}, false
}

// within returns the ranges of have that lie inside the network p and are
// not p's own range (a narrower ban that a wider one replaces).
func within(have []nftRange, p netip.Prefix) []nftRange {
	own := rangeOf(p)
	var out []nftRange
	for _, r := range have {
		if !p.Contains(r.start) || r.start == own.start && r.end == own.end {
			continue
		}
		if !own.end.IsValid() || r.end.IsValid() && r.end.Compare(own.end) <= 0 {
			out = append(out, r)
		}
	}
	return out
}

// write makes the local sets hold entries with fresh timeouts. With
// exact, every other member is removed (Sync). It reads each set first,
// so it never deletes what is absent (the kernel fails the whole
// transaction for that), and reads it again after to check that every
// entry arrived.
func (n *NFTables) write(c *nftables.Conn, st *state, entries []Entry, exact bool) error {
	fams := byFamily(entries)
	b := n.newBatch(c)
	for i, v6 := range []bool{false, true} {
		s := n.set(n.kind, v6)
		have, err := n.members(c, st, s.Name)
		if err != nil {
			return err
		}
		want := map[netip.Prefix]bool{}
		for _, e := range fams[i] {
			want[e.Net.Masked()] = true
		}
		if exact {
			for _, r := range have {
				if p, ok := r.prefix(); ok && want[p] {
					continue
				}
				if err := b.put(s, r.elems(0), nil); err != nil {
					return err
				}
			}
			// What stays is the networks wanted.
			have = slices.DeleteFunc(have, func(r nftRange) bool { p, ok := r.prefix(); return !ok || !want[p] })
		}
		seen := map[netip.Prefix]bool{}
		for _, e := range fams[i] {
			if seen[e.Net] {
				continue
			}
			seen[e.Net] = true
			r := rangeOf(e.Net)
			var del []nftables.SetElement
			if h, ok := covered(have, e.Net); ok {
				if p, ok := h.prefix(); !ok || p != e.Net.Masked() {
					continue // inside a wider ban: banned already
				}
				// Delete and add in one transaction: a new timeout, no gap.
				del = r.elems(0)
			} else {
				// Narrower bans inside the network give way to it (an
				// interval set holds no overlapping elements).
				for _, w := range within(have, e.Net) {
					del = append(del, w.elems(0)...)
				}
			}
			if err := b.put(s, del, r.elems(nftTimeout(e.TTL))); err != nil {
				return err
			}
		}
	}
	if err := b.flush(); err != nil {
		return err
	}
	return n.check(c, entries)
}

// check reads the local sets back and fails if an entry is not banned.
func (n *NFTables) check(c *nftables.Conn, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	st, err := n.look(c)
	if err != nil {
		return err
	}
	for i, fam := range byFamily(entries) {
		if len(fam) == 0 {
			continue
		}
		have, err := n.members(c, st, NFTSetName(n.kind, i == 1))
		if err != nil {
			return err
		}
		missing := 0
		for _, e := range fam {
			if _, ok := covered(have, e.Net); !ok {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%s: set %s lacks %d of %d bans just added", n.what(), NFTSetName(n.kind, i == 1), missing, len(fam))
		}
	}
	return nil
}

// conn returns the backend's netlink connection, dialled on first use
// with a large send buffer if it can have one. One lasting connection
// saves a dial and a setup per ban; after any failure keep drops it (it
// may hold unread answers) and the next call dials anew.
func (n *NFTables) conn() (*nftables.Conn, error) {
	if n.c != nil {
		return n.c, nil
	}
	n.bigBuffer = true
	raise := func(c *netlink.Conn) error {
		rc, err := c.SyscallConn()
		if err != nil {
			n.bigBuffer = false
			return nil
		}
		err = rc.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, nftSendBuffer) != nil {
				n.bigBuffer = false
			}
		})
		if err != nil {
			n.bigBuffer = false
		}
		return widenDumps(c, rc)
	}
	c, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(raise))
	if err != nil {
		return nil, fmt.Errorf("%s: netlink: %w", n.what(), err)
	}
	n.c = c
	return c, nil
}

// keep drops the connection and forgets that the table was complete when
// an operation failed.
func (n *NFTables) keep(err *error) {
	if *err == nil || n.c == nil {
		return
	}
	_ = n.c.CloseLasting()
	n.c, n.complete = nil, false
}

// do runs fn on the lasting connection under the backend's lock, and
// drops the connection when fn fails (keep).
func (n *NFTables) do(fn func(c *nftables.Conn) error) (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.conn()
	if err != nil {
		return err
	}
	defer n.keep(&err)
	return fn(c)
}

// widenDumps makes the kernel send dumps on c in chunks of 32 kB instead
// of 4 kB. The kernel sizes each dump message by the largest buffer a
// recvmsg on the socket has offered so far (at most 32 kB), and the
// netlink package offers a page. A set dump resumes each chunk by walking
// the set from its start, so its cost grows with elements times chunks:
// 100,000 bans took 2.7 s to list in pages, a few hundred ms in 32 kB.
// So: one no-op request with an acknowledgement, peeked at with a large
// buffer, then read as usual.
func widenDumps(c *netlink.Conn, rc syscall.RawConn) error {
	if _, err := c.Send(netlink.Message{Header: netlink.Header{Type: netlink.Noop, Flags: netlink.Request | netlink.Acknowledge}}); err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	buf := make([]byte, 64<<10)
	var perr error
	err := rc.Read(func(fd uintptr) bool {
		_, _, _, _, perr = unix.Recvmsg(int(fd), buf, nil, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return !errors.Is(perr, unix.EAGAIN)
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	if _, err := c.Receive(); err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	return nil
}

// Sync implements Backend: the table, sets, chains and rules as they
// should be (our chains' other rules removed), the local sets holding
// exactly entries, each with a fresh timeout.
func (n *NFTables) Sync(entries []Entry) error {
	return n.do(func(c *nftables.Conn) error {
		st, err := n.look(c)
		if err != nil {
			return err
		}
		if _, err := n.fix(c, st, true); err != nil {
			return err
		}
		if st, err = n.look(c); err != nil {
			return err
		}
		n.complete = st.complete()
		return n.write(c, st, entries, true)
	})
}

// ensure looks at the table and creates what is missing.
func (n *NFTables) ensure(c *nftables.Conn) (*state, error) {
	st, err := n.look(c)
	if err != nil {
		return nil, err
	}
	if !st.complete() {
		if _, err := n.fix(c, st, false); err != nil {
			return nil, err
		}
		if st, err = n.look(c); err != nil {
			return nil, err
		}
	}
	n.complete = st.complete()
	return st, nil
}

// Add implements Backend.
func (n *NFTables) Add(entries []Entry) error { return n.put(entries, false) }

// Extend implements Backend: each entry is deleted and added again in one
// transaction, which restarts its kernel timeout.
func (n *NFTables) Extend(entries []Entry) error { return n.put(entries, true) }

// blind sends, for each address, its delete (del) and its add (add with
// the entry's timeout) without reading the set first: one transaction per
// few thousand bans, and the kernel fails one whole (changing nothing)
// when an element to delete is absent or one to add clashes with a wider
// range. The callers then take the slow way, which reads the set.
func (n *NFTables) blind(c *nftables.Conn, entries []Entry, del, add bool) error {
	b := n.newBatch(c)
	sets := [2]*nftables.Set{n.set(n.kind, false), n.set(n.kind, true)}
	seen := map[netip.Prefix]bool{}
	for i, fam := range byFamily(entries) {
		for _, e := range fam {
			if seen[e.Net] {
				continue
			}
			seen[e.Net] = true
			r := rangeOf(e.Net)
			var d, a []nftables.SetElement
			if del {
				d = r.elems(0)
			}
			if add {
				a = r.elems(nftTimeout(e.TTL))
			}
			if err := b.put(sets[i], d, a); err != nil {
				return err
			}
		}
	}
	return b.flush()
}

// put adds (or with extend, renews) entries. The fast way writes blind
// and trusts the kernel's acknowledgements: reading the set back costs a
// dump of all of it (0.5 s per 50,000 elements), too much per batch.
// block reads every ban back at its next check (Repair: after batches, at
// most once a second, and every 5 s), which puts back anything lost.
func (n *NFTables) put(entries []Entry, extend bool) error {
	if len(entries) == 0 {
		return nil
	}
	return n.do(func(c *nftables.Conn) error {
		if !n.complete {
			if _, err := n.ensure(c); err != nil {
				return err
			}
		}
		if n.blind(c, entries, extend, true) == nil {
			return nil
		}
		// Refused: an element clashes, or the table is not what it was.
		st, err := n.ensure(c)
		if err != nil {
			return err
		}
		return n.write(c, st, entries, false)
	})
}

// Delete implements Backend: it lifts the addresses' own elements from the
// local sets (a wider range holding one stays).
func (n *NFTables) Delete(addrs []netip.Prefix) error {
	if len(addrs) == 0 {
		return nil
	}
	return n.do(func(c *nftables.Conn) error {
		entries := make([]Entry, len(addrs))
		for i, a := range addrs {
			entries[i] = Entry{Net: a}
		}
		if n.blind(c, entries, true, false) == nil {
			return nil
		}
		// Some address is absent (lifted by its kernel timeout, deleted
		// twice) or inside a wider range: read the sets.
		st, err := n.look(c)
		if err != nil {
			return err
		}
		b := n.newBatch(c)
		for _, v6 := range []bool{false, true} {
			s := n.set(n.kind, v6)
			have, err := n.members(c, st, s.Name)
			if err != nil {
				return err
			}
			done := map[netip.Prefix]bool{}
			for _, a := range addrs {
				a = a.Masked()
				if a.Addr().Is6() != v6 || done[a] {
					continue
				}
				done[a] = true
				if h, ok := covered(have, a); ok {
					if p, ok := h.prefix(); ok && p == a {
						if err := b.put(s, h.elems(0), nil); err != nil {
							return err
						}
					}
				}
			}
		}
		return b.flush()
	})
}

// held returns the members of the local sets that are one network each.
func (n *NFTables) held() ([]Entry, error) {
	var out []Entry
	err := n.do(func(c *nftables.Conn) error {
		st, err := n.look(c)
		if err != nil {
			return err
		}
		for _, v6 := range []bool{false, true} {
			have, err := n.members(c, st, NFTSetName(n.kind, v6))
			if err != nil {
				return err
			}
			for _, r := range have {
				if p, ok := r.prefix(); ok {
					out = append(out, Entry{Net: p, TTL: r.expires})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// List implements Backend.
func (n *NFTables) List() ([]netip.Prefix, error) {
	held, err := n.held()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(held))
	for _, e := range held {
		out = append(out, e.Net)
	}
	return sortAddrs(out), nil
}

// Held implements Backend: each member with the time its element has
// left (0: no timeout).
func (n *NFTables) Held() ([]Entry, error) { return n.held() }

// Repair implements Backend: one look at the table (tables, sets, chains,
// rules) and one dump per local set; what is missing is put back (the
// table, a set, a chain, a rule, members with the time they have left).
// Another tool flushing the ruleset or deleting our table is repaired
// here.
func (n *NFTables) Repair(entries []Entry) (notes []string, err error) {
	err = n.do(func(c *nftables.Conn) error {
		st, err := n.look(c)
		if err != nil {
			return err
		}
		if !st.complete() {
			if notes, err = n.fix(c, st, false); err != nil {
				return err
			}
			if st, err = n.look(c); err != nil {
				return err
			}
		}
		n.complete = st.complete()
		var lost []Entry
		for i, fam := range byFamily(entries) {
			name := NFTSetName(n.kind, i == 1)
			have, err := n.members(c, st, name)
			if err != nil {
				return err
			}
			k := 0
			for _, e := range fam {
				// A ban about to end may have left the set by the kernel's
				// own timeout: that is no loss.
				if _, ok := covered(have, e.Net); !ok && e.TTL > time.Second {
					lost = append(lost, e)
					k++
				}
			}
			if k > 0 {
				notes = append(notes, fmt.Sprintf("%s: set %s lost %d members: restored", n.what(), name, k))
			}
		}
		if len(lost) > 0 {
			if err := n.write(c, st, lost, false); err != nil {
				return err
			}
		}
		return nil
	})
	return notes, err
}

// Flush implements Backend: it deletes our table, with every set, chain
// and rule in it.
func (n *NFTables) Flush() error {
	return n.do(func(c *nftables.Conn) error {
		st, err := n.look(c)
		if err != nil {
			return err
		}
		if !st.table {
			return nil
		}
		n.complete = false
		c.DelTable(n.table)
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: delete: %w", n.what(), err)
		}
		return nil
	})
}
