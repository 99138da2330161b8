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
}

// full returns the decoded alert. A line that selection could read but
// that does not decode whole (a field of an unexpected type) is shown as
// far as it decoded, with the raw line as its log.
func (it *item) full() *record.Alert {
	if it.alert == nil {
		a := new(record.Alert)
		if err := record.Unmarshal(it.raw, a); err != nil {
			a.FullLog = string(it.raw)
		}
		if a.ID == "" {
			a.ID = it.id
		}
		it.alert = a
	}
	return it.alert
}

// outcome is what the batcher decided for some alerts: a mail to send now
// (a group, or a digest of held alerts), or alerts held back by the limit.
type outcome struct {
	items  []*item
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

	open []*item
	end  time.Time // when the open group closes
	held []*item
	sent []time.Time // when recent mails were made, oldest first
}

// add takes a new alert at now.
func (b *batcher) add(now time.Time, it *item) []outcome {
	out := b.tick(now)
	if len(b.open) == 0 {
		b.end = now.Add(b.window)
	}
	b.open = append(b.open, it)
	if b.window <= 0 {
		out = append(out, b.tick(now)...)
	}
	return out
}

// tick closes the open group if its window is over and releases the held
// alerts if the limit allows.
func (b *batcher) tick(now time.Time) []outcome {
	var out []outcome
	if len(b.open) > 0 && !now.Before(b.end) {
		out = b.closeGroup(now, out)
	}
	return b.release(now, out)
}

// finish closes the open group at once (end of input).
func (b *batcher) finish(now time.Time) []outcome {
	var out []outcome
	if len(b.open) > 0 {
		out = b.closeGroup(now, out)
	}
	return b.release(now, out)
}

// drain returns every held alert as a digest, limit or not (a dry run's
// end: the digest that would follow).
func (b *batcher) drain(now time.Time) []outcome {
	out := b.finish(now)
	if len(b.held) > 0 {
		out = append(out, outcome{items: b.held, digest: true})
		b.use(now)
		b.held = nil
	}
	return out
}

func (b *batcher) closeGroup(now time.Time, out []outcome) []outcome {
	g := b.open
	b.open = nil
	switch {
	case len(b.held) == 0 && b.allowed(now):
		b.use(now)
		return append(out, outcome{items: g})
	case len(b.held) > 0 && b.allowed(now):
		b.held = append(b.held, g...) // goes out in the digest, now
		return out
	default:
		b.held = append(b.held, g...)
		return append(out, outcome{items: g, held: true})
	}
}

func (b *batcher) release(now time.Time, out []outcome) []outcome {
	if len(b.held) > 0 && b.allowed(now) {
		out = append(out, outcome{items: b.held, digest: true})
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
	if len(b.open) > 0 {
		t, ok = b.end, true
	}
	if len(b.held) > 0 {
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
func (b *batcher) heldCount() int { return len(b.held) }
