package record

import "errors"

// MailFields are the fields of an alert that notify's intake needs (which
// alerts to mail, how to group them), pulled from the raw line in one pass
// without decoding the rest: a full decode of every alert would cost more
// than everything else notify does with it.
type MailFields struct {
	ID string // top-level "id"
	// Timestamp is the top-level "timestamp" as it is in the line (nil if
	// absent or not a string without escapes); valid until line changes.
	Timestamp []byte
	HasRule   bool // a "rule" object is present
	Level     int  // rule.level
	Mail      int8 // rule.mail: 1 true, 0 false, -1 absent or null

	levelErr error
	scratch  []byte // keys with escapes, decoded (grown as needed: no field keeps them)
}

// mailMaxDepth bounds nesting (see scanner.max).
const mailMaxDepth = 1000

// ScanMailFields checks that line is one well-formed JSON object and
// fills f from it. It returns ErrNotObject for a line that does not start
// with '{' and a malformed-JSON error for malformed text, an "id" that is
// neither a string nor null, or a rule.mail that is not true, false or
// null.
//
// rule.level may be any JSON number with an integral value (10, 10.0, 1e1)
// or such a number in a string ("10": a jq step may have made it one);
// anything else in a well-formed line gives a *LevelError, never the
// malformed-JSON error.
func ScanMailFields(line []byte, f *MailFields) error {
	*f = MailFields{Mail: -1, scratch: f.scratch[:0]}
	i := plainWS(line, 0)
	free := escapeFree(line)
	if free && i < len(line) && line[i] == '{' {
		if end := plainObject(line, i, mailMaxDepth, top, f); end < 0 || plainWS(line, end) != len(line) {
			return errMailJSON
		}
		return f.levelErr
	}
	s := scanner[*MailFields]{b: line, p: f, buf: &f.scratch, max: mailMaxDepth}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return ErrNotObject
	}
	if !s.object(0, top) || !s.end() {
		return errMailJSON
	}
	return f.levelErr
}

// object picks the alert's "rule".
func (f *MailFields) object(in kind, key []byte) (kind, bool) {
	if in == top && string(key) == "rule" {
		f.HasRule = true
		return ruleKind, true
	}
	// an "id" must be a string or null
	return skip, in != top || string(key) != "id"
}

func (f *MailFields) value(in kind, key []byte, v val) bool {
	if in == ruleKind {
		return f.ruleField(key, v)
	}
	switch string(key) {
	case "id":
		switch {
		case string(v.raw) == "null":
			f.ID = ""
		case !v.isString():
			return false
		case v.esc:
			// as the full decode reads it
			var id string
			if Unmarshal(v.raw, &id) != nil {
				return false
			}
			f.ID = id
		default:
			f.ID = string(v.text(&f.scratch))
		}
	case "timestamp":
		if v.isString() && !v.esc {
			f.Timestamp = v.text(&f.scratch)
		}
	}
	return true
}

// ruleField takes rule.level and rule.mail.
func (f *MailFields) ruleField(key []byte, v val) bool {
	switch string(key) {
	case "level":
		if n, ok := smallInt(v.raw); ok && (v.raw[0] != '0' || len(v.raw) == 1) {
			f.Level, f.levelErr = int(n), nil // the common case: no allocation
		} else {
			f.Level, f.levelErr = ParseLevel(v.raw)
		}
	case "mail":
		switch string(v.raw) {
		case "true":
			f.Mail = 1
		case "false":
			f.Mail = 0
		case "null":
			f.Mail = -1
		default:
			return false
		}
	}
	return true
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
