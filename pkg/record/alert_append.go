package record

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// EventFields are the fields of an event that correlate's rules look at,
// pulled from the raw line in one pass without decoding the rest (a full
// decode costs more than all the rule matching). String fields hold the
// decoded text and are nil when the key is absent or not a string; they
// point into the line or into the EventFields' own buffer and are valid
// until the next ScanEvent with the same EventFields.
type EventFields struct {
	Timestamp []byte
	SrcIP     []byte
	DestIP    []byte
	FullLog   []byte
	// HasAlert is set when the record has an "alert" object.
	HasAlert bool
	// GID, SID and Rev are alert.gid, alert.signature_id and alert.rev;
	// HasSig is set when all three are integers.
	GID, SID, Rev int64
	HasSig        bool
	// Own names the first top-level key of correlate's own output
	// ("rule", "id", "previous_output" or "src_prefix") found in the
	// record, "" if none.
	Own string
	// HasHostname is set when the record has a top-level "hostname".
	HasHostname bool

	scratch                []byte
	hasGID, hasSID, hasRev bool
}

// ErrBadJSON is returned by ScanEvent for a line that is not well-formed JSON.
var ErrBadJSON = errors.New("malformed JSON")

const maxDepth = 1000

// ScanEvent checks that line is one well-formed JSON object and fills f
// with the fields correlate needs. It returns ErrNotObject for other JSON
// values and ErrBadJSON for malformed text.
func ScanEvent(line []byte, f *EventFields) error {
	return scanEvent(line, f, true)
}

// scanEvent is ScanEvent; fast false keeps to the general scanner (for
// comparing the two in tests).
func scanEvent(line []byte, f *EventFields, fast bool) error {
	scratch := f.scratch[:0]
	if cap(scratch) < len(line) {
		scratch = make([]byte, 0, len(line)+len(line)/2)
	}
	*f = EventFields{scratch: scratch}
	s := scanner{b: line, f: f, plain: fast && plain(line)}
	s.ws()
	if s.i >= len(s.b) {
		return ErrNotObject
	}
	if s.b[s.i] != '{' {
		if s.value(0) && s.end() {
			return ErrNotObject
		}
		return ErrBadJSON
	}
	if s.plain {
		i := plainObject(line, s.i, 0, inTop, f)
		for i >= 0 && i < len(line) && line[i] == ' ' {
			i++
		}
		if i != len(line) {
			return ErrBadJSON
		}
	} else if !s.object(0, s.topField) || !s.end() {
		return ErrBadJSON
	}
	f.HasSig = f.hasGID && f.hasSID && f.hasRev
	return nil
}

// The plain scanner: for a line without backslashes or control characters
// (see plain), where a string is the bytes up to the next quote and the
// only white space is ' '. Each function takes the index of a value's
// first byte and returns the index after it, or -1 if the text is not
// well-formed; it keeps the index in a register instead of the scanner.

// Where an object is, for picking out fields.
const (
	inOther = iota
	inTop
	inAlert
)

func plainWS(b []byte, i int) int {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}

// plainString takes the string whose opening quote is at b[i]; it returns
// the index after the closing quote, or -1.
func plainString(b []byte, i int) int {
	i++
	// most strings are short: eight bytes at a time (the lowest set bit
	// of the mask is exact), then IndexByte
	for end := i + 32; i+8 <= len(b) && i < end; i += 8 {
		y := binary.LittleEndian.Uint64(b[i:]) ^ (ones * '"')
		if m := (y - ones) & ^y & high; m != 0 {
			return i + bits.TrailingZeros64(m)/8 + 1
		}
	}
	n := bytes.IndexByte(b[i:], '"')
	if n < 0 {
		return -1
	}
	return i + n + 1
}

func plainValue(b []byte, i, depth int) int {
	if depth > maxDepth || i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return plainString(b, i)
	case c == '{':
		return plainObject(b, i, depth, inOther, nil)
	case c == '[':
		i = plainWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = plainValue(b, plainWS(b, i), depth+1); i < 0 {
				return -1
			}
			i = plainWS(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case ']':
				return i + 1
			case ',':
				i++
			default:
				return -1
			}
		}
	case c == 't':
		return plainLit(b, i, "true")
	case c == 'f':
		return plainLit(b, i, "false")
	case c == 'n':
		return plainLit(b, i, "null")
	case c == '-' || '0' <= c && c <= '9':
		return plainNumber(b, i)
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

