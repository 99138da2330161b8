package mail

import (
	"bytes"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// WireSize is the size of a rendered message (LF line ends) as the MTA
// receives it, with CRLF line ends.
func WireSize(raw []byte) int { return len(raw) + bytes.Count(raw, []byte{'\n'}) }

// Part is one message of an outcome: the alerts it shows.
type Part struct {
	Items []*Item
	Msg   *Message
	Raw   []byte // Msg rendered
}

// shown is an alert as a message shows it.
type shown struct {
	it *Item
	a  *record.Alert
	// builtin: a --template made this alert too large even cut, so its
	// message uses the OSSEC layout.
	builtin bool
}

// Messages renders o as one message, or as several when one would exceed
// the size limit (MaxSize): the alerts in order, as many in each part as fit; an alert
// too large for a message of its own is cut (see cutAlert). The last part
// says how many alerts are not shown (o.G.More). The first error is a
// --template's (that message then uses the OSSEC layout).
func (r *Renderer) Messages(o Outcome, now time.Time, newID func(time.Time) string) ([]Part, error) {
	items := o.G.Items
	if !sort.SliceIsSorted(items, func(i, j int) bool { return items[i].Seq < items[j].Seq }) {
		// Never so (a group keeps the first alerts it is given, in
		// order), but the parts' journal numbers rely on it.
		items = append([]*Item(nil), items...)
		sort.SliceStable(items, func(i, j int) bool { return items[i].Seq < items[j].Seq })
	}
	all := make([]shown, len(items))
	alerts := make([]*record.Alert, len(items))
	for i, it := range items {
		alerts[i] = clean(it.full())
		all[i] = shown{it: it, a: alerts[i]}
	}
	if r.Template != nil || logsAtLeast(alerts) <= r.maxSize() {
		m, raw, err := r.build(o, view{alerts: alerts, omitted: o.G.More}, now, newID(now))
		if WireSize(raw) <= r.maxSize() {
			return []Part{{Items: items, Msg: m, Raw: raw}}, err
		}
	}
	chunks := r.split(o, all, now)
	parts := make([]Part, len(chunks))
	var firstErr error
	for k, c := range chunks {
		v := view{part: k + 1, parts: len(chunks)}
		if k == len(chunks)-1 {
			v.omitted = o.G.More
		}
		for _, sh := range c {
			v.alerts = append(v.alerts, sh.a)
			v.builtin = v.builtin || sh.builtin
			parts[k].Items = append(parts[k].Items, sh.it)
		}
		m, raw, err := r.build(o, v, now, newID(now))
		if firstErr == nil {
			firstErr = err
		}
		parts[k].Msg, parts[k].Raw = m, raw
	}
	return parts, firstErr
}

// logsAtLeast returns a lower bound of the encoded size of the logs the
// OSSEC layout shows for alerts: each byte, and two more for each
// non-ASCII byte (quoted-printable writes it =XX). It saves rendering a
// message known to be too large.
func logsAtLeast(alerts []*record.Alert) int {
	n := 0
	count := func(s string) {
		n += len(s)
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				n += 2
			}
		}
	}
	for _, a := range alerts {
		count(a.FullLog)
		for _, p := range a.PreviousOutput {
			count(p)
		}
	}
	return n
}

// measure returns the wire size of a part showing c, rendered with the
// widest part numbers and the omitted count (so the final rendering is no
// larger, give or take partSlack).
func (r *Renderer) measure(o Outcome, c []shown, now time.Time) int {
	v := view{part: 9999, parts: 9999, omitted: o.G.More}
	for _, sh := range c {
		v.alerts = append(v.alerts, sh.a)
		v.builtin = v.builtin || sh.builtin
	}
	_, raw, _ := r.build(o, v, now, "9999999999999.000000000000@measure")
	return WireSize(raw)
}

