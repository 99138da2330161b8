package rule

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/rule/seen"
	"github.com/quietwatch/quietwatch/pkg/rule/window"
)

// keyKind is what a composite counts by.
type keyKind uint8

const (
	keyNone   keyKind = iota // all events together
	keySrc                   // same_source_ip
	keySig                   // same_id
	keySrcSig                // both
)

// winState is a window and how its key is made.
type winState struct {
	w    *window.Window
	key  keyKind
	seq  uint64 // the event last added
	cur  *window.Track
	name string // for --explain: what the key is
}

// ruleState is a rule with its runtime state.
type ruleState struct {
	r     *Rule
	rec   record.Rule
	enc   *record.EncodedRule // rec, encoded once
	win   *winState           // composite: the window it counts in
	slot  int
	span  int64       // timeframe, µs
	quiet int64       // ignore, µs
	feeds []*winState // windows counting this rule's matches
	// silentUntil is the silence of a rule with ignore that is not a
	// composite (whole rule, as OSSEC).
	silentUntil int64
	// pre: Test is computed ahead, in the reading goroutine
	pre bool
	// bySource: the rule counts by source (a composite with
	// same_source_ip, or if_fts), so its alerts say the source's prefix
	bySource bool
}

// Engine walks the rule tree for each event and keeps the composite and
// first-time-seen memory. It is not safe for concurrent use: one goroutine
// evaluates (Pretest's part may run in another).
type Engine struct {
	set   *Set
	rules []*ruleState
	wins  []*winState
	store *window.Store
	fts   *seen.Set
	// Explain, when set, is told each rule tried and why it matched or
	// not (--explain), depth the rule's depth in the tree.
	Explain func(depth int, format string, args ...any)
	needIP  bool
	prev    [][]byte
	nEvents uint64
	v6bits  int // --ipv6-prefix
}

// NewEngine prepares set for evaluation. Composites that count the same
// rules by the same key share one window (the how-to's four Priority-1
// composites keep one list per source, not four).
// v6bits is --ipv6-prefix: how many leading bits of an IPv6 source its
// key keeps.
func NewEngine(set *Set, store *window.Store, fts *seen.Set, v6bits int) *Engine {
	e := &Engine{set: set, store: store, fts: fts, v6bits: v6bits}
	e.rules = make([]*ruleState, len(set.Rules))
	for _, r := range set.Rules {
		rs := &ruleState{r: r, span: int64(r.Timeframe) * 1e6, quiet: int64(r.Ignore) * 1e6}
		rs.bySource = r.Composite() && r.SameSourceIP || !r.Composite() && r.IfFTS
		rs.rec = record.Rule{
			ID: strconv.Itoa(r.ID), Level: r.Level, Description: r.Description,
			Groups: r.Groups, Frequency: r.Frequency, Timeframe: r.Timeframe, Mail: r.Mail,
		}
		if r.Frequency == 0 {
			rs.rec.Timeframe = 0
		}
		rs.enc = record.EncodeRule(&rs.rec)
		e.rules[r.Index] = rs
		if len(r.SrcIP) > 0 || len(r.DstIP) > 0 {
			e.needIP = true
		}
	}
	// the root's rules with patterns are tested ahead: every event is tried
	// against the root, so this is work the engine would mostly do itself
	// (a rule deeper in the tree is tried only after its parent matched)
	for _, r := range set.Root {
		e.rules[r.Index].pre = pretested(r)
	}
	type group struct {
		members []*ruleState
		key     keyKind
		diff    bool
	}
	groups := map[string]*group{}
	var order []string
	for _, rs := range e.rules {
		r := rs.r
		if !r.Composite() {
			continue
		}
		k := keyNone
		switch {
		case r.SameSourceIP && r.SameID:
			k = keySrcSig
		case r.SameSourceIP:
			k = keySrc
		case r.SameID:
			k = keySig
		}
		var base []int
		for _, b := range r.Base {
			base = append(base, b.Index)
		}
		sort.Ints(base)
		name := fmt.Sprint(base, k, r.DifferentSrcIP)
		g := groups[name]
		if g == nil {
			g = &group{key: k, diff: r.DifferentSrcIP}
			groups[name] = g
			order = append(order, name)
		}
		g.members = append(g.members, rs)
	}
	for _, name := range order {
		g := groups[name]
		var span int64
		size := 1
		for _, rs := range g.members {
			span = max(span, rs.span)
			size = max(size, rs.r.Frequency)
		}
		ws := &winState{w: store.NewWindow(span, size, len(g.members), g.diff), key: g.key}
		ws.name = [...]string{"in all", "from this source", "for this signature", "from this source for this signature"}[g.key]
		for i, rs := range g.members {
			rs.win, rs.slot = ws, i
		}
		for _, b := range g.members[0].r.Base {
			e.rules[b.Index].feeds = append(e.rules[b.Index].feeds, ws)
		}
		e.wins = append(e.wins, ws)
	}
	return e
}

