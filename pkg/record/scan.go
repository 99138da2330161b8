package record

import (
	"fmt"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// One scanner checks a line of JSON and picks fields out of it in the
// same pass, without decoding the rest: correlate's events (ScanEvent),
// Suricata's eve.json records (ScanEVE) and notify's alerts
// (ScanMailFields). What each of them picks is its picker; the walk is
// the same. A line without escapes or control characters goes through
// the plain scanner (scan_plain.go), where a string ends at its next
// quote; any other line, and every line the plain scanner refuses when
// the caller wants to know why, through the careful one here.

// A kind says which fields of an object a picker wants: skip (none, the
// object is only checked), top (the line's own object), or another of
// the picker's kinds, chosen by its object method.
type kind uint8

const (
	skip kind = iota
	top
	alertKind // the "alert" object of a record
	ruleKind  // the "rule" object of an alert
)

// A picker takes the fields of the objects a scan walks through whose
// kind is not skip: *EventFields, *EVEFields, *MailFields.
type picker interface {
	// object is called when the value of key is an object, before it is
	// scanned: it returns the kind of that object, or false to refuse
	// the line.
	object(in kind, key []byte) (kind, bool)
	// value is called with every value once it is scanned (objects too,
	// after their fields); false refuses the line.
	value(in kind, key []byte, v val) bool
}

// val is one value a scan found, already checked.
//
// (Where raw starts in the line is cap(line) - cap(raw): raw is a slice
// of the line. A field for it would cost every call a register.)
type val struct {
	raw []byte // its JSON text (a string with its quotes), a slice of the line
	esc bool   // a string with escapes
}

func (v val) isString() bool { return v.raw[0] == '"' }

// text returns the decoded text of a string value: a slice of the line
// when it has no escapes, else of buf, which the picker sizes with
// scratchFor so that it never moves (decoded text is never longer than
// its JSON).
func (v val) text(buf *[]byte) []byte {
	if !v.esc {
		return v.raw[1 : len(v.raw)-1]
	}
	return v.unescape(buf)
}

func (v val) unescape(buf *[]byte) []byte {
	from := len(*buf)
	*buf = appendUnescaped(*buf, v.raw[1:len(v.raw)-1])
	return (*buf)[from:len(*buf):len(*buf)]
}

// scratchFor returns buf emptied, with room for the decoded strings of a
// line of n bytes.
func scratchFor(buf []byte, n int) []byte {
	if cap(buf) < n {
		return make([]byte, 0, n+n/4)
	}
	return buf[:0]
}

// scanner is the careful scanner: it takes any line, and says where and
// why one is not well-formed.
type scanner[P picker] struct {
	b   []byte
	i   int
	p   P
	buf *[]byte // decoded keys and strings
	// max bounds nesting: each level costs stack. An object or array
	// inside n others is at depth n.
	max int

	failed bool
	errCol int    // 1-based column of the first problem
	errMsg string // what it is
}

func (s *scanner[P]) fail(msg string) {
	if !s.failed {
		if s.i >= len(s.b) {
			msg = "record ends early (" + msg + ")"
		}
		s.failed, s.errCol, s.errMsg = true, s.i+1, msg
	}
}

func (s *scanner[P]) ws() {
	// every token starts above ' ': one test in the common case
	for s.i < len(s.b) && s.b[s.i] <= ' ' {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// end skips white space and reports whether the line ends there.
func (s *scanner[P]) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// object scans the object at s.i ('{'), handing the picker its fields
// unless in is skip.
func (s *scanner[P]) object(depth int, in kind) bool {
	if depth > s.max {
		s.fail("nested too deep")
		return false
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			s.fail("expected a key")
			return false
		}
		key, ok := s.key()
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			s.fail("expected ':' after a key")
			return false
		}
		s.i++
		s.ws()
		if in == skip {
			_, ok = s.value(depth, skip)
		} else {
			ok = s.field(depth, in, key)
		}
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			s.fail("expected ',' or '}'")
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			s.fail("expected ',' or '}'")
			return false
		}
	}
}

