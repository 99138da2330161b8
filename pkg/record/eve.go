package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// EVEFields are the fields of one Suricata eve.json record that fastparse
// needs to turn an alert into an event, found in one pass over the raw
// line that also checks it is well-formed JSON. The rest of the record is
// not decoded: fastparse passes it on as Suricata wrote it.
//
// String fields hold the decoded text, nil when the key is absent or its
// value is not a string; they point into the line or into the EVEFields'
// own buffer and are valid until the next ScanEVE with the same EVEFields.
// A key written twice counts with its last value, as in every decoder
// downstream.
type EVEFields struct {
	Timestamp []byte
	EventType []byte
	Proto     []byte
	// SrcIP and DestIP are the addresses; SrcIPSpan and DestIPSpan the
	// byte range of their JSON strings (quotes included) in the line, so
	// that the text can be replaced.
	SrcIP, DestIP         []byte
	SrcIPSpan, DestIPSpan [2]int
	// Numbers: valid when the matching Has bit is set (an integer that
	// fits in int64).
	SrcPort, DestPort, ICMPType, ICMPCode, PcapCnt int64
	Has                                            EVEHas
	Packet                                         []byte // base64 of the packet, when logged

	// HasAlert is set when the record has an "alert" object; the fields
	// after it are the object's.
	HasAlert                    bool
	Action, Signature, Category []byte
	GID, SID, Rev, Severity     int64

	// HasFullLog and HasLocation say the record already has these keys
	// (it is an event fastparse wrote, read again).
	HasFullLog, HasLocation bool
	// NonASCII is set when a byte above 0x7f appears in the line: only
	// then can the record hold invalid UTF-8 (outside strings such a byte
	// is not well-formed JSON anyway).
	NonASCII bool
	// Plain is set when the line has no backslash, control character or
	// byte above 0x7f: every string in it is the same in JSON and decoded.
	Plain bool
	// End is the index of the closing brace of the record's object.
	End int

	scratch []byte
}

// EVEHas is a set of the numeric fields of EVEFields that are present.
type EVEHas uint16

// The numeric fields of EVEFields.
const (
	HasSrcPort EVEHas = 1 << iota
	HasDestPort
	HasICMPType
	HasICMPCode
	HasPcapCnt
	HasGID
	HasSID
	HasRev
	HasSeverity
)

// EVEError is what is wrong with a line that is not one JSON object.
type EVEError struct {
	Col int    // 1-based byte column where the problem was seen
	Msg string // what is wrong
}

func (e *EVEError) Error() string { return fmt.Sprintf("invalid JSON at column %d: %s", e.Col, e.Msg) }

// Whose fields an object's are.
const (
	eveOther = iota
	eveTop
	eveAlert
)

// eveMaxDepth bounds nesting: each level costs stack, and no record
// Suricata writes comes close.
const eveMaxDepth = 512

// ScanEVE checks that line is one JSON object (white space around it
// allowed) and fills f with the fields fastparse uses. A line that is not
// one well-formed JSON object gives an *EVEError.
func ScanEVE(line []byte, f *EVEFields) error { return scanEVE(line, f, true) }

// scanEVE is ScanEVE; fast false keeps to the careful scanner (for
// comparing the two in tests).
func scanEVE(line []byte, f *EVEFields, fast bool) error {
	scratch := f.scratch[:0]
	if cap(scratch) < len(line) {
		scratch = make([]byte, 0, len(line)+len(line)/4)
	}
	*f = EVEFields{scratch: scratch}
	plain, nonASCII := evePlain(line)
	if plain && fast {
		i := evePlainWS(line, 0)
		if i < len(line) && line[i] == '{' {
			if end := evePlainObject(line, i, 0, eveTop, f); end > 0 && evePlainWS(line, end) == len(line) {
				f.End = end - 1
				f.Plain = true
				return nil
			}
		}
		// not well-formed: the careful scanner says why
		*f = EVEFields{scratch: scratch}
	}
	s := eveScanner{b: line, f: f}
	f.NonASCII = nonASCII
	s.ws()
	if s.i >= len(s.b) {
		return s.fail("no record")
	}
	if s.b[s.i] != '{' {
		return s.fail("not a JSON object")
	}
	if !s.object(0, eveTop) {
		return s.err
	}
	f.End = s.i - 1
	s.ws()
	if s.i != len(s.b) {
		return s.fail("text after the record")
	}
	return nil
}

type eveScanner struct {
	b   []byte
	i   int
	f   *EVEFields
	err error
}

