package fastparse

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/quietwatch/quietwatch/pkg/eve"
)

// The input formats of --format.
const (
	formatAuto = iota // not known yet: the first byte of the file says
	formatFast        // fast.log (Suricata, Snort 2, Snort 3)
	formatEVE         // Suricata's eve.json
)

// eveLineMax is the default --max-line for eve.json: a record carries
// payloads, HTTP bodies and file metadata and can be several megabytes,
// while the reader's buffer only grows with the lines really read.
const eveLineMax = 64 << 20

func parseFormat(s string) (int, bool) {
	switch s {
	case "auto", "":
		return formatAuto, true
	case "fast":
		return formatFast, true
	case "eve":
		return formatEVE, true
	}
	return 0, false
}

// decide returns the format a file whose first line (the first that is
// not blank) is line has, or formatAuto if line is blank: Suricata begins
// every eve.json record with '{', and no fast.log line begins so.
func decide(line []byte) int {
	for _, c := range line {
		switch c {
		case ' ', '\t', '\r', '\n', 0:
			continue
		case '{':
			return formatEVE
		}
		return formatFast
	}
	return formatAuto
}

// peekFormat decides the format of a stream from its first bytes that are
// not blank (looking at up to the buffer's size), and returns a reader
// that still has them.
func peekFormat(r io.Reader) (int, io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; n <= br.Size(); n *= 2 {
		b, err := br.Peek(n)
		if f := decide(b); f != formatAuto {
			return f, br
		}
		if err != nil {
			break
		}
	}
	return formatAuto, br
}

// maxLineFor returns the longest line accepted in a file of format f.
func (s *stage) maxLineFor(f int) int {
	if s.maxLineSet || f == formatFast {
		return s.maxLine
	}
	return max(s.maxLine, eveLineMax)
}

// eveLine parses one line of eve.json; it reports whether --strict must
// stop here.
func (w *worker) eveLine(text []byte, name string, num int64, torn bool) (fatal bool) {
	out, r := w.eve.Line(w.out, text)
	w.out = out
	if r.Msg != "" {
		msg := r.Msg
		if torn {
			msg += " (at the end of a rotated file, without newline)"
		}
		w.diag(name, num, msg)
	}
	w.m.events.Add(float64(r.Alerts))
	if r.Lost > 0 || r.Blank {
		w.skipped++
		if r.Lost > 0 {
			w.m.lost.Inc()
		} else {
			w.m.blank.Inc()
		}
	}
	return r.Lost > 0 && w.strict
}

// addOther counts the records of other event types a worker skipped.
func (s *stage) addOther(p *eve.Parser) {
	s.otherMu.Lock()
	defer s.otherMu.Unlock()
	for k, v := range p.Other {
		if s.other == nil {
			s.other = make(map[string]int)
		}
		s.other[k] += v
	}
	clear(p.Other)
}

// typeName shows an event_type in the summary: as it is, or quoted when
// it holds a control character (a line break would cut the diagnostic
// line in two).
func typeName(t string) string {
	if strings.ContainsFunc(t, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(t)
	}
	return t
}

// reportOther says how many eve.json records were not alerts, by type.
func (s *stage) reportOther() {
	s.otherMu.Lock()
	defer s.otherMu.Unlock()
	if len(s.other) == 0 {
		return
	}
	types := make([]string, 0, len(s.other))
	total := 0
	for k, v := range s.other {
		types = append(types, k)
		total += v
	}
	sort.Slice(types, func(i, j int) bool {
		if s.other[types[i]] != s.other[types[j]] {
			return s.other[types[i]] > s.other[types[j]]
		}
		return types[i] < types[j]
	})
	parts := make([]string, len(types))
	for i, k := range types {
		parts[i] = fmt.Sprintf("%s %d", typeName(k), s.other[k])
	}
	s.out.note("%d eve.json %s not alerts, skipped (%s)", total, plural(total, "record", "records"), strings.Join(parts, ", "))
}
