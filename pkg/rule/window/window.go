// Package window keeps the memory composite rules count with: for each
// window (a group of rules counting the same events by the same key) and
// each key (a source address, a signature id), the recent events, which
// of them a rule has already used, and how long a rule stays silent.
// Memory is bounded twice: entries older than the window's span are not
// counted and whole keys expire, and a Store holds at most a fixed number
// of keys, forgetting the least recently used one when a new key comes.
//
// Time is an int64 of microseconds supplied by the caller; it must not go
// backwards.
package window

// PreviousMax is how many earlier log lines a Track keeps for an alert's
// previous_output.
const PreviousMax = 10

// logRing holds the current event's line and PreviousMax earlier ones.
const logRing = PreviousMax + 1

// Store holds tracks for all windows, at most Max of them.
type Store struct {
	max        int
	n          int
	head, tail *Track // most and least recently used
	evicted    uint64 // keys forgotten to stay under the cap (for tests)
	// Removed tracks are reused, but not during the event that removed
	// them (the caller may still hold them): pending waits for Begin.
	free, pending []*Track
}

// Begin starts a new event: tracks removed before it may be reused.
func (s *Store) Begin() {
	s.free = append(s.free, s.pending...)
	clear(s.pending)
	s.pending = s.pending[:0]
}

// NewStore returns a store that tracks at most max keys (at least 1).
func NewStore(max int) *Store {
	if max < 1 {
		max = 1
	}
	return &Store{max: max}
}

// Len returns the number of keys tracked.
func (s *Store) Len() int { return s.n }

// Window is one kind of count: its rules (slots) share the events.
type Window struct {
	store *Store
	span  int64 // µs: the longest timeframe of its rules
	cap   int   // entries kept per key: the largest frequency
	slots int
	// srcs: the rules count only events from other sources than the
	// current one's (different_srcip); entries keep their source and are
	// kept as needed for that (see compact), not in the ring
	srcs bool
	m    map[string]*Track
}

// NewWindow adds a window to s. span is the longest timeframe (µs) of the
// rules sharing it, size the largest frequency, slots the number of rules,
// srcs whether entries keep their source address.
func (s *Store) NewWindow(span int64, size, slots int, srcs bool) *Window {
	if size < 1 {
		size = 1
	}
	return &Window{store: s, span: span, cap: size, slots: slots, srcs: srcs, m: map[string]*Track{}}
}

// Track is one key of one window.
type Track struct {
	w          *Window
	key        string
	prev, next *Track
	n          int64          // entries ever added; entry i lives at times[i%cap]
	times      []int64        // ring (not for a window keeping sources)
	ents       []entry        // a window keeping sources: the entries that can count, oldest first
	cnt        map[string]int // scratch for compact
	logs       [][]byte       // ring of the last logRing entries' lines, reused
	// slots holds, per slot i, at 2i the first entry not used up by its
	// last firing and at 2i+1 the time it is silent until.
	slots []int64
	last  int64 // time of the newest entry
}

// entry is an event in a window that keeps sources.
type entry struct {
	at, i int64 // time, index (0 for the track's first entry)
	src   string
}

// Track returns the track for key, creating it (and evicting the least
// recently used track of the store if it is full), and marks it used.
func (w *Window) Track(key []byte) *Track {
	s := w.store
	if t, ok := w.m[string(key)]; ok {
		s.touch(t)
		return t
	}
	if s.n >= s.max {
		s.remove(s.tail)
		s.evicted++
	}
	t := s.alloc(w, key)
	w.m[t.key] = t
	s.pushFront(t)
	s.n++
	return t
}

func (s *Store) alloc(w *Window, key []byte) *Track {
	n := len(s.free)
	if n == 0 {
		return &Track{w: w, key: string(key), slots: make([]int64, 2*w.slots)}
	}
	t := s.free[n-1]
	s.free[n-1] = nil
	s.free = s.free[:n-1]
	slots := t.slots[:0]
	for range 2 * w.slots {
		slots = append(slots, 0)
	}
	clear(t.ents)
	*t = Track{w: w, key: string(key), times: t.times[:0], ents: t.ents[:0], cnt: t.cnt, logs: t.logs[:0], slots: slots}
	return t
}

// Peek returns the track for key without creating it, or nil.
func (w *Window) Peek(key []byte) *Track { return w.m[string(key)] }

func (s *Store) pushFront(t *Track) {
	t.prev, t.next = nil, s.head
	if s.head != nil {
		s.head.prev = t
	}
	s.head = t
	if s.tail == nil {
		s.tail = t
	}
}

func (s *Store) unlink(t *Track) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		s.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		s.tail = t.prev
	}
	t.prev, t.next = nil, nil
}

func (s *Store) touch(t *Track) {
	if s.head == t {
		return
	}
	s.unlink(t)
	s.pushFront(t)
}

func (s *Store) remove(t *Track) {
	s.unlink(t)
	delete(t.w.m, t.key)
	s.n--
	s.pending = append(s.pending, t)
}