// pretested reports whether r's own conditions are worth testing ahead,
// in the reading goroutine: those with patterns (the costly part of Test).
func pretested(r *Rule) bool {
	return r.Match != nil || r.Regex != nil || r.SigID != nil
}

// Pretest is what the reading goroutine needs to prepare events and test
// rules ahead of the engine: the set and which of its rules to test.
type Pretest struct {
	set    *Set
	rules  []*Rule
	needIP bool
	v6bits int          // --ipv6-prefix, for prepare
	late   *atomic.Bool // set: stop testing (the event is not evaluated); may be nil
}

// NewPretest returns e's pretest; once late is set (it may be nil), the
// tests still running are cut short.
func NewPretest(e *Engine, late *atomic.Bool) *Pretest {
	pt := &Pretest{set: e.set, needIP: e.needIP, v6bits: e.v6bits, late: late}
	for _, rs := range e.rules {
		if rs.pre {
			pt.rules = append(pt.rules, rs.r)
		}
	}
	return pt
}

// Prepare fills ev from the scanned fields of its line, then tests it
// against pt's rules (Run).
func (pt *Pretest) Prepare(ev *Input, f *record.EventFields, line []byte) {
	prepare(ev, f, line, pt.v6bits)
	pt.Run(ev)
}

// Run tests ev against the rules of pt (ev's addresses are parsed when
// the rules need them).
func (pt *Pretest) Run(ev *Input) {
	ev.SrcIP, ev.DestIP = netip.Addr{}, netip.Addr{}
	if pt.needIP {
		ev.SrcIP, _ = netip.ParseAddr(string(ev.src))
		ev.DestIP, _ = netip.ParseAddr(string(ev.dst))
	}
	if n := len(pt.set.Rules); cap(ev.pre) < n {
		ev.pre = make([]Failure, n)
	} else {
		ev.pre = ev.pre[:n]
	}
	ev.preSet = nil
	for _, r := range pt.rules {
		if pt.late != nil && pt.late.Load() {
			return // stopping: not evaluated, so not worth finishing
		}
		ev.pre[r.Index] = r.Test(&ev.Event)
	}
	ev.preSet = pt.set
}

// Pretested reports whether ev's pretest was done, in full, for e's rule
// set (not one loaded before a reload, nor cut short).
func (e *Engine) Pretested(ev *Input) bool { return ev.preSet == e.set }

// from is, for --explain, what ws counts ev's events by; a source counted
// as its network says so ("from this source (2001:db8::/64)").
func (ws *winState) from(ev *Input) string {
	if ev.net.IsValid() && (ws.key == keySrc || ws.key == keySrcSig) {
		return ws.name + " (" + ev.net.String() + ")"
	}
	return ws.name
}

// Result is the outcome of one event.
type Result struct {
	rs *ruleState // nil: no rule matched
	// Previous holds a composite's counted events (previous_output); it
	// is valid until the next Eval.
	Previous [][]byte
}

// Rule is the rule the event ended at, nil when no rule matched.
func (res Result) Rule() *Rule {
	if res.rs == nil {
		return nil
	}
	return res.rs.r
}

// Alert is the rule as alerts show it, encoded once.
func (res Result) Alert() *record.EncodedRule { return res.rs.enc }

// FiredTimes is how many times the rule has fired, this time included.
func (res Result) FiredTimes() int { return res.rs.rec.FiredTimes }

// BySource reports whether the rule counts by source (a composite with
// same_source_ip, or if_fts), so its alerts say the source's network.
func (res Result) BySource() bool { return res.rs.bySource }

// Eval walks the tree for ev at now (µs).
func (e *Engine) Eval(ev *Input, now int64) Result {
	e.nEvents++
	ev.seq = e.nEvents
	e.prev = e.prev[:0]
	e.store.Begin()
	if e.nEvents%1024 == 0 {
		e.store.Expire(now, 256)
	}
	res := e.walk(e.set.Root, ev, now, 0)
	if res.rs != nil {
		res.rs.rec.FiredTimes++
	}
	return res
}

