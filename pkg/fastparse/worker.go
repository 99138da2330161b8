package fastparse

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/eve"
	"github.com/quietwatch/quietwatch/pkg/fastlog"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// worker turns lines into encoded events and diagnostics. Every goroutine
// that parses has its own: the parser reuses its buffers.
type worker struct {
	p       fastlog.Parser
	eve     eve.Parser
	format  int // formatAuto until the first line that is not blank
	ev      record.Event
	strict  bool
	maxLine int
	// plainLocation says the location field needs no JSON escaping.
	plainLocation bool

	out     []byte // encoded events, each ending in a newline
	errs    []byte // diagnostics, one line each
	skipped int    // lines skipped
	msgs    []string
	m       *stageMetrics
}

// line parses one input line and appends its event(s) to out. Everything
// wrong with the line goes into one diagnostic. It reports whether
// --strict must stop here.
func (w *worker) line(text []byte, name string, num int64, torn bool) (fatal bool) {
	w.m.read.Inc()
	if w.format == formatAuto {
		w.format = decide(text)
	}
	if w.format == formatEVE {
		return w.eveLine(text, name, num, torn)
	}
	w.msgs = w.msgs[:0]
	lost, blank := false, false
	// A plain line (printable ASCII, no quote or backslash: nearly every
	// line) needs no checks and its event no escaping.
	plain := record.Verbatim(text) && w.plainLocation
	if !plain {
		if !utf8.Valid(text) {
			w.msgs = append(w.msgs, fmt.Sprintf("invalid UTF-8 at column %d replaced by U+FFFD", firstInvalid(text)+1))
		}
		if i := bytes.IndexByte(text, 0); i >= 0 && !blankLine(text) {
			w.msgs = append(w.msgs, fmt.Sprintf("NUL byte at column %d", i+1))
		}
	}
	// Parse the whole line first: a line without glued records is nearly
	// every line, and the parse says when there may be some.
	err := w.p.Parse(text, &w.ev)
	starts := oneStart[:]
	if err != nil || fastlog.MaybeGlued(&w.ev) {
		starts = w.p.Starts(text)
		if len(starts) > 1 {
			err = nil // parsed again below, from the last start
		}
	}
	for k, start := range starts {
		if k+1 < len(starts) {
			if n := starts[k+1] - start; text[start] >= '0' && text[start] <= '9' {
				w.msgs = append(w.msgs, fmt.Sprintf("record cut short after %d bytes at column %d, the next one glued to it: skipped", n, start+1))
			} else {
				w.msgs = append(w.msgs, fmt.Sprintf("%d bytes of garbage before the record at column %d: skipped", n, start+n+1))
			}
			lost = true
			continue
		}
		if k > 0 {
			err = w.p.Parse(text[start:], &w.ev)
		}
		pe, _ := err.(*fastlog.Error)
		switch {
		case err == nil && plain:
			w.out = w.ev.AppendJSONVerbatim(w.out)
			w.out = append(w.out, '\n')
			w.m.events.Inc()
			continue
		case err == nil:
			w.out = w.ev.AppendJSON(w.out)
			w.out = append(w.out, '\n')
			w.m.events.Inc()
			continue
		case errors.Is(err, fastlog.ErrBlank):
			blank = true
			if len(text) > 0 {
				err = fmt.Errorf("blank line (%d bytes of spaces, tabs or NULs)", len(text))
			}
		case pe != nil:
			lost = true
			pe.Col += start
		default:
			lost = true
		}
		msg := err.Error()
		if torn {
			msg += " (at the end of a rotated file, without newline)"
		}
		w.msgs = append(w.msgs, msg+": skipped")
	}
	if len(w.msgs) == 0 {
		return false
	}
	w.diag(name, num, strings.Join(w.msgs, "; "))
	if lost || blank {
		w.skipped++
		if lost {
			w.m.lost.Inc()
		} else {
			w.m.blank.Inc()
		}
	}
	return lost && w.strict // a blank line loses no alert: never fatal
}

// tooLong reports a line longer than --max-line.
func (w *worker) tooLong(name string, num int64) (fatal bool) {
	w.m.read.Inc()
	w.m.long.Inc()
	w.skipped++
	w.diag(name, num, fmt.Sprintf("line longer than --max-line (%d bytes): skipped", w.maxLine))
	return w.strict
}

// diag adds the diagnostic "fastparse: NAME:NUM: msg" to errs.
func (w *worker) diag(name string, num int64, msg string) {
	command.Diag{Prog: prog, W: (*appender)(&w.errs)}.Printf("%s:%d: %s", name, num, msg)
}

// appender is a Writer appending to the slice it points at.
type appender []byte

func (a *appender) Write(b []byte) (int, error) {
	*a = append(*a, b...)
	return len(b), nil
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return 0
}

var oneStart = [1]int{0}

func blankLine(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != 0 {
			return false
		}
	}
	return true
}