// Expire forgets up to limit of the least recently used tracks that can no
// longer count or silence anything at now.
func (s *Store) Expire(now int64, limit int) {
	for i := 0; i < limit && s.tail != nil; i++ {
		t := s.tail
		if !t.dead(now) {
			return
		}
		s.remove(t)
	}
}

func (t *Track) dead(now int64) bool {
	if t.n > 0 && now-t.last <= t.w.span {
		return false
	}
	for i := 1; i < len(t.slots); i += 2 {
		if now < t.slots[i] {
			return false
		}
	}
	return true
}

// Add records an event at now with its log line and source.
func (t *Track) Add(now int64, log, src []byte) {
	w := t.w
	i := int(t.n % int64(w.cap))
	switch {
	case w.srcs:
		t.ents = append(t.ents, entry{at: now, i: t.n, src: string(src)})
		t.compact(now)
	case len(t.times) < w.cap:
		t.times = append(t.times, now)
	default:
		t.times[i] = now
	}
	j := int(t.n % logRing)
	if len(t.logs) < logRing {
		if len(t.logs) < cap(t.logs) { // a reused track: keep its buffers
			t.logs = t.logs[:len(t.logs)+1]
			t.logs[j] = append(t.logs[j][:0], log...)
		} else {
			t.logs = append(t.logs, append([]byte(nil), log...))
		}
	} else {
		t.logs[j] = append(t.logs[j][:0], log...)
	}
	t.n++
	t.last = now
}

// compact drops the entries of a window keeping sources that can no longer
// change a count: those past the span, and an entry when, for every source
// other than its own, the newer entries kept hold cap-1 from yet other
// sources (whichever source a later event has, cap-1 earlier events from
// other sources are counted without it). Every count up to cap is
// unchanged, and at most 2*cap-1 entries stay (the newest always). A
// source's own newer entries do not push out the other sources' entries,
// which a plain ring of cap entries would do.
func (t *Track) compact(now int64) {
	need := t.w.cap - 1
	e := t.ents
	lo := 0
	for lo < len(e)-1 && now-e[lo].at > t.w.span {
		lo++
	}
	if t.cnt == nil {
		t.cnt = map[string]int{}
	}
	clear(t.cnt)
	// the two sources with most entries among those kept so far
	var top1, top2 string
	var c1, c2, total int
	k := len(e)
	for j := len(e) - 1; j >= lo; j-- {
		x := e[j]
		others := c1 // the most entries of one source other than x's
		if x.src == top1 {
			others = c2
		}
		if j != len(e)-1 && total-others >= need {
			continue
		}
		k--
		e[k] = x
		total++
		c := t.cnt[x.src] + 1
		t.cnt[x.src] = c
		switch {
		case x.src == top1:
			c1 = c
		case c > c1:
			top2, c2, top1, c1 = top1, c1, x.src, c
		case x.src == top2 || c > c2:
			top2, c2 = x.src, c
		}
	}
	n := copy(e, e[k:])
	clear(e[n:])
	t.ents = e[:n]
}

// Count returns how many of the track's events slot may count at now:
// those within span µs, not used up by its last firing, and, with
// differentFrom, whose source differs from it (the newest event, the one
// being evaluated, always counts). At most the window's size are kept.
func (t *Track) Count(slot int, now, span int64, differentFrom []byte) int {
	return t.scan(slot, now, span, differentFrom, nil)
}

// Previous appends to dst the log lines of the events Count would count,
// except the newest, newest first, at most PreviousMax. The lines are
// valid until the track's next Add.
func (t *Track) Previous(dst [][]byte, slot int, now, span int64, differentFrom []byte) [][]byte {
	t.scan(slot, now, span, differentFrom, &dst)
	return dst
}

func (t *Track) scan(slot int, now, span int64, diff []byte, prev *[][]byte) int {
	w := t.w
	mark := t.slots[2*slot]
	count := 0
	if w.srcs {
		for j := len(t.ents) - 1; j >= 0; j-- {
			x := &t.ents[j]
			if x.i < mark || now-x.at > span {
				break
			}
			if x.i != t.n-1 && diff != nil && x.src == string(diff) {
				continue
			}
			count++
			if prev != nil && x.i != t.n-1 && x.i >= t.n-logRing && len(*prev) < PreviousMax {
				*prev = append(*prev, t.logs[x.i%logRing])
			}
		}
		return count
	}
	lo := max(t.n-int64(len(t.times)), mark)
	for i := t.n - 1; i >= lo; i-- {
		if now-t.times[i%int64(w.cap)] > span {
			break
		}
		count++
		if prev != nil && i != t.n-1 && i >= t.n-logRing && len(*prev) < PreviousMax {
			*prev = append(*prev, t.logs[i%logRing])
		}
	}
	return count
}

// Fire records that slot fired at now: the events it counted are used up,
// and it is silent for ignore µs.
func (t *Track) Fire(slot int, now, ignore int64) {
	t.slots[2*slot] = t.n
	if ignore > 0 {
		t.slots[2*slot+1] = now + ignore
	}
}

// Silent reports whether slot is still silent at now, and until when.
func (t *Track) Silent(slot int, now int64) (bool, int64) {
	u := t.slots[2*slot+1]
	return now < u, u
}
