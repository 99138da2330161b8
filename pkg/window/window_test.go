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
	if w.Peek([]byte("b")) != nil || w.Peek([]byte("a")) == nil || s.Len() != 2 || s.Evicted() != 1 {
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
