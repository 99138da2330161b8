package record

import (
	"bytes"
	"errors"
)

// MailLog is the record notify writes on stdout for each message it hands
// to the MTA, each failed attempt, and each group of alerts the hourly limit
// holds back.
type MailLog struct {
	Timestamp string   `json:"timestamp"`
	Mail      MailInfo `json:"mail"`
}

// MailInfo is the mail object of a MailLog.
//
// Status is one of:
//   - "sent": the MTA accepted the message.
//   - "retry": handing it over failed (Error says why); it stays in the
//     spool and is tried again after a backoff.
//   - "queued": the hourly limit held these alerts back; they go out in a
//     digest when the limit allows (Subject is the one they would have had).
//   - "pending": at exit the message is still in the spool, not accepted;
//     the next run sends it.
//   - "failed": the MTA refused the message for good (an SMTP 5xx, a
//     sendmail exit status such as EX_NOUSER) several times in a row (Error
//     says why); it was moved to the spool's failed/ directory (File), is
//     not sent again, and the messages behind it go on.
//
// Queued is the number of alerts held back by the hourly limit after this
// record.
type MailInfo struct {
	Status    string   `json:"status"`
	To        []string `json:"to"`
	Subject   string   `json:"subject"`
	Alerts    []string `json:"alerts"`
	Queued    int      `json:"queued"`
	Omitted   int      `json:"omitted,omitempty"` // alerts in the message beyond its size cap: counted, not listed
	MessageID string   `json:"message_id,omitempty"`
	Digest    bool     `json:"digest,omitempty"`
	Part      int      `json:"part,omitempty"`  // the message is part Part of Parts of one notification too large for one message
	Parts     int      `json:"parts,omitempty"` // (both absent when it is the notification's only message)
	Attempt   int      `json:"attempt,omitempty"`
	Error     string   `json:"error,omitempty"`
	File      string   `json:"file,omitempty"` // with "failed": where the message is kept
	Via       string   `json:"via,omitempty"`  // the transport, when not mail: "webhook https://host"
}

// AppendMailLog appends r as one JSON line (without the newline) to dst.
func AppendMailLog(dst []byte, r *MailLog) ([]byte, error) {
	b, err := Marshal(r)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// MailFields are the fields of an alert that notify's intake needs (which
// alerts to mail, how to group them), pulled from the raw line in one pass
// without decoding the rest: a full decode of every alert would cost more
// than everything else notify does with it.
type MailFields struct {
	ID string // top-level "id"
	// Timestamp is the top-level "timestamp" as it is in the line (nil if
	// absent or not a plain string); valid until line changes.
	Timestamp []byte
	HasRule   bool // a "rule" object is present
	Level     int  // rule.level
	Mail      int8 // rule.mail: 1 true, 0 false, -1 absent or null
}

// ScanMailFields fills f from line, one JSON object. It checks the
// structure it walks through (strings, nesting, separators) but is not a
// validator: a line it accepts may still hold, say, a malformed number in
// a field it skips (the full decode, later, reports that).
//
// rule.level may be any JSON number with an integral value (10, 10.0, 1e1)
// or such a number in a string ("10": a jq step may have made it one);
// anything else in a well-formed line gives a *LevelError, never the
// malformed-JSON error.
func ScanMailFields(line []byte, f *MailFields) error {
	*f = MailFields{Mail: -1}
	var levelErr error
	s := mscan{b: line}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return ErrNotObject
	}
	ok := s.object(0, func(key []byte) bool {
		switch string(key) {
		case "id":
			v, ok := s.string()
			f.ID = v
			return ok
		case "timestamp":
			if s.i < len(s.b) && s.b[s.i] == '"' {
				raw, esc, ok := s.rawString()
				if !esc {
					f.Timestamp = raw
				}
				return ok
			}
			return s.skip(1)
		case "rule":
			if s.i >= len(s.b) || s.b[s.i] != '{' {
				return s.skip(1)
			}
			f.HasRule = true
			return s.object(1, func(key []byte) bool {
				switch string(key) {
				case "level":
					n, ok, lerr := s.level()
					f.Level, levelErr = n, lerr
					return ok
				case "mail":
					switch {
					case s.lit("true"):
						f.Mail = 1
					case s.lit("false"):
						f.Mail = 0
					case s.lit("null"):
						f.Mail = -1
					default:
						return false
					}
					return true
				}
				return s.skip(2)
			})
		}
		return s.skip(1)
	})
	s.ws()
	if !ok || s.i != len(s.b) {
		return errMailJSON
	}
	return levelErr
}

// LevelError is ScanMailFields' error for a rule.level that is not an
// integer, in a line that is otherwise well-formed.
type LevelError struct {
	Value  string // the value as written (cut if long)
	Reason string // "is not an integer", "is out of range"
}

func (e *LevelError) Error() string { return "rule.level " + e.Reason + ": " + e.Value }

// ParseLevel returns the integer a rule.level value stands for: raw is
// one JSON value, a number with an integral value (10, 10.0, 1e1, -0) or
// a string holding one ("10"). Anything else gives a *LevelError.
func ParseLevel(raw []byte) (int, error) {
	num := raw
	if len(num) >= 2 && num[0] == '"' && num[len(num)-1] == '"' {
		num = num[1 : len(num)-1]
	}
	n, res := integral(num)
	switch res {
	case intOK:
		return n, nil
	case intRange:
		return 0, &LevelError{Value: shown(raw), Reason: "is out of range"}
	}
	return 0, &LevelError{Value: shown(raw), Reason: "is not an integer"}
}