// evePlain reports whether b has neither a backslash nor a byte below
// 0x20, and whether it has a byte above 0x7f.
func evePlain(b []byte) (plain, nonASCII bool) {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	if bytes.IndexByte(b, '\\') >= 0 {
		plain = false
	} else {
		plain = true
	}
	// a byte below 0x20 leaves its high bit set in (x - 0x20...) & ^x
	var ctl, hi uint64
	for len(b) >= 32 {
		x0 := binary.LittleEndian.Uint64(b[0:8])
		x1 := binary.LittleEndian.Uint64(b[8:16])
		x2 := binary.LittleEndian.Uint64(b[16:24])
		x3 := binary.LittleEndian.Uint64(b[24:32])
		ctl |= (x0-ones*0x20)&^x0 | (x1-ones*0x20)&^x1 | (x2-ones*0x20)&^x2 | (x3-ones*0x20)&^x3
		hi |= x0 | x1 | x2 | x3
		b = b[32:]
	}
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b[0:8])
		ctl |= (x - ones*0x20) & ^x
		hi |= x
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			ctl |= high
		}
		hi |= uint64(c)
	}
	// ctl's high bits are exact only where no byte above 0x7f is: a line
	// with one takes the careful path
	return plain && (ctl|hi)&high == 0, hi&high != 0
}

func (s *eveScanner) fail(msg string) error {
	if s.err == nil {
		if s.i >= len(s.b) {
			msg = "record ends early (" + msg + ")"
		}
		s.err = &EVEError{Col: s.i + 1, Msg: msg}
	}
	return s.err
}

