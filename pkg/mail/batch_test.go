package mail

import (
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
)

var t0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

func it(seq uint64, level int) *Item {
	return &Item{Seq: seq, Level: level, alert: &record.Alert{Rule: &record.Rule{Level: level}}}
}

func seqs(items []*Item) []uint64 {
	var s []uint64
	for _, i := range items {
		s = append(s, i.Seq)
	}
	return s
}

func TestBatcherGroupWindow(t *testing.T) {
	b := Batcher{Window: 10 * time.Second, Max: 0}
	if out := b.Add(t0, it(1, 10)); len(out) != 0 {
		t.Fatalf("first alert: %v", out)
	}
	if out := b.Add(t0.Add(9*time.Second), it(2, 12)); len(out) != 0 {
		t.Fatalf("inside the window: %v", out)
	}
	if next, ok := b.Next(t0); !ok || !next.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("next = %v %v", next, ok)
	}
	out := b.Tick(t0.Add(10 * time.Second))
	if len(out) != 1 || len(out[0].G.Items) != 2 || out[0].Digest || out[0].Held {
		t.Fatalf("closing: %+v", out)
	}
	// A fixed window: a new alert after the close starts a new group.
	if out := b.Add(t0.Add(11*time.Second), it(3, 10)); len(out) != 0 {
		t.Fatalf("%v", out)
	}
	out = b.Finish(t0.Add(12 * time.Second))
	if len(out) != 1 || seqs(out[0].G.Items)[0] != 3 {
		t.Fatalf("finish: %+v", out)
	}
	if _, ok := b.Next(t0); ok {
		t.Fatal("nothing should wait")
	}
}

func TestBatcherZeroWindow(t *testing.T) {
	b := Batcher{}
	for i := uint64(1); i <= 3; i++ {
		out := b.Add(t0, it(i, 10))
		if len(out) != 1 || len(out[0].G.Items) != 1 {
			t.Fatalf("alert %d: %+v", i, out)
		}
	}
}

func TestBatcherLimitSlidingHour(t *testing.T) {
	b := Batcher{Window: 0, Max: 2}
	var mails, held [][]uint64
	collect := func(out []Outcome) {
		for _, o := range out {
			if o.Held {
				held = append(held, seqs(o.G.Items))
			} else {
				mails = append(mails, seqs(o.G.Items))
			}
		}
	}
	collect(b.Add(t0, it(1, 10)))
	collect(b.Add(t0.Add(10*time.Minute), it(2, 10)))
	collect(b.Add(t0.Add(20*time.Minute), it(3, 10)))
	collect(b.Add(t0.Add(30*time.Minute), it(4, 10)))
	if len(mails) != 2 || len(held) != 2 || b.HeldCount() != 2 {
		t.Fatalf("mails %v held %v", mails, held)
	}
	next, ok := b.Next(t0.Add(30 * time.Minute))
	if !ok || !next.Equal(t0.Add(time.Hour)) {
		t.Fatalf("next = %v, want the first mail's time + 1h", next)
	}
	collect(b.Tick(t0.Add(59 * time.Minute)))
	if len(mails) != 2 {
		t.Fatal("digest before a slot was free")
	}
	collect(b.Tick(t0.Add(time.Hour)))
	if len(mails) != 3 || len(mails[2]) != 2 || mails[2][0] != 3 || mails[2][1] != 4 {
		t.Fatalf("digest: %v", mails)
	}
	if b.HeldCount() != 0 {
		t.Fatal("held after the digest")
	}
}

func TestBatcherGroupJoinsDigest(t *testing.T) {
	b := Batcher{Window: time.Minute, Max: 1}
	b.Add(t0, it(1, 10))
	b.Tick(t0.Add(time.Minute)) // mail 1
	b.Add(t0.Add(2*time.Minute), it(2, 10))
	out := b.Tick(t0.Add(3 * time.Minute))
	if len(out) != 1 || !out[0].Held {
		t.Fatalf("%+v", out)
	}
	// A group closing when a slot is free while alerts are held: one digest
	// with all of them, in order.
	b.Add(t0.Add(60*time.Minute), it(3, 12))
	out = b.Tick(t0.Add(61 * time.Minute))
	if len(out) != 1 || !out[0].Digest || len(out[0].G.Items) != 2 || out[0].G.Items[1].Seq != 3 {
		t.Fatalf("%+v", out)
	}
}

func TestBatcherDrain(t *testing.T) {
	b := Batcher{Max: 1}
	b.Add(t0, it(1, 10))
	b.Add(t0, it(2, 10))
	b.Add(t0, it(3, 10))
	if out := b.Finish(t0); len(out) != 0 {
		t.Fatalf("finish over the limit sends nothing: %+v", out)
	}
	out := b.Drain(t0)
	if len(out) != 1 || !out[0].Digest || len(out[0].G.Items) != 2 {
		t.Fatalf("%+v", out)
	}
}

func TestTopAlert(t *testing.T) {
	items := []*Item{it(1, 10), it(2, 12), it(3, 12), it(4, 9)}
	g := &Group{}
	for _, i := range items {
		g.Add(i, 1<<20)
	}
	if g.Top() != items[1] {
		t.Fatal("the first alert of the highest level gives the subject")
	}
}

// TestGroupBudget: past the byte budget alerts are counted, not kept; the
// highest level among them still gives the subject; merging keeps order.
func TestGroupBudget(t *testing.T) {
	g := &Group{}
	for i := uint64(1); i <= 10; i++ {
		lvl := 10
		if i == 8 {
			lvl = 13
		}
		x := it(i, lvl)
		x.Raw = make([]byte, 100)
		g.Add(x, 3*356)
	}
	if len(g.Items) != 3 || g.More != 7 || g.Count() != 10 || g.Upto != 10 {
		t.Fatalf("kept %d, more %d, upto %d", len(g.Items), g.More, g.Upto)
	}
	if g.Top().Seq != 8 {
		t.Fatalf("top %d", g.Top().Seq)
	}
	h := &Group{}
	h.Add(it(11, 9), 1000)
	h.Merge(g, 1000)
	if h.Count() != 11 || h.Upto != 10 || h.Top().Seq != 8 {
		t.Fatalf("merged: count %d upto %d top %d", h.Count(), h.Upto, h.Top().Seq)
	}
}
