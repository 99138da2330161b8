package correlate

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/rule"
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

// event is one input record as the engine sees it.
type event struct {
	rule.Event
	src []byte // src_ip as written
	// srcKey is what the source counts as (same_source_ip,
	// different_srcip, first time seen): src, or its IPv6 network (see
	// sourceKey)
	srcKey []byte
	keyBuf []byte // srcKey's buffer when it is not src
	// net is the IPv6 network the source counts as (the alert's
	// src_prefix); not valid for IPv4 sources and with --ipv6-prefix 128
	net netip.Prefix
	dst []byte // dest_ip as written
	log []byte // full_log (or the compact record) for previous_output
	// compact is the buffer of the compact record (for a record without
	// full_log)
	compact []byte
	seq     uint64    // for feeding each window once per event
	srcSig  []byte    // scratch for the keySrcSig key
	sigBuf  []byte    // scratch for SigID
	ftsKey  seen.Hash // the first-time-seen key (made by prepare)
	// pre holds the results of Test for the rules of preSet that have
	// patterns, computed in the reading goroutine (see pretest); used
	// only when preSet is the engine's set
	pre    []rule.Failure
	preSet *rule.Set
}

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
	r     *rule.Rule
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
// first-time-seen memory.
type Engine struct {
	set     *rule.Set
	rules   []*ruleState
	wins    []*winState
	store   *window.Store
	fts     *seen.Set
	explain func(depth int, format string, args ...any)
	needIP  bool
	prev    [][]byte
	nEvents uint64
	v6bits  int // --ipv6-prefix
}

// newEngine prepares set for evaluation. Composites that count the same
// rules by the same key share one window (the how-to's four Priority-1
// composites keep one list per source, not four).
// v6bits is --ipv6-prefix: how many leading bits of an IPv6 source its
// key keeps.
func newEngine(set *rule.Set, store *window.Store, fts *seen.Set, v6bits int) *Engine {
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
func pretested(r *rule.Rule) bool {
	return r.Match != nil || r.Regex != nil || r.SigID != nil
}

// pretest is what the reading goroutine needs to test rules ahead of the
// engine: the set and which of its rules to test.
type pretest struct {
	set    *rule.Set
	rules  []*rule.Rule
	needIP bool
	v6bits int          // --ipv6-prefix, for prepare
	late   *atomic.Bool // set: stop testing (the event is not evaluated); may be nil
}

func newPretest(e *Engine) *pretest {
	pt := &pretest{set: e.set, needIP: e.needIP, v6bits: e.v6bits}
	for _, rs := range e.rules {
		if rs.pre {
			pt.rules = append(pt.rules, rs.r)
		}
	}
	return pt
}

// run tests ev against the rules of pt (ev's addresses are parsed when
// the rules need them).
func (pt *pretest) run(ev *event) {
	ev.SrcIP, ev.DestIP = netip.Addr{}, netip.Addr{}
	if pt.needIP {
		ev.SrcIP, _ = netip.ParseAddr(string(ev.src))
		ev.DestIP, _ = netip.ParseAddr(string(ev.dst))
	}
	if n := len(pt.set.Rules); cap(ev.pre) < n {
		ev.pre = make([]rule.Failure, n)
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

// from is, for --explain, what ws counts ev's events by; a source counted
// as its network says so ("from this source (2001:db8::/64)").
func (ws *winState) from(ev *event) string {
	if ev.net.IsValid() && (ws.key == keySrc || ws.key == keySrcSig) {
		return ws.name + " (" + ev.net.String() + ")"
	}
	return ws.name
}

// key returns ev's key for a window kind, nil when ev lacks it.
func (ev *event) key(k keyKind) []byte {
	switch k {
	case keySrc:
		return ev.srcKey
	case keySig:
		return ev.SigID
	case keySrcSig:
		if ev.srcKey == nil || ev.SigID == nil {
			return nil
		}
		ev.srcSig = append(append(append(ev.srcSig[:0], ev.srcKey...), ' '), ev.SigID...)
		return ev.srcSig
	}
	return []byte{}
}

// result is the outcome of one event.
type result struct {
	rs   *ruleState // nil: no rule matched
	prev [][]byte
}

// eval walks the tree for ev at now (µs).
func (e *Engine) eval(ev *event, now int64) result {
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

func (e *Engine) walk(rules []*rule.Rule, ev *event, now int64, depth int) result {
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
		return result{rs: rs, prev: prev}
	}
	return result{}
}

// feed adds ev to a window once per event.
func (e *Engine) feed(ws *winState, ev *event, now int64) {
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
func (e *Engine) try(rs *ruleState, ev *event, now int64, depth int) (bool, [][]byte) {
	r := rs.r
	var f rule.Failure
	if rs.pre && ev.preSet == e.set {
		f = ev.pre[r.Index]
	} else {
		f = r.Test(&ev.Event)
	}
	if f != rule.OK {
		if e.explain != nil {
			e.say(depth, rs, "no: %s", r.Why(f))
		}
		return false, nil
	}
	if !r.Composite() && rs.quiet > 0 && now < rs.silentUntil {
		if e.explain != nil {
			e.say(depth, rs, "no: silent (ignore) until %s", fmtTime(rs.silentUntil))
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
			if e.explain != nil {
				e.say(depth, rs, "no: %d of %d events %s within %ds", n, r.Frequency, ws.from(ev), r.Timeframe)
			}
			return false, nil
		}
		if silent, until := t.Silent(rs.slot, now); silent {
			if e.explain != nil {
				e.say(depth, rs, "no: %d of %d events %s within %ds, but silent (ignore) until %s", n, r.Frequency, ws.from(ev), r.Timeframe, fmtTime(until))
			}
			return false, nil
		}
		e.prev = t.Previous(e.prev[:0], rs.slot, now, rs.span, diff)
		prev = e.prev
		t.Fire(rs.slot, now, rs.quiet)
		if e.explain != nil {
			e.say(depth, rs, "matched: %d of %d events %s within %ds", n, r.Frequency, ws.from(ev), r.Timeframe)
		}
	} else if r.IfFTS {
		// the key: decoder, signature, source, destination
		if !e.fts.FirstTime(ev.ftsKey) {
			if e.explain != nil {
				e.say(depth, rs, "no: seen before (if_fts)")
			}
			return false, nil
		}
		if e.explain != nil {
			e.say(depth, rs, "matched: first time seen")
		}
	} else {
		if e.explain != nil {
			e.say(depth, rs, "matched")
		}
	}
	if !r.Composite() && rs.quiet > 0 {
		rs.silentUntil = now + rs.quiet
	}
	return true, prev
}

func (e *Engine) say(depth int, rs *ruleState, format string, args ...any) {
	if e.explain == nil {
		return
	}
	e.explain(depth, "rule %d (level %d) %s", rs.r.ID, rs.r.Level, fmt.Sprintf(format, args...))
}

func fmtTime(us int64) string {
	return time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.000000Z")
}

// indent is the --explain indentation of a depth.
func indent(depth int) string { return strings.Repeat("  ", depth) }