func (e *Engine) walk(rules []*Rule, ev *Input, now int64, depth int) Result {
	for _, r := range rules {
		rs := e.rules[r.Index]
		ok, prev := e.try(rs, ev, now, depth)
		if !ok {
			continue
		}
		for _, ws := range rs.feeds {
			e.feed(ws, ev, now)
		}
		if res := e.walk(r.Children, ev, now, depth+1); res.rs != nil {
			return res
		}
		return Result{rs: rs, Previous: prev}
	}
	return Result{}
}

// feed adds ev to a window once per event.
func (e *Engine) feed(ws *winState, ev *Input, now int64) {
	if ws.seq == ev.seq {
		return
	}
	ws.seq = ev.seq
	ws.cur = nil
	k := ev.key(ws.key)
	if k == nil {
		return
	}
	ws.cur = ws.w.Track(k)
	ws.cur.Add(now, ev.log, ev.srcKey)
}

// try tests one rule, with its memory: first time seen, frequency and
// silence. A match has its side effects here (the key is remembered as
// seen, the counted events are used up, the silence starts).
func (e *Engine) try(rs *ruleState, ev *Input, now int64, depth int) (bool, [][]byte) {
	r := rs.r
	var f Failure
	if rs.pre && ev.preSet == e.set {
		f = ev.pre[r.Index]
	} else {
		f = r.Test(&ev.Event)
	}
	if f != OK {
		if e.Explain != nil {
			e.say(depth, rs, "no: %s", r.Why(f))
		}
		return false, nil
	}
	if !r.Composite() && rs.quiet > 0 && now < rs.silentUntil {
		if e.Explain != nil {
			e.say(depth, rs, "no: silent (ignore) until %s", FormatTime(rs.silentUntil))
		}
		return false, nil
	}
	var prev [][]byte
	if r.Composite() {
		ws := rs.win
		var t *window.Track
		if ws.seq == ev.seq {
			t = ws.cur
		} else if k := ev.key(ws.key); k != nil {
			t = ws.w.Peek(k)
		}
		var diff []byte
		if r.DifferentSrcIP {
			// (compared as counted: the addresses of one IPv6 network
			// are one source, as they are for same_source_ip)
			diff = ev.srcKey
		}
		n := 0
		if t != nil {
			n = t.Count(rs.slot, now, rs.span, diff)
		}
		if n < r.Frequency {
			if e.Explain != nil {
				e.say(depth, rs, "no: %d of %d events %s within %ds", n, r.Frequency, ws.from(ev), r.Timeframe)
			}
			return false, nil
		}
		if silent, until := t.Silent(rs.slot, now); silent {
			if e.Explain != nil {
				e.say(depth, rs, "no: %d of %d events %s within %ds, but silent (ignore) until %s", n, r.Frequency, ws.from(ev), r.Timeframe, FormatTime(until))
			}
			return false, nil
		}
		e.prev = t.Previous(e.prev[:0], rs.slot, now, rs.span, diff)
		prev = e.prev
		t.Fire(rs.slot, now, rs.quiet)
		if e.Explain != nil {
			e.say(depth, rs, "matched: %d of %d events %s within %ds", n, r.Frequency, ws.from(ev), r.Timeframe)
		}
	} else if r.IfFTS {
		// the key: decoder, signature, source, destination
		if !e.fts.FirstTime(ev.ftsKey) {
			if e.Explain != nil {
				e.say(depth, rs, "no: seen before (if_fts)")
			}
			return false, nil
		}
		if e.Explain != nil {
			e.say(depth, rs, "matched: first time seen")
		}
	} else {
		if e.Explain != nil {
			e.say(depth, rs, "matched")
		}
	}
	if !r.Composite() && rs.quiet > 0 {
		rs.silentUntil = now + rs.quiet
	}
	return true, prev
}

func (e *Engine) say(depth int, rs *ruleState, format string, args ...any) {
	if e.Explain == nil {
		return
	}
	e.Explain(depth, "rule %d (level %d) %s", rs.r.ID, rs.r.Level, fmt.Sprintf(format, args...))
}

// FormatTime formats a time in µs as --explain shows it.
func FormatTime(us int64) string {
	return time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.000000Z")
}