// plainObject takes the object at b[i] ('{'), picking out the fields of
// the record (in inTop) and of its alert (in inAlert) into f.
func plainObject(b []byte, i, depth, in int, f *EventFields) int {
	if depth > maxDepth {
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
		i = plainWS(b, i)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		i = plainWS(b, i+1)
		start := i
		switch in {
		case inTop:
			i = plainTopField(b, i, depth+1, key, f)
		case inAlert:
			i = plainValue(b, i, depth+1)
			if i >= 0 {
				f.alertField(key, b[start:i])
			}
		default:
			i = plainValue(b, i, depth+1)
		}
		if i < 0 {
			return -1
		}
		i = plainWS(b, i)
		if i >= len(b) {
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

func plainTopField(b []byte, i, depth int, key []byte, f *EventFields) int {
	var dst *[]byte
	switch string(key) {
	case "timestamp":
		dst = &f.Timestamp
	case "src_ip":
		dst = &f.SrcIP
	case "dest_ip":
		dst = &f.DestIP
	case "full_log":
		dst = &f.FullLog
	case "alert":
		if i < len(b) && b[i] == '{' {
			f.HasAlert = true
			return plainObject(b, i, depth, inAlert, f)
		}
	case "rule", "id", "previous_output", "src_prefix":
		f.own(key)
	case "hostname":
		f.HasHostname = true
	}
	if dst != nil && i < len(b) && b[i] == '"' {
		end := plainString(b, i)
		if end >= 0 {
			*dst = b[i+1 : end-1]
		}
		return end
	}
	return plainValue(b, i, depth)
}

// own notes correlate's own key (the first one found).
func (f *EventFields) own(key []byte) {
	if f.Own == "" {
		switch string(key) {
		case "rule":
			f.Own = "rule"
		case "id":
			f.Own = "id"
		case "src_prefix":
			f.Own = "src_prefix"
		default:
			f.Own = "previous_output"
		}
	}
}

// alertField notes the alert's gid, signature_id and rev (val is the raw
// value, already checked).
func (f *EventFields) alertField(key, val []byte) {
	var dst *int64
	var has *bool
	switch string(key) {
	case "gid":
		dst, has = &f.GID, &f.hasGID
	case "signature_id":
		dst, has = &f.SID, &f.hasSID
	case "rev":
		dst, has = &f.Rev, &f.hasRev
	default:
		return
	}
	if n, ok := smallInt(val); ok {
		*dst, *has = n, true
	}
}

type scanner struct {
	b []byte
	i int
	f *EventFields
	// plain: the line has no backslash and no control character: the
	// plain scanner (plainObject) takes it
	plain bool
}

// plain reports whether b has neither a backslash nor a byte below 0x20.
func plain(b []byte) bool {
	if bytes.IndexByte(b, '\\') >= 0 {
		return false
	}
	// a byte below 0x20 leaves its high bit set in (x - 0x20...) & ^x; the
	// test is exact for whether there is one (borrows only come from one)
	var acc uint64
	for len(b) >= 32 {
		x0 := binary.LittleEndian.Uint64(b[0:8])
		x1 := binary.LittleEndian.Uint64(b[8:16])
		x2 := binary.LittleEndian.Uint64(b[16:24])
		x3 := binary.LittleEndian.Uint64(b[24:32])
		acc |= (x0-ones*0x20)&^x0 | (x1-ones*0x20)&^x1 | (x2-ones*0x20)&^x2 | (x3-ones*0x20)&^x3
		b = b[32:]
	}
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b[0:8])
		acc |= (x - ones*0x20) & ^x
		b = b[8:]
	}
	if acc&high != 0 {
		return false
	}
	for _, c := range b {
		if c < 0x20 {
			return false
		}
	}
	return true
}

func (s *scanner) ws() {
	// every JSON token starts above ' ', white space is at most ' '
	for s.i < len(s.b) && s.b[s.i] <= ' ' {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// object parses an object at s.i, calling field for each key with the
// scanner positioned at the value; field must consume the value.
func (s *scanner) object(depth int, field func(key []byte, depth int) bool) bool {
	if depth > maxDepth {
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
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if !field(key, depth+1) {
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

func (s *scanner) topField(key []byte, depth int) bool {
	f := s.f
	var dst *[]byte
	switch string(key) {
	case "timestamp":
		dst = &f.Timestamp
	case "src_ip":
		dst = &f.SrcIP
	case "dest_ip":
		dst = &f.DestIP
	case "full_log":
		dst = &f.FullLog
	case "alert":
		if s.i < len(s.b) && s.b[s.i] == '{' {
			f.HasAlert = true
			return s.object(depth, s.alertField)
		}
	case "rule", "id", "previous_output", "src_prefix":
		f.own(key)
	case "hostname":
		f.HasHostname = true
	}
	if dst != nil && s.i < len(s.b) && s.b[s.i] == '"' {
		v, ok := s.str()
		if ok {
			*dst = v
		}
		return ok
	}
	return s.value(depth)
}

func (s *scanner) alertField(key []byte, depth int) bool {
	var dst *int64
	var has *bool
	switch string(key) {
	case "gid":
		dst, has = &s.f.GID, &s.f.hasGID
	case "signature_id":
		dst, has = &s.f.SID, &s.f.hasSID
	case "rev":
		dst, has = &s.f.Rev, &s.f.hasRev
	default:
		return s.value(depth)
	}
	start := s.i
	if !s.value(depth) {
		return false
	}
	if n, ok := smallInt(s.b[start:s.i]); ok {
		*dst, *has = n, true
	}
	return true
}

// smallInt reads a JSON number that is a non-negative integer of at most
// 18 digits (signature ids are).
func smallInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// value skips any JSON value, checking its syntax.
func (s *scanner) value(depth int) bool {
	if depth > maxDepth || s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth, func(_ []byte, d int) bool { return s.value(d) })
	case c == '[':
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
	case c == '"':
		_, ok := s.str()
		return ok
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return false
}

func (s *scanner) lit(w string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(w)) {
		s.i += len(w)
		return true
	}
	return false
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) number() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

// str parses a string at s.i and returns its decoded contents: a slice of
// the line when there is no escape, else of the scratch buffer (sized so
// that it never reallocates).
func (s *scanner) str() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	s.i++
	start := s.i
	for {
		// eight bytes at a time up to the first special one; the lowest
		// set bit of the mask is exact (borrows only carry upwards)
		for s.i+8 <= len(s.b) {
			if m := special(binary.LittleEndian.Uint64(s.b[s.i:])); m != 0 {
				s.i += bits.TrailingZeros64(m) / 8
				break
			}
			s.i += 8
		}
		if s.i >= len(s.b) {
			return nil, false
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, true
		case c == '\\':
			return s.slowStr(start)
		case c < 0x20:
			return nil, false
		}
		s.i++
	}
}

const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

// special returns a mask with the high bit set in (at least) the lowest
// of the eight bytes of x that ends or escapes a JSON string or is a
// control character: < 0x20, '"' or '\\'; 0 if there is none.
func special(x uint64) uint64 {
	less := (x - ones*0x20) & ^x & high
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return less | ((q - ones) & ^q & high) | ((bs - ones) & ^bs & high)
}

func (s *scanner) slowStr(start int) ([]byte, bool) {
	sc := s.f.scratch
	from := len(sc)
	sc = append(sc, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			s.f.scratch = sc
			return sc[from:len(sc):len(sc)], true
		case c < 0x20:
			return nil, false
		case c != '\\':
			sc = append(sc, c)
			s.i++
			continue
		}
		s.i++
		if s.i >= len(s.b) {
			return nil, false
		}
		e := s.b[s.i]
		s.i++
		switch e {
		case '"', '\\', '/':
			sc = append(sc, e)
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
			r, ok := s.hex4()
			if !ok {
				return nil, false
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					save := s.i
					s.i += 2
					if r2, ok = s.hex4(); !ok {
						return nil, false
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
					} else {
						s.i = save
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			sc = utf8.AppendRune(sc, r)
		default:
			return nil, false
		}
	}
	return nil, false
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// AppendCompact appends the compact form of the JSON text obj (no
// insignificant white space) to dst: the text correlate matches rules
// against for a record without full_log.
func AppendCompact(dst, obj []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, obj); err != nil {
		return append(dst, obj...)
	}
	return append(dst, b.Bytes()...)
}

// AppendAlert appends to dst the alert for event: the event's bytes up to
// its closing brace, unchanged, then "rule" (r, in record.Rule's field
// order), "id" ("<sec>.<seq>"), "previous_output" when prev is not empty,
// and "hostname" when host is not empty. event must be a JSON object
// (ScanEvent said so).
func AppendAlert(dst, event []byte, r *Rule, sec int64, seq uint64, prev [][]byte, host string) ([]byte, error) {
	return EncodeRule(r).AppendAlert(dst, event, r.FiredTimes, sec, seq, prev, host)
}

// EncodedRule is a Rule encoded once, all but its firedtimes, for writing
// many alerts of the same rule.
type EncodedRule struct {
	head []byte // from '{' up to the field before firedtimes
	tail []byte // the fields after firedtimes and '}'
}

// EncodeRule encodes r (its FiredTimes is supplied per alert).
func EncodeRule(r *Rule) *EncodedRule {
	e := &EncodedRule{}
	e.head = append(e.head, `{"id":`...)
	e.head = AppendString(e.head, r.ID)
	e.head = append(e.head, `,"level":`...)
	e.head = strconv.AppendInt(e.head, int64(r.Level), 10)
	e.head = append(e.head, `,"description":`...)
	e.head = AppendString(e.head, r.Description)
	if len(r.Groups) > 0 {
		e.head = append(e.head, `,"groups":[`...)
		for i, g := range r.Groups {
			if i > 0 {
				e.head = append(e.head, ',')
			}
			e.head = AppendString(e.head, g)
		}
		e.head = append(e.head, ']')
	}
	if r.Frequency != 0 {
		e.head = append(e.head, `,"frequency":`...)
		e.head = strconv.AppendInt(e.head, int64(r.Frequency), 10)
	}
	if r.Timeframe != 0 {
		e.head = append(e.head, `,"timeframe":`...)
		e.head = strconv.AppendInt(e.head, int64(r.Timeframe), 10)
	}
	if r.Mail != nil {
		if *r.Mail {
			e.tail = append(e.tail, `,"mail":true`...)
		} else {
			e.tail = append(e.tail, `,"mail":false`...)
		}
	}
	e.tail = append(e.tail, '}')
	return e
}

func (e *EncodedRule) appendRule(dst []byte, firedTimes int) []byte {
	dst = append(dst, e.head...)
	if firedTimes != 0 {
		dst = append(dst, `,"firedtimes":`...)
		dst = strconv.AppendInt(dst, int64(firedTimes), 10)
	}
	return append(dst, e.tail...)
}

// AppendAlert is AppendAlert for the encoded rule with the given
// firedtimes.
func (e *EncodedRule) AppendAlert(dst, event []byte, firedTimes int, sec int64, seq uint64, prev [][]byte, host string) ([]byte, error) {
	n := len(dst)
	dst = append(dst, event...)
	// a placeholder value keeps AppendField's checks; it is cut off below
	out, err := AppendField(dst[n:], "rule", []byte("0"))
	if err != nil {
		return dst[:n], err
	}
	dst = append(dst[:n], out[:len(out)-2]...)
	dst = e.appendRule(dst, firedTimes)
	dst = append(dst, `,"id":"`...)
	dst = strconv.AppendInt(dst, sec, 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, '"')
	if len(prev) > 0 {
		dst = append(dst, `,"previous_output":[`...)
		for i, p := range prev {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, p)
		}
		dst = append(dst, ']')
	}
	if host != "" {
		dst = append(dst, `,"hostname":`...)
		dst = AppendString(dst, host)
	}
	return append(dst, '}'), nil
}
