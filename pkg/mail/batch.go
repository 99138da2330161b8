package mail

import (
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// Item is an alert selected for mail. Intake decodes only what selection
// and grouping need; the whole alert is decoded when a message shows it.
type Item struct {
	Seq   uint64 // the caller's entry number (notify: its journal's), ascending
	Level int
	ID    string
	Raw   []byte // the alert's line
	// Borrowed: Raw is the reader's buffer, valid only during Batcher.Add;
	// a group copies it if it keeps the item (most items of a flood it
	// does not).
	Borrowed bool
	alert    *record.Alert // decoded on demand by full
}

func (it *Item) own() {
	if it.Borrowed {
		it.Raw = append([]byte(nil), it.Raw...)
		it.Borrowed = false
	}
}

// full returns the decoded alert. A line that selection could read but
// that does not decode whole (a field of an unexpected type) is shown as
// far as it decoded, with the raw line as its log.
func (it *Item) full() *record.Alert {
	if it.alert == nil {
		var l looseAlert
		a := &l.Alert
		if err := record.Unmarshal(it.Raw, &l); err != nil {
			a.FullLog = string(it.Raw)
		}
		if l.LooseRule != nil {
			a.Rule = &l.LooseRule.Rule
			// The level as selection read it: 10.0, 1e1 and "10" are 10.
			a.Rule.Level = it.Level
		}
		if a.ID == "" {
			a.ID = it.ID
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

// Group is a run of alerts that go out (or are held) together. Only the
// first ones, up to a byte budget, are kept in memory in full: they are
// what a mail can show (Postfix refuses big messages anyway). The rest are
// counted; they stay in the caller's journal until their message is made.
// So memory stays bounded whatever the flood, and no alert is forgotten:
// the mail says how many it does not show.
type Group struct {
	Items   []*Item
	More    int    // alerts counted but not kept
	moreTop *Item  // the first of the highest level among them (for the subject)
	size    int    // bytes of the kept alerts
	Upto    uint64 // the Seq of the last alert added
}

// Add adds an alert, kept in full while the group holds less than budget
// bytes, counted after that.
func (g *Group) Add(it *Item, budget int) {
	g.Upto = it.Seq
	if g.size < budget {
		it.own()
		g.Items = append(g.Items, it)
		g.size += len(it.Raw) + 256 // about what the layout adds per alert
		return
	}
	g.More++
	if g.moreTop == nil || it.Level > g.moreTop.Level {
		it.own()
		g.moreTop = it
	}
}

// Merge appends o's alerts after g's.
func (g *Group) Merge(o *Group, budget int) {
	for _, it := range o.Items {
		g.Add(it, budget)
	}
	if o.More > 0 {
		if g.moreTop == nil || o.moreTop.Level > g.moreTop.Level {
			g.moreTop = o.moreTop
		}
		g.More += o.More
	}
	g.Upto = o.Upto
}

// Count returns the number of alerts in g, kept or counted.
func (g *Group) Count() int { return len(g.Items) + g.More }

// Top returns the first alert of the highest level.
func (g *Group) Top() *Item {
	var best *Item
	for _, it := range g.Items {
		if best == nil || it.Level > best.Level {
			best = it
		}
	}
	if g.moreTop != nil && (best == nil || g.moreTop.Level > best.Level) {
		best = g.moreTop
	}
	return best
}

// Outcome is what the batcher decided for some alerts: a mail to send now
// (a group, or a digest of held alerts), or alerts held back by the limit.
type Outcome struct {
	G      *Group
	Digest bool // a digest of alerts the hourly limit held back
	Held   bool // not a mail: the limit held these alerts back
}

// Batcher groups alerts and applies the hourly limit. It is pure: every
// method takes the time, so tests drive it with any clock.
//
// A group opens with its first alert and closes Window later (a fixed
// window, so a steady stream cannot postpone the mail forever). The limit
// is a sliding hour: a mail may be made when fewer than Max were made in
// the 60 minutes before; a group closed over the limit is held, and all
// held alerts go out as one digest as soon as a slot frees.
type Batcher struct {
	Window time.Duration
	Max    int // mails per hour; 0: no limit
	Budget int // bytes of alerts a group keeps in full (MaxShown if 0)
	// Sent holds when recent mails were made, oldest first: a restart
	// restores it, so the limit holds across runs.
	Sent []time.Time

	open *Group
	end  time.Time // when the open group closes
	held *Group
}

func (b *Batcher) budgetBytes() int {
	if b.Budget <= 0 {
		return MaxShown
	}
	return b.Budget
}

// Idle reports whether no group is open.
func (b *Batcher) Idle() bool { return b.open == nil }

// Add takes a new alert at now.
func (b *Batcher) Add(now time.Time, it *Item) []Outcome {
	out := b.Tick(now)
	if b.open == nil {
		b.open = &Group{}
		b.end = now.Add(b.Window)
	}
	b.open.Add(it, b.budgetBytes())
	if b.Window <= 0 {
		out = append(out, b.Tick(now)...)
	}
	return out
}

// Hold adds an alert left by an earlier run to the held alerts.
func (b *Batcher) Hold(it *Item) {
	if b.held == nil {
		b.held = &Group{}
	}
	b.held.Add(it, b.budgetBytes())
}

// Tick closes the open group if its window is over and releases the held
// alerts if the limit allows.
func (b *Batcher) Tick(now time.Time) []Outcome {
	var out []Outcome
	if b.open != nil && !now.Before(b.end) {
		out = b.closeGroup(now, out)
	}
	return b.release(now, out)
}

// Finish closes the open group at once (end of input).
func (b *Batcher) Finish(now time.Time) []Outcome {
	var out []Outcome
	if b.open != nil {
		out = b.closeGroup(now, out)
	}
	return b.release(now, out)
}

// Drain returns every held alert as a digest, limit or not (a dry run's
// end: the digest that would follow).
func (b *Batcher) Drain(now time.Time) []Outcome {
	out := b.Finish(now)
	if b.held != nil {
		out = append(out, Outcome{G: b.held, Digest: true})
		b.use(now)
		b.held = nil
	}
	return out
}

func (b *Batcher) closeGroup(now time.Time, out []Outcome) []Outcome {
	g := b.open
	b.open = nil
	switch {
	case b.held == nil && b.allowed(now):
		b.use(now)
		return append(out, Outcome{G: g})
	case b.held != nil && b.allowed(now):
		b.held.Merge(g, b.budgetBytes()) // goes out in the digest, now
		return out
	default:
		if b.held == nil {
			b.held = &Group{}
		}
		b.held.Merge(g, b.budgetBytes())
		return append(out, Outcome{G: g, Held: true})
	}
}

func (b *Batcher) release(now time.Time, out []Outcome) []Outcome {
	if b.held != nil && b.allowed(now) {
		out = append(out, Outcome{G: b.held, Digest: true})
		b.use(now)
		b.held = nil
	}
	return out
}

func (b *Batcher) allowed(now time.Time) bool {
	if b.Max <= 0 {
		return true
	}
	b.prune(now)
	return len(b.Sent) < b.Max
}

func (b *Batcher) prune(now time.Time) {
	i := 0
	for i < len(b.Sent) && now.Sub(b.Sent[i]) >= time.Hour {
		i++
	}
	b.Sent = b.Sent[i:]
}

func (b *Batcher) use(now time.Time) {
	if b.Max > 0 {
		b.Sent = append(b.Sent, now)
	}
}

// Next returns when Tick has something to do, and false if nothing is
// waiting for time.
func (b *Batcher) Next(now time.Time) (time.Time, bool) {
	var t time.Time
	ok := false
	if b.open != nil {
		t, ok = b.end, true
	}
	if b.held != nil {
		free := now
		if b.Max > 0 {
			b.prune(now)
			if n := len(b.Sent); n >= b.Max {
				free = b.Sent[n-b.Max].Add(time.Hour)
			}
		}
		if !ok || free.Before(t) {
			t, ok = free, true
		}
	}
	return t, ok
}

// HeldCount returns the number of alerts held back by the limit.
func (b *Batcher) HeldCount() int {
	if b.held == nil {
		return 0
	}
	return b.held.Count()
}