// split packs the alerts, in order, into parts that each fit the size limit.
// Sizes are measured by rendering (the layout or a --template is not
// additive in general): each alert alone first, for a greedy packing, then
// each part, which is halved until it fits.
func (r *Renderer) split(o Outcome, all []shown, now time.Time) [][]shown {
	limit := r.maxSize() - partSlack
	base := r.measure(o, nil, now)
	var packed [][]shown
	var cur []shown
	used := base
	for i := range all {
		size := r.measure(o, all[i:i+1], now)
		if size > limit {
			all[i] = r.cutToFit(o, all[i], limit, now)
			size = r.measure(o, all[i:i+1], now)
		}
		cost := size - base
		if len(cur) > 0 && used+cost > limit {
			packed = append(packed, cur)
			cur, used = nil, base
		}
		cur = append(cur, all[i])
		used += cost
	}
	if len(cur) > 0 {
		packed = append(packed, cur)
	}
	var out [][]shown
	var fit func(c []shown)
	fit = func(c []shown) {
		if len(c) == 1 || r.measure(o, c, now) <= limit {
			out = append(out, c)
			return
		}
		fit(c[:len(c)/2])
		fit(c[len(c)/2:])
	}
	for _, c := range packed {
		fit(c)
	}
	return out
}

// cutToFit cuts an alert's text until a message showing it alone fits
// limit: its logs share a budget, other strings are cut at 1 KiB. If a
// --template still makes it too large, the OSSEC layout shows it.
func (r *Renderer) cutToFit(o Outcome, sh shown, limit int, now time.Time) shown {
	orig := sh.a
	for budget := limit / 4; ; budget /= 2 {
		sh.a = cutAlert(orig, budget)
		if r.measure(o, []shown{sh}, now) <= limit {
			return sh
		}
		if budget < 1<<10 {
			if sh.builtin {
				return sh // cannot happen: 1 KiB of log and the layout fit
			}
			sh.builtin, budget = true, limit/2 // doubled back to limit/4
		}
	}
}

// maxCutField is the most an alert's single strings (description,
// location, ...) show when the alert is too large for one message.
const maxCutField = 1 << 10

// cutAlert returns a copy of a (cleaned) whose logs (full_log, then
// previous_output) show at most budget bytes in all and whose other
// strings show at most maxCutField bytes each, cut at character
// boundaries, with a last log line saying how much was left out.
func cutAlert(a *record.Alert, budget int) *record.Alert {
	c := *a
	removed := 0
	field := func(s string, max int) string {
		t := cutString(s, max)
		removed += len(s) - len(t)
		return t
	}
	c.Timestamp = field(c.Timestamp, maxCutField)
	c.SrcIP = field(c.SrcIP, maxCutField)
	c.DestIP = field(c.DestIP, maxCutField)
	c.Proto = field(c.Proto, maxCutField)
	c.Location = field(c.Location, maxCutField)
	c.EventType = field(c.EventType, maxCutField)
	c.ID = field(c.ID, maxCutField)
	if a.Rule != nil {
		r := *a.Rule
		r.ID = field(r.ID, maxCutField)
		r.Description = field(r.Description, maxCutField)
		c.Rule = &r
	}
	if a.Alert != nil {
		ea := *a.Alert
		ea.Signature = field(ea.Signature, maxCutField)
		ea.Category = field(ea.Category, maxCutField)
		ea.Action = field(ea.Action, maxCutField)
		ea.FastAction = field(ea.FastAction, maxCutField)
		c.Alert = &ea
	}
	c.FullLog = field(c.FullLog, budget)
	budget -= len(c.FullLog)
	c.PreviousOutput = nil
	for _, p := range a.PreviousOutput {
		if budget <= 0 {
			removed += len(p)
			continue
		}
		q := field(p, budget)
		budget -= len(q)
		c.PreviousOutput = append(c.PreviousOutput, q)
	}
	if removed > 0 {
		c.PreviousOutput = append(c.PreviousOutput,
			fmt.Sprintf("[quietwatch: %d bytes of this alert not shown: it is too large for one mail]", removed))
	}
	return &c
}

// cutString returns the longest prefix of s of at most max bytes that
// ends at a character boundary.
func cutString(s string, max int) string {
	if len(s) <= max {
		return s
	}
	if max <= 0 {
		return ""
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
