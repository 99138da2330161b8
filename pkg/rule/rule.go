// Package rule is quietwatch's OSSEC-compatible rule language and its
// engine: it loads rule files (<group>, <var>, <rule>) into a rule tree,
// checks them with file:line:col diagnostics, and tests a rule's own
// conditions against an event (Rule.Test, stateless). Engine walks the
// tree for each event with the memory over time: composite counts
// (frequency, timeframe, ignore) in package window, first time seen in
// package seen, both below this one.
package rule

import (
	"bytes"
	"fmt"
	"net/netip"
)

// MaxID is the largest rule id accepted (OSSEC reads six digits; we take
// any positive 31-bit number, so the how-to's 3000015 loads as written).
const MaxID = 1<<31 - 1

// Rule is one <rule> after loading.
type Rule struct {
	ID          int
	Level       int
	Frequency   int // 0: not a composite
	Timeframe   int // seconds
	Ignore      int // seconds of silence after firing
	NoAlert     bool
	Description string
	Groups      []string

	Category  string // "" means any event
	DecodedAs string
	Match     *Match
	Regex     *Regex
	SigID     *Match // <id>: the signature "gid:sid:rev", as a match pattern
	SrcIP     []IPCond
	DstIP     []IPCond
	IfFTS     bool

	IfSID          []int
	IfGroup        string
	IfLevel        int // 0: none
	IfMatchedSID   []int
	IfMatchedGroup string
	SameSourceIP   bool
	SameID         bool
	DifferentSrcIP bool

	// Mail is the rule's own mail wish: true for alert_by_email, false for
	// no_email_alert, nil when it says neither.
	Mail  *bool
	NoLog bool

	// Children are tried in order (level descending, then load order).
	Children []*Rule
	// Base is, for a composite, the set of rules whose matches it counts.
	Base []*Rule
	// Index is the rule's position in Set.Rules (load order).
	Index int
	Pos   Pos
}

// Pos is where something was written.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Composite reports whether the rule counts earlier events.
func (r *Rule) Composite() bool { return r.Frequency > 0 }

// IPCond is one <srcip>/<dstip> condition: an address or network,
// optionally negated with a leading '!'.
type IPCond struct {
	Prefix netip.Prefix
	Not    bool
}

// Set is a loaded, checked rule set.
type Set struct {
	Rules []*Rule // load order
	Root  []*Rule // rules with no parent, in trial order
	byID  map[int]*Rule
}

// ByID returns the rule with the given id, or nil.
func (s *Set) ByID(id int) *Rule { return s.byID[id] }

// Event is what a rule's own conditions look at. Set Text with SetText.
type Event struct {
	Text    []byte // the log text without its timestamp
	lower   []byte // Text lower-cased, made when a pattern needs it
	lowered bool
	SrcIP   netip.Addr
	DestIP  netip.Addr
	SigID   []byte // "gid:sid:rev" (no letters: no case to fold), nil when the event has none
	// Decoder is the name <decoded_as> compares with ("snort" for IDS
	// events, as OSSEC's snort-fast decoder).
	Decoder string
	// IDS marks an IDS event (category "ids").
	IDS bool
}

// Failure says which of a rule's own conditions an event failed.
type Failure uint8

// The conditions, in the order Test checks them.
const (
	OK Failure = iota
	FailCategory
	FailDecoder
	FailNoSigID
	FailSigID
	FailMatch
	FailRegex
	FailSrcIP
	FailDstIP
)

// SetText sets the log text the patterns test.
func (ev *Event) SetText(text []byte) {
	ev.Text, ev.lowered = text, false
}

func (ev *Event) lowerText() []byte {
	if !ev.lowered {
		ev.lower = LowerASCII(ev.lower[:0], ev.Text)
		ev.lowered = true
	}
	return ev.lower
}

func (m *Match) test(ev *Event) bool {
	if m.fold {
		return m.MatchFold(ev.Text)
	}
	return m.MatchLower(ev.lowerText())
}

// Test reports whether the rule's own conditions (everything but
// if_fts, frequency and ignore, which need memory) hold for ev: OK, or
// the first condition that failed (Why explains it).
func (r *Rule) Test(ev *Event) Failure {
	switch {
	case r.Category != "" && (r.Category != "ids" || !ev.IDS):
		return FailCategory
	case r.DecodedAs != "" && r.DecodedAs != ev.Decoder:
		return FailDecoder
	case r.SigID != nil && ev.SigID == nil:
		return FailNoSigID
	case r.SigID != nil && !r.SigID.MatchLower(ev.SigID):
		return FailSigID
	case r.Match != nil && !r.Match.test(ev):
		return FailMatch
	case r.Regex != nil && !r.Regex.Match(ev.Text):
		return FailRegex
	case len(r.SrcIP) > 0 && !ipOK(r.SrcIP, ev.SrcIP):
		return FailSrcIP
	case len(r.DstIP) > 0 && !ipOK(r.DstIP, ev.DestIP):
		return FailDstIP
	}
	return OK
}

// Why says in words why Test gave f.
func (r *Rule) Why(f Failure) string {
	switch f {
	case FailCategory:
		return "category is not " + r.Category
	case FailDecoder:
		return "not decoded as " + r.DecodedAs
	case FailNoSigID:
		return "event has no signature id"
	case FailSigID:
		return "id does not match " + quote(r.SigID.String())
	case FailMatch:
		return "match " + quote(r.Match.String()) + " not found"
	case FailRegex:
		return "regex " + quote(r.Regex.String()) + " does not match"
	case FailSrcIP:
		return "srcip does not match"
	case FailDstIP:
		return "dstip does not match"
	}
	return "matched"
}

// ipOK: the address must be in one of the positive networks (if any) and
// in none of the negated ones. An event without the address never passes.
func ipOK(conds []IPCond, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	pos, inPos := false, false
	for _, c := range conds {
		in := c.Prefix.Contains(a)
		if c.Not {
			if in {
				return false
			}
			continue
		}
		pos = true
		inPos = inPos || in
	}
	return !pos || inPos
}

func quote(s string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%q", s)
	return b.String()
}
