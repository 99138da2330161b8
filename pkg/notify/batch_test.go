package notify

import (
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
)

var t0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

func it(seq uint64, level int) *item {
	return &item{seq: seq, level: level, alert: &record.Alert{Rule: &record.Rule{Level: level}}}
}

func seqs(items []*item) []uint64 {
	var s []uint64
	for _, i := range items {
		s = append(s, i.seq)
	}
	return s
}

func TestBatcherGroupWindow(t *testing.T) {
	b := batcher{window: 10 * time.Second, max: 0}
	if out := b.add(t0, it(1, 10)); len(out) != 0 {
		t.Fatalf("first alert: %v", out)
	}
	if out := b.add(t0.Add(9*time.Second), it(2, 12)); len(out) != 0 {
		t.Fatalf("inside the window: %v", out)
	}
	if next, ok := b.next(t0); !ok || !next.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("next = %v %v", next, ok)
	}
	out := b.tick(t0.Add(10 * time.Second))
	if len(out) != 1 || len(out[0].g.items) != 2 || out[0].digest || out[0].held {
		t.Fatalf("closing: %+v", out)
	}
	// A fixed window: a new alert after the close starts a new group.
	if out := b.add(t0.Add(11*time.Second), it(3, 10)); len(out) != 0 {
		t.Fatalf("%v", out)
	}
	out = b.finish(t0.Add(12 * time.Second))
	if len(out) != 1 || seqs(out[0].g.items)[0] != 3 {
		t.Fatalf("finish: %+v", out)
	}
	if _, ok := b.next(t0); ok {
		t.Fatal("nothing should wait")
	}
}

func TestBatcherZeroWindow(t *testing.T) {
	b := batcher{}
	for i := uint64(1); i <= 3; i++ {
		out := b.add(t0, it(i, 10))
		if len(out) != 1 || len(out[0].g.items) != 1 {
			t.Fatalf("alert %d: %+v", i, out)
		}
	}
}

func TestBatcherLimitSlidingHour(t *testing.T) {
	b := batcher{window: 0, max: 2}
	var mails, held [][]uint64
	collect := func(out []outcome) {
		for _, o := range out {
			if o.held {
				held = append(held, seqs(o.g.items))
			} else {
				mails = append(mails, seqs(o.g.items))
			}
		}
	}
	collect(b.add(t0, it(1, 10)))
	collect(b.add(t0.Add(10*time.Minute), it(2, 10)))
	collect(b.add(t0.Add(20*time.Minute), it(3, 10)))
	collect(b.add(t0.Add(30*time.Minute), it(4, 10)))
	if len(mails) != 2 || len(held) != 2 || b.heldCount() != 2 {
		t.Fatalf("mails %v held %v", mails, held)
	}
	next, ok := b.next(t0.Add(30 * time.Minute))
	if !ok || !next.Equal(t0.Add(time.Hour)) {
		t.Fatalf("next = %v, want the first mail's time + 1h", next)
	}
	collect(b.tick(t0.Add(59 * time.Minute)))
	if len(mails) != 2 {
		t.Fatal("digest before a slot was free")
	}
	collect(b.tick(t0.Add(time.Hour)))
	if len(mails) != 3 || len(mails[2]) != 2 || mails[2][0] != 3 || mails[2][1] != 4 {
		t.Fatalf("digest: %v", mails)
	}
	if b.heldCount() != 0 {
		t.Fatal("held after the digest")
	}
}

func TestBatcherGroupJoinsDigest(t *testing.T) {
	b := batcher{window: time.Minute, max: 1}
	b.add(t0, it(1, 10))
	b.tick(t0.Add(time.Minute)) // mail 1
	b.add(t0.Add(2*time.Minute), it(2, 10))
	out := b.tick(t0.Add(3 * time.Minute))
	if len(out) != 1 || !out[0].held {
		t.Fatalf("%+v", out)
	}
	// A group closing when a slot is free while alerts are held: one digest
	// with all of them, in order.
	b.add(t0.Add(60*time.Minute), it(3, 12))
	out = b.tick(t0.Add(61 * time.Minute))
	if len(out) != 1 || !out[0].digest || len(out[0].g.items) != 2 || out[0].g.items[1].seq != 3 {
		t.Fatalf("%+v", out)
	}
}

func TestBatcherDrain(t *testing.T) {
	b := batcher{max: 1}
	b.add(t0, it(1, 10))
	b.add(t0, it(2, 10))
	b.add(t0, it(3, 10))
	if out := b.finish(t0); len(out) != 0 {
		t.Fatalf("finish over the limit sends nothing: %+v", out)
	}
	out := b.drain(t0)
	if len(out) != 1 || !out[0].digest || len(out[0].g.items) != 2 {
		t.Fatalf("%+v", out)
	}
}

func TestTopAlert(t *testing.T) {
	items := []*item{it(1, 10), it(2, 12), it(3, 12), it(4, 9)}
	g := &group{}
	for _, i := range items {
		g.add(i, 1<<20)
	}
	if g.top() != items[1] {
		t.Fatal("the first alert of the highest level gives the subject")
	}
}

// TestGroupBudget: past the byte budget alerts are counted, not kept; the
// highest level among them still gives the subject; merging keeps order.
func TestGroupBudget(t *testing.T) {
	g := &group{}
	for i := uint64(1); i <= 10; i++ {
		lvl := 10
		if i == 8 {
			lvl = 13
		}
		x := it(i, lvl)
		x.raw = make([]byte, 100)
		g.add(x, 3*356)
	}
	if len(g.items) != 3 || g.more != 7 || g.count() != 10 || g.upto != 10 {
		t.Fatalf("kept %d, more %d, upto %d", len(g.items), g.more, g.upto)
	}
	if g.top().seq != 8 {
		t.Fatalf("top %d", g.top().seq)
	}
	h := &group{}
	h.add(it(11, 9), 1000)
	h.merge(g, 1000)
	if h.count() != 11 || h.upto != 10 || h.top().seq != 8 {
		t.Fatalf("merged: count %d upto %d top %d", h.count(), h.upto, h.top().seq)
	}
}
