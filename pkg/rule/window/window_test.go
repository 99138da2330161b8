package window

import "testing"

const sec = int64(1e6)

func TestCountMarksAndSilence(t *testing.T) {
	s := NewStore(10)
	w := s.NewWindow(120*sec, 5, 2, false)
	tr := w.Track([]byte("a"))
	for i := int64(0); i < 5; i++ {
		tr.Add(i*sec, []byte{byte('0' + i)}, nil)
	}
	if n := tr.Count(0, 4*sec, 120*sec, nil); n != 5 {
		t.Fatalf("count %d, want 5", n)
	}
	prev := tr.Previous(nil, 0, 4*sec, 120*sec, nil)
	if len(prev) != 4 || string(prev[0]) != "3" || string(prev[3]) != "0" {
		t.Errorf("previous %q", prev)
	}
	tr.Fire(0, 4*sec, 90*sec)
	if n := tr.Count(0, 4*sec, 120*sec, nil); n != 0 {
		t.Errorf("after firing, count %d, want 0", n)
	}
	if n := tr.Count(1, 4*sec, 120*sec, nil); n != 5 {
		t.Errorf("another slot is not used up: %d", n)
	}
	if silent, _ := tr.Silent(0, 93*sec); !silent {
		t.Error("not silent within ignore")
	}
	if silent, _ := tr.Silent(0, 94*sec); silent {
		t.Error("silent after ignore")
	}
	// the ring keeps only the window's size; old entries leave the span
	for i := int64(5); i < 20; i++ {
		tr.Add(i*sec, nil, nil)
	}
	if n := tr.Count(1, 200*sec, 120*sec, nil); n != 0 {
		t.Errorf("count after the span %d", n)
	}
	if n := tr.Count(1, 19*sec, 120*sec, nil); n != 5 {
		t.Errorf("count capped at size: %d", n)
	}
}

func TestLRUAndExpire(t *testing.T) {
	s := NewStore(2)
	w := s.NewWindow(10*sec, 3, 1, false)
	a := w.Track([]byte("a"))
	a.Add(0, nil, nil)
	w.Track([]byte("b")).Add(sec, nil, nil)
	w.Track([]byte("a")) // a is now the most recent
	w.Track([]byte("c")).Add(2*sec, nil, nil)
	if w.Peek([]byte("b")) != nil || w.Peek([]byte("a")) == nil || s.Len() != 2 || s.evicted != 1 {
		t.Fatalf("LRU kept the wrong keys: len %d", s.Len())
	}
	s.Expire(11*sec, 10) // a's last entry is at 0: dead; c's at 2 s: live
	if w.Peek([]byte("a")) != nil || w.Peek([]byte("c")) == nil {
		t.Error("expire removed the wrong keys")
	}
}

func TestDifferentSource(t *testing.T) {
	s := NewStore(2)
	w := s.NewWindow(10*sec, 5, 1, true)
	tr := w.Track(nil)
	for _, src := range []string{"x", "x", "y", "x"} {
		tr.Add(0, nil, []byte(src))
	}
	if n := tr.Count(0, 0, 10*sec, []byte("x")); n != 2 {
		t.Errorf("count %d, want 2 (y and the current)", n)
	}
}

func TestReuseWaitsForBegin(t *testing.T) {
	s := NewStore(1)
	w1 := s.NewWindow(10*sec, 5, 2, false)
	w2 := s.NewWindow(10*sec, 5, 1, false)
	a := w1.Track([]byte("a"))
	a.Add(0, []byte("line a"), nil)
	b := w2.Track([]byte("b")) // evicts a, which the caller still holds
	if a == b {
		t.Fatal("a track was reused in the event that evicted it")
	}
	b.Add(0, []byte("line b"), nil)
	s.Begin()
	c := w1.Track([]byte("c")) // evicts b; reuses a
	if c != a || c.Count(1, 0, 10*sec, nil) != 0 || len(c.slots) != 4 {
		t.Errorf("reused track not reset: %+v", c)
	}
	c.Add(sec, []byte("line c"), nil)
	c.Add(2*sec, []byte("line d"), nil)
	if p := c.Previous(nil, 0, 2*sec, 10*sec, nil); len(p) != 1 || string(p[0]) != "line c" {
		t.Errorf("previous %q", p)
	}
}

// Same-source events do not push countable ones out of a different_srcip
// window: A X X B X with a frequency of 3 counts A and B for the last X.
func TestDifferentSourceNotPushedOut(t *testing.T) {
	s := NewStore(2)
	w := s.NewWindow(10*sec, 3, 1, true)
	tr := w.Track(nil)
	for _, src := range []string{"A", "X", "X", "B", "X"} {
		tr.Add(0, []byte("line "+src), []byte(src))
	}
	if n := tr.Count(0, 0, 10*sec, []byte("X")); n != 3 {
		t.Errorf("count %d, want 3 (A, B and the current)", n)
	}
	if p := tr.Previous(nil, 0, 0, 10*sec, []byte("X")); len(p) != 2 || string(p[0]) != "line B" || string(p[1]) != "line A" {
		t.Errorf("previous %q", p)
	}
}

// The entries a different_srcip window keeps give, for every source of the
// current event the same count (up to the window's size) as keeping every
// entry would, and
// stay bounded.
func TestDifferentSourceMatchesUnbounded(t *testing.T) {
	type ent struct {
		at  int64
		src string
	}
	rnd := uint64(1)
	next := func(n int) int {
		rnd = rnd*6364136223846793005 + 1442695040888963407
		return int(rnd>>33) % n
	}
	for size := 1; size <= 6; size++ {
		s := NewStore(1)
		w := s.NewWindow(20*sec, size, 2, true)
		tr := w.Track(nil)
		var all []ent
		now := int64(0)
		for step := 0; step < 3000; step++ {
			now += int64(next(3)) * sec
			src := string(rune('a' + next(2+size%3)))
			if next(10) == 0 {
				src = string(rune('A' + next(26)))
			}
			tr.Add(now, nil, []byte(src))
			all = append(all, ent{now, src})
			if len(tr.ents) > 2*size-1 {
				t.Fatalf("size %d: %d entries kept", size, len(tr.ents))
			}
			{ // the engine counts as the current event's source
				cur := src
				want := 1 // the current event
				for i := len(all) - 2; i >= 0 && now-all[i].at <= 20*sec; i-- {
					if all[i].src != cur {
						want++
					}
				}
				got := tr.Count(0, now, 20*sec, []byte(cur))
				if min(got, size) != min(want, size) {
					t.Fatalf("size %d step %d as %q: count %d, unbounded %d", size, step, cur, got, want)
				}
			}
			if next(50) == 0 { // a firing uses up the slot's events
				tr.Fire(0, now, 0)
				all = all[:0]
			}
		}
	}
}
