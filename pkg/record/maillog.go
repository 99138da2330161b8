package record

import (
	"bytes"
	"errors"
	"strconv"
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
	Attempt   int      `json:"attempt,omitempty"`
	Error     string   `json:"error,omitempty"`
	File      string   `json:"file,omitempty"` // with "failed": where the message is kept
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
func ScanMailFields(line []byte, f *MailFields) error {
	*f = MailFields{Mail: -1}
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
					n, ok := s.int()
					f.Level = n
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
	return nil
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

// int reads an integer value.
func (s *mscan) int() (int, bool) {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	n, err := strconv.Atoi(string(s.b[start:s.i]))
	return n, err == nil
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
