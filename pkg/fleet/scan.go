package fleet

import "bytes"

// topFields are the top-level fields of a record that share looks at,
// found in one pass without decoding the rest: most of a record is text
// (full_log, signature) that share never needs.
type topFields struct {
	src      []byte // the raw text of a string src_ip (nil if absent)
	srcPlain bool   // src has no escapes
	level    int
	hasLevel bool
	fleet    bool
}

// scanTop scans an object. ok is false for text that is not a JSON object
// in the shapes it knows; the caller decides what that means (a record
// it cannot read is never published).
func scanTop(b []byte) (f topFields, ok bool) {
	i := ws(b, 0)
	if i >= len(b) || b[i] != '{' {
		return f, false
	}
	i = ws(b, i+1)
	if i < len(b) && b[i] == '}' {
		return f, ws(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return f, false
		}
		end, plain := str(b, i)
		if end < 0 {
			return f, false
		}
		key := b[i+1 : end-1]
		if !plain {
			key = nil // an escaped key is none of ours
		}
		i = ws(b, end)
		if i >= len(b) || b[i] != ':' {
			return f, false
		}
		i = ws(b, i+1)
		if i >= len(b) {
			return f, false
		}
		switch string(key) {
		case "src_ip":
			f.src = nil
			if b[i] == '"' {
				e, p := str(b, i)
				if e < 0 {
					return f, false
				}
				f.src, f.srcPlain, i = b[i+1:e-1], p, e
			} else if i = value(b, i, 0); i < 0 {
				return f, false
			}
		case "rule":
			f.hasLevel = false
			if b[i] == '{' {
				lv, has, e := ruleLevel(b, i)
				if e < 0 {
					return f, false
				}
				f.level, f.hasLevel, i = lv, has, e
			} else if i = value(b, i, 0); i < 0 {
				return f, false
			}
		case "fleet":
			f.fleet = true
			fallthrough
		default:
			if i = value(b, i, 0); i < 0 {
				return f, false
			}
		}
		i = ws(b, i)
		if i >= len(b) {
			return f, false
		}
		if b[i] == '}' {
			return f, ws(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return f, false
		}
		i = ws(b, i+1)
	}
}

// ruleLevel reads the rule object at b[i] and returns its integer level.
func ruleLevel(b []byte, i int) (level int, has bool, end int) {
	i = ws(b, i+1)
	if i < len(b) && b[i] == '}' {
		return 0, false, i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, false, -1
		}
		e, plain := str(b, i)
		if e < 0 {
			return 0, false, -1
		}
		key := b[i+1 : e-1]
		i = ws(b, e)
		if i >= len(b) || b[i] != ':' {
			return 0, false, -1
		}
		i = ws(b, i+1)
		if i >= len(b) {
			return 0, false, -1
		}
		v := i
		if i = value(b, i, 1); i < 0 {
			return 0, false, -1
		}
		if plain && string(key) == "level" {
			level, has = atoi(b[v:i])
		}
		i = ws(b, i)
		if i >= len(b) {
			return 0, false, -1
		}
		if b[i] == '}' {
			return level, has, i + 1
		}
		if b[i] != ',' {
			return 0, false, -1
		}
		i = ws(b, i+1)
	}
}

// atoi parses a JSON integer of at most 9 digits.
func atoi(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 9 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func ws(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// str returns the index after the string that starts at b[i] (a quote),
// or -1, and whether it has no backslash.
func str(b []byte, i int) (int, bool) {
	plain := true
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1, false
		}
		k += j
		if bytes.IndexByte(b[j:k], '\\') < 0 {
			return k + 1, plain
		}
		plain = false
		// Count the backslashes just before the quote.
		n := 0
		for m := k - 1; m > i && b[m] == '\\'; m-- {
			n++
		}
		if n%2 == 0 {
			return k + 1, false
		}
		j = k + 1
	}
}

const maxNest = 1000

// value returns the index after the JSON value at b[i], or -1. It skips
// strings, objects and arrays exactly and takes numbers and literals as
// the bytes up to the next delimiter (Valid checks them before a publish).
func value(b []byte, i, depth int) int {
	if depth > maxNest || i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		e, _ := str(b, i)
		return e
	case '{', '[':
		close := byte('}')
		if b[i] == '[' {
			close = ']'
		}
		i = ws(b, i+1)
		if i < len(b) && b[i] == close {
			return i + 1
		}
		for {
			if close == '}' {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				e, _ := str(b, i)
				if e < 0 {
					return -1
				}
				i = ws(b, e)
				if i >= len(b) || b[i] != ':' {
					return -1
				}
				i = ws(b, i+1)
			}
			if i = value(b, i, depth+1); i < 0 {
				return -1
			}
			i = ws(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == close {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = ws(b, i+1)
		}
	default:
		j := i
		for j < len(b) {
			c := b[j]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
				break
			}
			if c == '"' || c == '{' || c == '[' || c == ':' {
				return -1
			}
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}