// shown makes a value from input fit a one-line diagnostic.
func shown(raw []byte) string {
	const max = 40
	cut := len(raw) > max
	if cut {
		raw = raw[:max]
	}
	b := make([]byte, 0, len(raw)+3)
	for _, c := range raw {
		if c < 0x20 || c >= 0x7f {
			c = '?'
		}
		b = append(b, c)
	}
	if cut {
		b = append(b, "..."...)
	}
	return string(b)
}

const (
	intOK = iota
	intNotInteger
	intRange
)

// maxLevelDigits bounds the integers ParseLevel accepts (well inside int64).
const maxLevelDigits = 18

// integral parses b, a JSON number (RFC 8259 grammar, nothing around it),
// and returns its value if it is an integer. The arithmetic is exact
// (decimal digits and an exponent), so 10.0 and 1e1 are 10 while
// 10.000000000000000001 is not an integer.
func integral(b []byte) (int, int) {
	i := 0
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	start := i
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, intNotInteger
	}
	digits := append([]byte(nil), b[start:i]...)
	exp := 0
	if i < len(b) && b[i] == '.' {
		i++
		fs := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == fs {
			return 0, intNotInteger
		}
		digits = append(digits, b[fs:i]...)
		exp = -(i - fs)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		es := i
		e := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if e < 1e6 { // far beyond any digits we keep: saturate
				e = e*10 + int(b[i]-'0')
			}
			i++
		}
		if i == es {
			return 0, intNotInteger
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i != len(b) {
		return 0, intNotInteger
	}
	// value = digits × 10^exp
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:]
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' && exp < 0 {
		digits = digits[:len(digits)-1]
		exp++
	}
	if len(digits) == 0 || (len(digits) == 1 && digits[0] == '0') {
		return 0, intOK // zero, whatever its exponent
	}
	if exp < 0 {
		return 0, intNotInteger
	}
	if len(digits)+exp > maxLevelDigits {
		return 0, intRange
	}
	n := 0
	for _, c := range digits {
		n = n*10 + int(c-'0')
	}
	for range exp {
		n *= 10
	}
	if neg {
		n = -n
	}
	return n, intOK
}

// errMailJSON is ScanMailFields' error for malformed text.
var errMailJSON = errors.New("malformed JSON")

// mailMaxDepth bounds nesting, so a hostile line cannot exhaust the stack.
const mailMaxDepth = 1000

type mscan struct {
	b []byte
	i int
}

func (s *mscan) ws() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// object walks an object at s.i, calling field with s at each value.
func (s *mscan) object(depth int, field func(key []byte) bool) bool {
	if depth > mailMaxDepth {
		return false
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		key, esc, ok := s.rawString()
		if !ok {
			return false
		}
		if esc {
			key = nil // no key we look for needs escapes
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if !field(key) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// rawString returns the bytes between the quotes of the string at s.i and
// whether they hold escapes.
func (s *mscan) rawString() ([]byte, bool, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, false
	}
	start := s.i + 1
	esc := false
	// A plain loop: most strings are short, where IndexByte's call costs
	// more than it saves.
	for j := start; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			esc = true
			j++ // the escaped byte, whatever it is
		case '"':
			s.i = j + 1
			return s.b[start:j], esc, true
		}
	}
	return nil, false, false
}

// string reads a string value (null gives "").
func (s *mscan) string() (string, bool) {
	if s.lit("null") {
		return "", true
	}
	start := s.i
	raw, esc, ok := s.rawString()
	if !ok {
		return "", false
	}
	if !esc {
		return string(raw), true
	}
	var v string
	if err := Unmarshal(s.b[start:s.i], &v); err != nil {
		return "", false
	}
	return v, true
}

// level reads rule.level: its value, whether the text was well-formed
// there, and the error if the value is not an integer.
func (s *mscan) level() (int, bool, error) {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		// The common case, a small plain integer: no allocation.
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' && s.i-start < maxLevelDigits {
			n = n*10 + int(s.b[s.i]-'0')
			s.i++
		}
		if s.i < len(s.b) && !numByte(s.b[s.i]) && (s.b[start] != '0' || s.i-start == 1) {
			return n, true, nil
		}
		s.i = start
	}
	if !s.skip(2) {
		return 0, false, nil
	}
	n, err := ParseLevel(s.b[start:s.i])
	return n, true, err
}

func (s *mscan) lit(w string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(w)) {
		s.i += len(w)
		return true
	}
	return false
}

// skip passes over any value.
func (s *mscan) skip(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, ok := s.rawString()
		return ok
	case c == '{':
		return s.object(depth, func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		if depth > mailMaxDepth {
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
			if !s.skip(depth + 1) {
				return false
			}
			s.ws()
			if s.i >= len(s.b) {
				return false
			}
			if s.b[s.i] == ']' {
				s.i++
				return true
			}
			if s.b[s.i] != ',' {
				return false
			}
			s.i++
		}
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		start := s.i
		for s.i < len(s.b) && numByte(s.b[s.i]) {
			s.i++
		}
		return s.i > start
	}
	return false
}

func numByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}