// key scans the key at s.i and returns its decoded text.
func (s *scanner[P]) key() ([]byte, bool) {
	start := s.i
	esc, ok := s.str()
	if !ok {
		return nil, false
	}
	return val{raw: s.b[start:s.i], esc: esc}.text(s.buf), true
}

// field scans the value of key in an object of kind in and hands it to
// the picker.
func (s *scanner[P]) field(depth int, in kind, key []byte) bool {
	start := s.i
	sub := skip
	if s.i < len(s.b) && s.b[s.i] == '{' {
		var ok bool
		if sub, ok = s.p.object(in, key); !ok {
			s.fail("unexpected object")
			return false
		}
	}
	esc, ok := s.value(depth, sub)
	if !ok {
		return false
	}
	if !s.p.value(in, key, val{raw: s.b[start:s.i], esc: esc}) {
		s.i = start
		s.fail("unexpected value")
		return false
	}
	return true
}

// value scans any value; an object is of kind in. For a string it
// reports whether it has escapes.
func (s *scanner[P]) value(depth int, in kind) (esc, ok bool) {
	if s.i >= len(s.b) {
		s.fail("expected a value")
		return false, false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.str()
	case c == '{':
		return false, s.object(depth+1, in)
	case c == '[':
		return false, s.array(depth + 1)
	case c == '-' || c >= '0' && c <= '9':
		return false, s.number()
	case c == 't':
		return false, s.lit("true")
	case c == 'f':
		return false, s.lit("false")
	case c == 'n':
		return false, s.lit("null")
	case c == 0:
		s.fail("NUL byte")
	default:
		s.fail(fmt.Sprintf("unexpected %q", c))
	}
	return false, false
}

// array scans the array at s.i ('['), which is at depth.
func (s *scanner[P]) array(depth int) bool {
	if depth > s.max {
		s.fail("nested too deep")
		return false
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return true
	}
	for {
		s.ws()
		if _, ok := s.value(depth, skip); !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			s.fail("expected ',' or ']'")
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			s.fail("expected ',' or ']'")
			return false
		}
	}
}

func (s *scanner[P]) lit(w string) bool {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		s.fail("expected " + w)
		return false
	}
	s.i += len(w)
	return true
}

func (s *scanner[P]) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner[P]) number() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		s.fail("bad number")
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			s.fail("bad number")
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			s.fail("bad number")
			return false
		}
	}
	return true
}

// str scans the string at s.i ('"') and reports whether it has escapes.
func (s *scanner[P]) str() (esc, ok bool) {
	s.i++
	for {
		for s.i+8 <= len(s.b) {
			if m := stringEndMask(load8(s.b[s.i:])); m != 0 {
				s.i += bits.TrailingZeros64(m) / 8
				break
			}
			s.i += 8
		}
		if s.i >= len(s.b) {
			s.fail("string not closed")
			return false, false
		}
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return esc, true
		case c == '\\':
			esc = true
			s.i++
			if s.i >= len(s.b) {
				s.fail("string not closed")
				return false, false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				if !s.hex4() {
					return false, false
				}
			default:
				s.fail("bad escape in a string")
				return false, false
			}
		case c < 0x20:
			if c == 0 {
				s.fail("NUL byte in a string")
			} else {
				s.fail("control character in a string")
			}
			return false, false
		default: // any byte of a short tail
			s.i++
		}
	}
}

func (s *scanner[P]) hex4() bool {
	if s.i+4 > len(s.b) {
		s.i = len(s.b)
		s.fail("bad \\u escape")
		return false
	}
	for _, c := range s.b[s.i : s.i+4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			s.fail("bad \\u escape")
			return false
		}
	}
	s.i += 4
	return true
}

// appendUnescaped appends the decoded text of s, the inside of a string
// the scanner checked, to dst. A \u escape of half a surrogate pair that
// is not followed by the other half is U+FFFD, as in encoding/json.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		e := s[i+1]
		i += 2
		switch e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hexRune(s[i : i+4])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2 = hexRune(s[i+2 : i+6])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
	}
	return dst
}

// hexRune reads four hex digits already checked.
func hexRune(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c <= '9':
			r |= rune(c - '0')
		case c >= 'a':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
