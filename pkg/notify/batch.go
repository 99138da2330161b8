package notify

import (
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// item is an alert selected for mail. Intake decodes only what selection
// and grouping need; the whole alert is decoded when a message shows it.
type item struct {
	seq   uint64 // journal entry number
	level int
	id    string
	raw   []byte        // the alert's line
	alert *record.Alert // decoded on demand by full
	// borrowed: raw is the reader's buffer, valid only during add; a group
	// copies it if it keeps the item (most items of a flood it does not).
	borrowed bool
}

func (it *item) own() {
	if it.borrowed {
		it.raw = append([]byte(nil), it.raw...)
		it.borrowed = false
	}
}

// full returns the decoded alert. A line that selection could read but
// that does not decode whole (a field of an unexpected type) is shown as
// far as it decoded, with the raw line as its log.
func (it *item) full() *record.Alert {
	if it.alert == nil {
		var l looseAlert
		a := &l.Alert
		if err := record.Unmarshal(it.raw, &l); err != nil {
			a.FullLog = string(it.raw)
		}
		if l.LooseRule != nil {
			a.Rule = &l.LooseRule.Rule
			// The level as selection read it: 10.0, 1e1 and "10" are 10.
			a.Rule.Level = it.level
		}
		if a.ID == "" {
			a.ID = it.id
		}
		it.alert = a
	}
	return it.alert
}

// looseAlert decodes an alert whose rule.level may be written any way
// record.ParseLevel accepts (which the int of record.Rule would refuse):
// its rule shadows the Alert's, and the level is not decoded at all.
type looseAlert struct {
	record.Alert
	LooseRule *looseRule `json:"rule"`
}

type looseRule struct {
	record.Rule
	Level skipped `json:"level"`
}

// skipped is a JSON value that is not decoded.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// group is a run of alerts that go out (or are held) together. Only the
// first ones, up to a byte budget, are kept in memory in full: they are
// what a mail can show (Postfix refuses big messages anyway). The rest are
// counted; they stay in the spool's journal until their message is made.
// So memory stays bounded whatever the flood, and no alert is forgotten:
// the mail says how many it does not show.
type group struct {
	items   []*item
	more    int   // alerts counted but not kept
	moreTop *item // the first of the highest level among them (for the subject)
	size    int   // bytes of the kept alerts
	upto    uint64
}

func (g *group) add(it *item, budget int) {
	g.upto = it.seq
	if g.size < budget {
		it.own()
		g.items = append(g.items, it)
		g.size += len(it.raw) + 256 // about what the layout adds per alert
		return
	}
	g.more++
	if g.moreTop == nil || it.level > g.moreTop.level {
		it.own()
		g.moreTop = it
	}
}

// merge appends o's alerts after g's.
func (g *group) merge(o *group, budget int) {
	for _, it := range o.items {
		g.add(it, budget)
	}
	if o.more > 0 {
		if g.moreTop == nil || o.moreTop.level > g.moreTop.level {
			g.moreTop = o.moreTop
		}
		g.more += o.more
	}
	g.upto = o.upto
}

func (g *group) count() int { return len(g.items) + g.more }

// top returns the first alert of the highest level.
func (g *group) top() *item {
	var best *item
	for _, it := range g.items {
		if best == nil || it.level > best.level {
			best = it
		}
	}
	if g.moreTop != nil && (best == nil || g.moreTop.level > best.level) {
		best = g.moreTop
	}
	return best
}

// outcome is what the batcher decided for some alerts: a mail to send now
// (a group, or a digest of held alerts), or alerts held back by the limit.
type outcome struct {
	g      *group
	digest bool // a digest of alerts the hourly limit held back
	held   bool // not a mail: the limit held these alerts back
}

// batcher groups alerts and applies the hourly limit. It is pure: every
// method takes the time, so tests drive it with any clock.
//
// A group opens with its first alert and closes window later (a fixed
// window, so a steady stream cannot postpone the mail forever). The limit
// is a sliding hour: a mail may be made when fewer than max were made in
// the 60 minutes before; a group closed over the limit is held, and all
// held alerts go out as one digest as soon as a slot frees.
type batcher struct {
	window time.Duration
	max    int // mails per hour; 0: no limit
	budget int // bytes of alerts a group keeps in full (maxBody if 0)

	open *group
	end  time.Time // when the open group closes
	held *group
	sent []time.Time // when recent mails were made, oldest first
}

func (b *batcher) budgetBytes() int {
	if b.budget <= 0 {
		return maxBody
	}
	return b.budget
}

// add takes a new alert at now.
func (b *batcher) add(now time.Time, it *item) []outcome {
	out := b.tick(now)
	if b.open == nil {
		b.open = &group{}
		b.end = now.Add(b.window)
	}
	b.open.add(it, b.budgetBytes())
	if b.window <= 0 {
		out = append(out, b.tick(now)...)
	}
	return out
}

// hold adds an alert left by an earlier run to the held alerts.
func (b *batcher) hold(it *item) {
	if b.held == nil {
		b.held = &group{}
	}
	b.held.add(it, b.budgetBytes())
}

// tick closes the open group if its window is over and releases the held
// alerts if the limit allows.
func (b *batcher) tick(now time.Time) []outcome {
	var out []outcome
	if b.open != nil && !now.Before(b.end) {
		out = b.closeGroup(now, out)
	}
	return b.release(now, out)
}

// finish closes the open group at once (end of input).
func (b *batcher) finish(now time.Time) []outcome {
	var out []outcome
	if b.open != nil {
		out = b.closeGroup(now, out)
	}
	return b.release(now, out)
}

// drain returns every held alert as a digest, limit or not (a dry run's
// end: the digest that would follow).
func (b *batcher) drain(now time.Time) []outcome {
	out := b.finish(now)
	if b.held != nil {
		out = append(out, outcome{g: b.held, digest: true})
		b.use(now)
		b.held = nil
	}
	return out
}

func (b *batcher) closeGroup(now time.Time, out []outcome) []outcome {
	g := b.open
	b.open = nil
	switch {
	case b.held == nil && b.allowed(now):
		b.use(now)
		return append(out, outcome{g: g})
	case b.held != nil && b.allowed(now):
		b.held.merge(g, b.budgetBytes()) // goes out in the digest, now
		return out
	default:
		if b.held == nil {
			b.held = &group{}
		}
		b.held.merge(g, b.budgetBytes())
		return append(out, outcome{g: g, held: true})
	}
}

func (b *batcher) release(now time.Time, out []outcome) []outcome {
	if b.held != nil && b.allowed(now) {
		out = append(out, outcome{g: b.held, digest: true})
		b.use(now)
		b.held = nil
	}
	return out
}

func (b *batcher) allowed(now time.Time) bool {
	if b.max <= 0 {
		return true
	}
	b.prune(now)
	return len(b.sent) < b.max
}

func (b *batcher) prune(now time.Time) {
	i := 0
	for i < len(b.sent) && now.Sub(b.sent[i]) >= time.Hour {
		i++
	}
	b.sent = b.sent[i:]
}

func (b *batcher) use(now time.Time) {
	if b.max > 0 {
		b.sent = append(b.sent, now)
	}
}

// next returns when tick has something to do, and false if nothing is
// waiting for time.
func (b *batcher) next(now time.Time) (time.Time, bool) {
	var t time.Time
	ok := false
	if b.open != nil {
		t, ok = b.end, true
	}
	if b.held != nil {
		free := now
		if b.max > 0 {
			b.prune(now)
			if n := len(b.sent); n >= b.max {
				free = b.sent[n-b.max].Add(time.Hour)
			}
		}
		if !ok || free.Before(t) {
			t, ok = free, true
		}
	}
	return t, ok
}

// heldCount returns the number of alerts held back by the limit.
func (b *batcher) heldCount() int {
	if b.held == nil {
		return 0
	}
	return b.held.count()
}