func (s *eveScanner) ws() {
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

// object scans the object at s.i ('{'); in says whose fields to pick out.
func (s *eveScanner) object(depth, in int) bool {
	if depth > eveMaxDepth {
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
		key, ok := s.str()
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
		switch in {
		case eveTop:
			ok = s.topField(key, depth)
		case eveAlert:
			ok = s.alertField(key, depth)
		default:
			ok = s.value(depth)
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

func (s *eveScanner) topField(key []byte, depth int) bool {
	f := s.f
	var str *[]byte
	var num *int64
	var bit EVEHas
	switch string(key) {
	case "timestamp":
		str = &f.Timestamp
	case "event_type":
		str = &f.EventType
	case "proto":
		str = &f.Proto
	case "packet":
		str = &f.Packet
	case "src_ip", "dest_ip":
		if s.i < len(s.b) && s.b[s.i] == '"' {
			start := s.i
			v, ok := s.str()
			if !ok {
				return false
			}
			if key[0] == 's' {
				f.SrcIP, f.SrcIPSpan = v, [2]int{start, s.i}
			} else {
				f.DestIP, f.DestIPSpan = v, [2]int{start, s.i}
			}
			return true
		}
	case "src_port":
		num, bit = &f.SrcPort, HasSrcPort
	case "dest_port":
		num, bit = &f.DestPort, HasDestPort
	case "icmp_type":
		num, bit = &f.ICMPType, HasICMPType
	case "icmp_code":
		num, bit = &f.ICMPCode, HasICMPCode
	case "pcap_cnt":
		num, bit = &f.PcapCnt, HasPcapCnt
	case "full_log":
		f.HasFullLog = true
	case "location":
		f.HasLocation = true
	case "alert":
		if s.i < len(s.b) && s.b[s.i] == '{' {
			f.HasAlert = true
			f.Action, f.Signature, f.Category = nil, nil, nil
			f.Has &^= HasGID | HasSID | HasRev | HasSeverity
			return s.object(depth+1, eveAlert)
		}
	}
	return s.field(str, num, bit, depth)
}

func (s *eveScanner) alertField(key []byte, depth int) bool {
	f := s.f
	var str *[]byte
	var num *int64
	var bit EVEHas
	switch string(key) {
	case "action":
		str = &f.Action
	case "signature":
		str = &f.Signature
	case "category":
		str = &f.Category
	case "gid":
		num, bit = &f.GID, HasGID
	case "signature_id":
		num, bit = &f.SID, HasSID
	case "rev":
		num, bit = &f.Rev, HasRev
	case "severity":
		num, bit = &f.Severity, HasSeverity
	}
	return s.field(str, num, bit, depth)
}

// field scans a value into str (if it is a string) or num (if it is an
// integer), or just scans it.
func (s *eveScanner) field(str *[]byte, num *int64, bit EVEHas, depth int) bool {
	if s.i >= len(s.b) {
		s.fail("expected a value")
		return false
	}
	c := s.b[s.i]
	switch {
	case str != nil && c == '"':
		v, ok := s.str()
		if ok {
			*str = v
		}
		return ok
	case str != nil:
		*str = nil
	case num != nil:
		s.f.Has &^= bit
		if c == '-' || c >= '0' && c <= '9' {
			start := s.i
			if !s.number() {
				return false
			}
			if v, ok := eveInt(s.b[start:s.i]); ok {
				*num = v
				s.f.Has |= bit
			}
			return true
		}
	}
	return s.value(depth)
}

// eveInt reads an integer (no fraction or exponent) that fits in int64.
func eveInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

func (s *eveScanner) value(depth int) bool {
	if s.i >= len(s.b) {
		s.fail("expected a value")
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, ok := s.skipStr()
		return ok
	case c == '{':
		return s.object(depth+1, eveOther)
	case c == '[':
		if depth+1 > eveMaxDepth {
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
			if !s.value(depth + 1) {
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
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == 0:
		s.fail("NUL byte")
		return false
	default:
		s.fail(fmt.Sprintf("unexpected %q", c))
		return false
	}
}

func (s *eveScanner) lit(w string) bool {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		s.fail("expected " + w)
		return false
	}
	s.i += len(w)
	return true
}

func (s *eveScanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *eveScanner) number() bool {
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

// eveSpecial returns a mask with the high bit set in (at least) the
// lowest of the eight bytes of x that ends or escapes a JSON string or is
// a control character, and in every byte above 0x7f; 0 if there is none.
func eveSpecial(x uint64) uint64 {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	less := (x - ones*0x20) & ^x & high
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return less | ((q - ones) & ^q & high) | ((bs - ones) & ^bs & high) | x&high
}

// skipStr scans the string at s.i ('"') and reports whether it has
// escapes.
func (s *eveScanner) skipStr() (escaped, ok bool) {
	s.i++
	for {
		for s.i+8 <= len(s.b) {
			if m := eveSpecial(binary.LittleEndian.Uint64(s.b[s.i:])); m != 0 {
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
			return escaped, true
		case c == '\\':
			escaped = true
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
				if _, ok := s.hex4(); !ok {
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
		default: // above 0x7f, or any byte of a short tail
			if c >= utf8.RuneSelf {
				s.f.NonASCII = true
			}
			s.i++
		}
	}
}

// str scans the string at s.i and returns its decoded text: a slice of
// the line when it has no escape, else of the scratch buffer (sized so
// that it never moves: decoded text is never longer than its JSON).
func (s *eveScanner) str() ([]byte, bool) {
	start := s.i
	escaped, ok := s.skipStr()
	if !ok {
		return nil, false
	}
	raw := s.b[start+1 : s.i-1]
	if !escaped {
		return raw, true
	}
	sc := s.f.scratch
	from := len(sc)
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			sc = append(sc, c)
			i++
			continue
		}
		e := raw[i+1]
		i += 2
		switch e {
		case 'b':
			sc = append(sc, '\b')
		case 'f':
			sc = append(sc, '\f')
		case 'n':
			sc = append(sc, '\n')
		case 'r':
			sc = append(sc, '\r')
		case 't':
			sc = append(sc, '\t')
		case 'u':
			r := hexRune(raw[i : i+4])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hexRune(raw[i+2 : i+6])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			sc = utf8.AppendRune(sc, r)
		default: // '"', '\\', '/'
			sc = append(sc, e)
		}
	}
	s.f.scratch = sc
	return sc[from:len(sc):len(sc)], true
}

func (s *eveScanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		s.i = len(s.b)
		s.fail("bad \\u escape")
		return 0, false
	}
	for _, c := range s.b[s.i : s.i+4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			s.fail("bad \\u escape")
			return 0, false
		}
	}
	r := hexRune(s.b[s.i : s.i+4])
	s.i += 4
	return r, true
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

// The plain scanner: for a line without backslashes, control characters
// or bytes above 0x7f (see evePlain), where a string is the bytes up to
// the next quote. Each function takes the index of a value's first byte
// and returns the index after it, or -1 if the text is not well-formed
// (the careful scanner then says why); it keeps the index in a register
// instead of the scanner. This is nearly every record Suricata writes.

func evePlainWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// evePlainStr takes the string whose opening quote is at b[i].
func evePlainStr(b []byte, i int) int {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	i++
	for end := i + 32; i+8 <= len(b) && i < end; i += 8 {
		y := binary.LittleEndian.Uint64(b[i:]) ^ (ones * '"')
		if m := (y - ones) & ^y & high; m != 0 {
			return i + bits.TrailingZeros64(m)/8 + 1
		}
	}
	k := bytes.IndexByte(b[i:], '"')
	if k < 0 {
		return -1
	}
	return i + k + 1
}

func evePlainNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	d := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == d || b[d] == '0' && i > d+1 {
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		d = i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d = i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return -1
		}
	}
	return i
}

func evePlainValue(b []byte, i, depth int) int {
	if depth > eveMaxDepth || i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return evePlainStr(b, i)
	case c == '{':
		return evePlainObject(b, i, depth, eveOther, nil)
	case c == '[':
		i = evePlainWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = evePlainValue(b, i, depth+1); i < 0 {
				return -1
			}
			if i = evePlainWS(b, i); i >= len(b) {
				return -1
			}
			if b[i] == ']' {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = evePlainWS(b, i+1)
		}
	case c == '-' || c >= '0' && c <= '9':
		return evePlainNumber(b, i)
	case c == 't':
		return evePlainLit(b, i, "true")
	case c == 'f':
		return evePlainLit(b, i, "false")
	case c == 'n':
		return evePlainLit(b, i, "null")
	}
	return -1
}

func evePlainLit(b []byte, i int, w string) int {
	if len(b)-i < len(w) || string(b[i:i+len(w)]) != w {
		return -1
	}
	return i + len(w)
}

// evePlainObject takes the object at b[i] ('{'); with f, it picks out the
// fields of the record (in eveTop) or of its alert (in eveAlert).
func evePlainObject(b []byte, i, depth, in int, f *EVEFields) int {
	if depth > eveMaxDepth {
		return -1
	}
	i = evePlainWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		ks := i + 1
		if i = evePlainStr(b, i); i < 0 {
			return -1
		}
		key := b[ks : i-1]
		if i = evePlainWS(b, i); i >= len(b) || b[i] != ':' {
			return -1
		}
		if i = evePlainWS(b, i+1); i >= len(b) {
			return -1
		}
		if f != nil {
			i = evePlainField(b, i, depth, in, key, f)
		} else {
			i = evePlainValue(b, i, depth+1)
		}
		if i < 0 {
			return -1
		}
		if i = evePlainWS(b, i); i >= len(b) {
			return -1
		}
		if b[i] == '}' {
			return i + 1
		}
		if b[i] != ',' {
			return -1
		}
		i = evePlainWS(b, i+1)
	}
}

// evePlainField takes the value of key at b[i] in the record (in eveTop)
// or its alert (eveAlert), picking it out if fastparse needs it.
func evePlainField(b []byte, i, depth, in int, key []byte, f *EVEFields) int {
	var str *[]byte
	var num *int64
	var bit EVEHas
	if in == eveTop {
		switch string(key) {
		case "timestamp":
			str = &f.Timestamp
		case "event_type":
			str = &f.EventType
		case "proto":
			str = &f.Proto
		case "packet":
			str = &f.Packet
		case "src_ip", "dest_ip":
			if b[i] == '"' {
				end := evePlainStr(b, i)
				if end < 0 {
					return -1
				}
				if key[0] == 's' {
					f.SrcIP, f.SrcIPSpan = b[i+1:end-1], [2]int{i, end}
				} else {
					f.DestIP, f.DestIPSpan = b[i+1:end-1], [2]int{i, end}
				}
				return end
			}
		case "src_port":
			num, bit = &f.SrcPort, HasSrcPort
		case "dest_port":
			num, bit = &f.DestPort, HasDestPort
		case "icmp_type":
			num, bit = &f.ICMPType, HasICMPType
		case "icmp_code":
			num, bit = &f.ICMPCode, HasICMPCode
		case "pcap_cnt":
			num, bit = &f.PcapCnt, HasPcapCnt
		case "full_log":
			f.HasFullLog = true
		case "location":
			f.HasLocation = true
		case "alert":
			if b[i] == '{' {
				f.HasAlert = true
				f.Action, f.Signature, f.Category = nil, nil, nil
				f.Has &^= HasGID | HasSID | HasRev | HasSeverity
				return evePlainObject(b, i, depth+1, eveAlert, f)
			}
		}
	} else {
		switch string(key) {
		case "action":
			str = &f.Action
		case "signature":
			str = &f.Signature
		case "category":
			str = &f.Category
		case "gid":
			num, bit = &f.GID, HasGID
		case "signature_id":
			num, bit = &f.SID, HasSID
		case "rev":
			num, bit = &f.Rev, HasRev
		case "severity":
			num, bit = &f.Severity, HasSeverity
		}
	}
	switch c := b[i]; {
	case str != nil && c == '"':
		end := evePlainStr(b, i)
		if end < 0 {
			return -1
		}
		*str = b[i+1 : end-1]
		return end
	case str != nil:
		*str = nil
	case num != nil:
		f.Has &^= bit
		if c == '-' || c >= '0' && c <= '9' {
			end := evePlainNumber(b, i)
			if end < 0 {
				return -1
			}
			if v, ok := eveInt(b[i:end]); ok {
				*num = v
				f.Has |= bit
			}
			return end
		}
	}
	return evePlainValue(b, i, depth+1)
}
