package record

import (
	"bytes"
	"math/bits"
)

// The plain scanner: for a line without escapes (see escapeFree), where
// a string is the bytes up to its next quote and is its own decoded text,
// and the only white space is ' '. That is nearly every line the stages
// see. Each function takes the index of a value's first byte and returns
// the index after it, or -1 if the text is not well-formed (the careful
// scanner says why, when the caller asks); it keeps the index in a
// register instead of a scanner. It accepts what the careful scanner
// accepts and hands the picker the same fields (FuzzScanEventPlain,
// FuzzScanEVE).

// escapeFree reports whether b has neither a backslash nor a byte below
// 0x20, so that the plain scanner takes it.
func escapeFree(b []byte) bool {
	if bytes.IndexByte(b, '\\') >= 0 {
		return false
	}
	// controlMask without its "& high" per word: one AND less each, and
	// only the high bits are looked at in the end
	var ctl uint64
	for len(b) >= 32 {
		x0, x1, x2, x3 := load8(b[0:8]), load8(b[8:16]), load8(b[16:24]), load8(b[24:32])
		ctl |= (x0-ones*0x20)&^x0 | (x1-ones*0x20)&^x1 | (x2-ones*0x20)&^x2 | (x3-ones*0x20)&^x3
		b = b[32:]
	}
	for len(b) >= 8 {
		x := load8(b[0:8])
		ctl |= (x - ones*0x20) &^ x
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			return false
		}
	}
	return ctl&high == 0
}

// escapeFreeASCII is escapeFree and whether b has no byte above 0x7f, in
// one pass (eve.json lines are long: a second pass shows).
func escapeFreeASCII(b []byte) (free, ascii bool) {
	if bytes.IndexByte(b, '\\') >= 0 {
		return false, isASCII(b)
	}
	var ctl, hi uint64
	for len(b) >= 32 {
		x0, x1, x2, x3 := load8(b[0:8]), load8(b[8:16]), load8(b[16:24]), load8(b[24:32])
		ctl |= (x0-ones*0x20)&^x0 | (x1-ones*0x20)&^x1 | (x2-ones*0x20)&^x2 | (x3-ones*0x20)&^x3
		hi |= x0 | x1 | x2 | x3
		b = b[32:]
	}
	for len(b) >= 8 {
		x := load8(b[0:8])
		ctl |= (x - ones*0x20) &^ x
		hi |= x
		b = b[8:]
	}
	for _, c := range b {
		hi |= uint64(c)
		if c < 0x20 {
			ctl |= high
		}
	}
	return ctl&high == 0, hi&high == 0
}

// isASCII reports whether b has no byte above 0x7f.
func isASCII(b []byte) bool {
	var hi uint64
	for len(b) >= 32 {
		hi |= load8(b[0:8]) | load8(b[8:16]) | load8(b[16:24]) | load8(b[24:32])
		b = b[32:]
	}
	for len(b) >= 8 {
		hi |= load8(b[0:8])
		b = b[8:]
	}
	for _, c := range b {
		hi |= uint64(c)
	}
	return hi&high == 0
}

func plainWS(b []byte, i int) int {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}

// plainString takes the string whose opening quote is at b[i].
func plainString(b []byte, i int) int {
	i++
	// most strings are short: eight bytes at a time, then IndexByte
	for end := i + 32; i+8 <= len(b) && i < end; i += 8 {
		if m := quoteMask(load8(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8 + 1
		}
	}
	n := bytes.IndexByte(b[i:], '"')
	if n < 0 {
		return -1
	}
	return i + n + 1
}

// plainObject takes the object at b[i] ('{'), handing p its fields
// unless in is skip. room is how many levels of objects and arrays may
// still nest inside it (scanner.max for the line's own object). (It is
// generic rather than taking the interface: the picker is then one word
// less to keep across every call.)
func plainObject[P picker](b []byte, i, room int, in kind, p P) int {
	if room < 0 {
		return -1
	}
	i = plainWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		ks := i + 1
		if i = plainString(b, i); i < 0 {
			return -1
		}
		key := b[ks : i-1]
		if i = plainWS(b, i); i >= len(b) || b[i] != ':' {
			return -1
		}
		i = plainWS(b, i+1)
		start := i
		switch {
		// strings and numbers, the most common values, without the
		// call through plainValue
		case i < len(b) && b[i] == '"':
			i = plainString(b, i)
		case i < len(b) && (b[i] == '-' || '0' <= b[i] && b[i] <= '9'):
			i = plainNumber(b, i)
		case in != skip && i < len(b) && b[i] == '{':
			sub, ok := p.object(in, key)
			if !ok {
				return -1
			}
			i = plainObject(b, i, room-1, sub, p)
		default:
			i = plainValue(b, i, room)
		}
		if i < 0 {
			return -1
		}
		if in != skip && !p.value(in, key, val{raw: b[start:i]}) {
			return -1
		}
		if i = plainWS(b, i); i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = plainWS(b, i+1)
		case '}':
			return i + 1
		default:
			return -1
		}
	}
}

// plainValue takes any value in an object or array that has room (see
// plainObject).
func plainValue(b []byte, i, room int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return plainString(b, i)
	case c == '{':
		return plainObject[picker](b, i, room-1, skip, nil)
	case c == '[':
		if room-1 < 0 {
			return -1
		}
		i = plainWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = plainValue(b, i, room-1); i < 0 {
				return -1
			}
			if i = plainWS(b, i); i >= len(b) {
				return -1
			}
			switch b[i] {
			case ']':
				return i + 1
			case ',':
				i = plainWS(b, i+1)
			default:
				return -1
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		return plainNumber(b, i)
	case c == 't':
		return plainLit(b, i, "true")
	case c == 'f':
		return plainLit(b, i, "false")
	case c == 'n':
		return plainLit(b, i, "null")
	}
	return -1
}

func plainLit(b []byte, i int, w string) int {
	if len(b)-i >= len(w) && string(b[i:i+len(w)]) == w {
		return i + len(w)
	}
	return -1
}

func plainDigits(b []byte, i int) (int, bool) {
	start := i
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i, i > start
}

func plainNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	ok := true
	if i < len(b) && b[i] == '0' {
		i++
	} else if i, ok = plainDigits(b, i); !ok {
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i, ok = plainDigits(b, i+1); !ok {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, ok = plainDigits(b, i); !ok {
			return -1
		}
	}
	return i
}
