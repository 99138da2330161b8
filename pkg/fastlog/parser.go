// Package fastlog parses fast.log alert lines, as Suricata (every released
// version), Snort 2 and Snort 3 write them, into events with Suricata EVE
// field names (record.Event).
//
// A line is split from the right: the address tuple, the priority and the
// classification are taken off its end, so a message may contain brackets,
// "[**]" or even a whole fake tail. A line that holds the start of another
// record (Suricata cuts alerts at 2047 bytes and the next one is glued to
// the cut one) is split on the embedded timestamp by Starts.
package fastlog

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// Parser turns fast.log records into events. Set its fields before the
// first Parse; the zero value reads times in the local zone and infers the
// year of year-less Snort lines from the clock.
//
// A Parser reuses its buffers: the strings and pointers of an event it
// fills stay valid until its next Parse. Copy what you keep.
type Parser struct {
	Zone     *time.Location   // the sensor's zone; nil means time.Local
	Year     int              // year for year-less Snort lines; 0 infers it from Now
	Now      func() time.Time // clock for that inference; nil means time.Now
	Location string           // the events' location field

	arena  []byte
	ints   [5]int // src_port, dest_port, icmp_type, icmp_code, severity
	alert  record.EventAlert
	zone   zoneCache
	starts []int
}

// Error is why a record could not be parsed.
type Error struct {
	Col int    // 1-based byte column where the problem was found
	Msg string // what is wrong
}

func (e *Error) Error() string { return fmt.Sprintf("%s (column %d)", e.Msg, e.Col) }

// ErrBlank is returned for an empty or all-blank line.
var ErrBlank = errors.New("blank line")

func errAt(col int, format string, args ...any) error {
	return &Error{Col: col + 1, Msg: fmt.Sprintf(format, args...)}
}

// Starts returns the offsets at which records start in line: 0, then the
// start of every record glued into it. Every piece but the last ends
// without its newline, so it was cut short (Suricata truncates alerts at
// 2047 bytes; a crash cuts a write) and must not be trusted. The slice is
// reused by the next call.
func (p *Parser) Starts(line []byte) []int {
	p.starts = append(p.starts[:0], 0)
	from := 0
	for {
		k := bytes.Index(line[from:], headerMark)
		if k < 0 {
			return p.starts
		}
		i := from + k
		if _, _, _, n := scanSig(line[i+len(stars)+1:]); n == 0 {
			from = i + len(headerMark)
			continue
		}
		if s := recordStartBefore(line, i); s > p.starts[len(p.starts)-1] {
			p.starts = append(p.starts, s)
		}
		from = i + len(headerMark)
	}
}

// MaybeGlued reports whether the line that Parse turned into ev may hold
// a glued record, so that Starts must look. The header of a whole record
// glued to a cut one always ends up in the signature (the parse from the
// right takes the glued record's tail, from the left the cut record's
// header), or else the parse fails. FuzzParse checks this.
func MaybeGlued(ev *record.Event) bool {
	return ev.Alert == nil || strings.Contains(ev.Alert.Signature, "[**] [")
}

var (
	headerMark = []byte("[**] [")
	rawMark    = []byte("[**] [Raw pkt:")
	arrow      = []byte(" ->")
	prioMark   = []byte("[Priority: ")
	classMark  = []byte("[Classification: ")
	stars      = []byte("[**]")
)

// recordStartBefore returns the start of the record whose "[**] [" header
// mark is at i (timestamp, spaces, an optional [action], spaces), or -1.
func recordStartBefore(b []byte, i int) int {
	j := i
	if j == 0 || b[j-1] != ' ' {
		return -1
	}
	for j > 0 && b[j-1] == ' ' {
		j--
	}
	if j > 0 && b[j-1] == ']' { // [Drop], [wDrop], Snort 3's [would drop]...
		k := bytes.LastIndexByte(b[:j-1], '[')
		if k < 0 || j-1-k > 33 || k == 0 || b[k-1] != ' ' {
			return -1
		}
		j = k
		for j > 0 && b[j-1] == ' ' {
			j--
		}
	}
	return stampStartBefore(b, j)
}

// Parse parses one fast.log record (a line without its line ending, or one
// piece of it as given by Starts) into ev. Invalid UTF-8 is replaced by
// U+FFFD, so the event is kept and its JSON is valid.
//
// The record is read from both ends: its header from the left, the
// tuple, priority and classification from the right; the message is
// what is left between them.
func (p *Parser) Parse(rec []byte, ev *record.Event) error {
	*ev = record.Event{}
	if blank(rec) {
		return ErrBlank
	}
	b := p.copyRecord(rec)
	ev.FullLog = str(b)
	var h header
	if err := parseHeader(b, &h); err != nil {
		return err
	}
	var t tail
	if err := p.parseTail(b[h.body:], h.body, h.snort3, &t); err != nil {
		return err
	}
	ts, err := p.appendTimestamp(&h.ts, b)
	if err != nil {
		return err
	}
	ev.Timestamp = ts
	p.fillAlert(ev, &h, &t)
	if t.proto == nil {
		return nil
	}
	return p.parseTuple(ev, &h, &t)
}

// copyRecord copies rec into the arena, with invalid UTF-8 replaced, so
// that every string of the event aliases memory the parser owns rather
// than the caller's line buffer. The copy it returns is capped: later
// appends to the arena cannot overwrite it.
func (p *Parser) copyRecord(rec []byte) []byte {
	if need := 2*len(rec) + 256; cap(p.arena) < need {
		p.arena = make([]byte, 0, need)
	}
	a := p.arena[:0]
	if utf8.Valid(rec) {
		a = append(a, rec...)
	} else {
		a = appendValidUTF8(a, rec)
	}
	p.arena = a
	return a[:len(a):len(a)]
}

// header is the left of a record: timestamp, optional [action], [**],
// [gid:sid:rev].
type header struct {
	ts            stamp
	snort3        bool   // one space after the time (Suricata and Snort 2 write two)
	action        []byte // "Drop", "wDrop", ...; nil if none
	gid, sid, rev int
	body          int // where the rest of the record starts
}

func parseHeader(b []byte, h *header) error {
	ts, i := scanStamp(b)
	if i == 0 {
		return errAt(0, "no timestamp (MM/DD[/YYYY]-HH:MM:SS.uuuuuu) at the start")
	}
	if !ts.valid() {
		return errAt(0, "impossible date or time %q", b[:i])
	}
	if i >= len(b) || b[i] != ' ' {
		return errAt(i, "no space after the timestamp")
	}
	h.ts = ts
	h.snort3 = i+1 < len(b) && b[i+1] != ' '
	i = skipSpaces(b, i)
	if i < len(b) && b[i] == '[' && !bytes.HasPrefix(b[i:], stars) {
		k := bytes.IndexByte(b[i:], ']')
		if k < 0 || k > 33 || bytes.IndexByte(b[i+1:i+k], '[') >= 0 {
			return errAt(i, "bad action before [**]")
		}
		h.action = b[i+1 : i+k]
		i = skipSpaces(b, i+k+1)
	}
	if !bytes.HasPrefix(b[i:], stars) {
		return errAt(i, "no [**] after the timestamp")
	}
	i = skipSpaces(b, i+len(stars))
	gid, sid, rev, n := scanSig(b[i:])
	if n == 0 {
		return errAt(i, "%s", sigProblem(b[i:]))
	}
	h.gid, h.sid, h.rev = gid, sid, rev
	i += n
	if i < len(b) && b[i] == ' ' {
		i++
	}
	h.body = i
	return nil
}

func skipSpaces(b []byte, i int) int {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}

// tail is the right of a record: the tuple (or a decoder event's raw
// packet), priority and classification, and the message before them.
type tail struct {
	proto    []byte // the text between { and }; nil if there is none
	tuple    []byte // the addresses after it
	tupleCol int    // where the tuple starts in the record
	msg      []byte
	category []byte
	severity *int
}

// parseTail reads body, the record after its header, which starts at
// column col of the record.
func (p *Parser) parseTail(body []byte, col int, snort3 bool, t *tail) error {
	head, err := splitTuple(body, col, t)
	if err != nil {
		return err
	}
	h := p.takeGroups(trimRight(head), t)
	if !bytes.HasSuffix(h, stars) {
		return errAt(col+len(h), "no [**] after the message")
	}
	t.msg = message(h[:len(h)-len(stars)], snort3)
	if string(t.category) == "(null)" {
		t.category = nil
	}
	return nil
}

// splitTuple takes the tuple (or a decoder event's raw packet) off the
// end of body and returns what is before it.
func splitTuple(body []byte, col int, t *tail) ([]byte, error) {
	end := len(trimRight(body))
	if end > 0 && body[end-1] == ']' && bytes.LastIndex(body[:end], rawMark) >= 0 {
		return body[:bytes.LastIndex(body[:end], rawMark)], nil // decoder event: no IP layer
	}
	if k := bytes.LastIndexByte(body[:end], '{'); k >= 0 {
		c := bytes.IndexByte(body[k:], '}')
		if c < 0 {
			return nil, errAt(col+k, "no } after the protocol")
		}
		t.proto = body[k+1 : k+c]
		t.tuple = body[k+c+1:]
		t.tupleCol = col + k + c + 1
		return body[:k], nil
	}
	return body[:end], nil // Snort 2 alert on a packet without IP header
}

// takeGroups takes Snort 3's extras, the priority and the classification
// off the end of h and returns the rest.
func (p *Parser) takeGroups(h []byte, t *tail) []byte {
	// Snort 3 writes extras after the priority ([AppID: HTTP], ...): skip
	// them, as long as each is a plain group (no bracket inside: a
	// classification may hold brackets, an extra does not).
	for n := 0; n < 8 && len(h) > 0 && h[len(h)-1] == ']' && !bytes.HasSuffix(h, stars); n++ {
		k := bytes.LastIndexByte(h, '[')
		if k <= 0 || h[k-1] != ' ' || bytes.HasPrefix(h[k:], prioMark) || bytes.HasPrefix(h[k:], classMark) ||
			bytes.IndexByte(h[k+1:len(h)-1], ']') >= 0 {
			break
		}
		h = trimRight(h[:k])
	}
	if k := lastGroup(h, prioMark); k >= 0 {
		// An odd priority (not a number) loses the severity, not the alert.
		if v, ok := atoi(h[k+len(prioMark) : len(h)-1]); ok {
			p.ints[4] = v
			t.severity = &p.ints[4]
		}
		h = trimRight(h[:k])
	}
	if k := lastGroup(h, classMark); k >= 0 {
		t.category = h[k+len(classMark) : len(h)-1]
		h = trimRight(h[:k])
	}
	return h
}

// message is the signature text of msg, what is before the [**] that
// ends it: Snort 3 quotes it, and "(null)" is none.
func message(msg []byte, snort3 bool) []byte {
	if len(msg) > 0 && msg[len(msg)-1] == ' ' {
		msg = msg[:len(msg)-1]
	}
	if snort3 && len(msg) >= 2 && msg[0] == '"' && msg[len(msg)-1] == '"' {
		msg = msg[1 : len(msg)-1]
	}
	if string(msg) == "(null)" {
		return nil
	}
	return msg
}

// appendTimestamp completes ts (the year of a year-less Snort line) and
// appends it to the arena in EVE's layout, in the sensor's zone. b is the
// record, for messages.
func (p *Parser) appendTimestamp(ts *stamp, b []byte) (string, error) {
	if ts.yearDigits == 0 {
		ts.year = p.Year
		if ts.year == 0 {
			now := time.Now
			if p.Now != nil {
				now = p.Now
			}
			ts.year = inferYear(ts.mon, now())
		}
		if !ts.valid() { // 02/29 in a year without one
			return "", errAt(0, "impossible date %q in %d", b[:5], ts.year)
		}
	}
	zone := p.Zone
	if zone == nil {
		zone = time.Local
	}
	t0 := len(p.arena)
	p.arena = appendEVETime(p.arena, ts, p.zone.lookup(zone, ts))
	return str(p.arena[t0:]), nil
}

// fillAlert sets the event's alert (the Parser's own, reused) and the
// fields every event has.
func (p *Parser) fillAlert(ev *record.Event, h *header, t *tail) {
	ev.EventType = "alert"
	p.alert = record.EventAlert{
		Action:      "allowed",
		GID:         h.gid,
		SignatureID: h.sid,
		Rev:         h.rev,
		Signature:   str(t.msg),
		Category:    str(t.category),
		Severity:    t.severity,
	}
	if len(h.action) > 0 {
		p.alert.FastAction = str(h.action)
		if blockingAction(h.action) {
			p.alert.Action = "blocked"
		}
	}
	ev.Alert = &p.alert
	ev.Location = p.Location
}

// parseTuple reads the protocol and the tuple after it: "SRC[:N] ->
// DST[:N]", or " -> " for Snort 3's ARP alerts.
func (p *Parser) parseTuple(ev *record.Event, h *header, t *tail) error {
	proto, err := p.protocol(t.proto, h.body)
	if err != nil {
		return err
	}
	k := bytes.Index(t.tuple, arrow)
	if k < 0 {
		return errAt(t.tupleCol, "no -> between the addresses")
	}
	src, dst := bytes.TrimSpace(t.tuple[:k]), bytes.TrimSpace(t.tuple[k+len(arrow):])
	if len(src) == 0 && len(dst) == 0 {
		ev.Proto = proto
		return nil
	}
	// Suricata always writes two numbers after the addresses; Snort only
	// for TCP and UDP (and an IPv6 address ends in :hex, so the protocol
	// decides whether the last group is a port).
	withNumbers := h.ts.yearDigits == 4 || portProto(proto)
	se, ok := parseEndpoint(src, withNumbers)
	if !ok {
		return errAt(t.tupleCol, "bad source address %q", src)
	}
	de, ok := parseEndpoint(dst, withNumbers)
	if !ok {
		return errAt(t.tupleCol, "bad destination address %q", dst)
	}
	if proto == "ICMP" && se.isIP6 {
		proto = "IPv6-ICMP" // Snort 3 writes {ICMP} for ICMPv6 too
	}
	ev.Proto = proto
	s0 := len(p.arena)
	p.arena = se.appendTo(p.arena)
	ev.SrcIP = str(p.arena[s0:])
	d0 := len(p.arena)
	p.arena = de.appendTo(p.arena)
	ev.DestIP = str(p.arena[d0:])
	p.setNumbers(ev, proto, se.n, de.n)
	return nil
}

// protocol returns the protocol's name for the text between { and }
// (col is where the body of the record starts, for messages).
func (p *Parser) protocol(text []byte, col int) (string, error) {
	if proto, known := canonicalProto(text); known {
		return proto, nil
	}
	num, ok := protoNumber(text)
	switch {
	case ok:
		v, _ := atoi(num)
		if v > 255 { // no such protocol: odd, kept as written
			return str(text), nil
		}
		p0 := len(p.arena)
		p.arena = append(p.arena, byte('0'+v/100), byte('0'+v/10%10), byte('0'+v%10))
		return str(p.arena[p0:]), nil
	case len(text) == 0 || bytes.ContainsAny(text, " []{"):
		return "", errAt(col, "bad protocol %q", text)
	}
	return str(text), nil
}

// setNumbers sets the ports, or ICMP's type and code, from the numbers
// after the source and destination (-1 if none, -2 if odd).
func (p *Parser) setNumbers(ev *record.Event, proto string, sn, dn int) {
	if sn < 0 || dn < 0 {
		// A number on one side only, or one that is not a port (IPv4's
		// :99999): odd, so no numbers, but the alert is kept.
		return
	}
	switch {
	case portProto(proto):
		p.ints[0], p.ints[1] = sn, dn
		ev.SrcPort, ev.DestPort = &p.ints[0], &p.ints[1]
	case icmpProto(proto):
		if sn > 255 || dn > 255 {
			// Suricata before 5.0.1 printed the packet's two 16-bit port
			// fields, which for ICMP hold this packet's type and code
			// (type in the low byte on the little-endian hosts it runs
			// on: type + 256*code) on the left, the expected reply's on
			// the right. A number over 255 can only be that layout.
			sn, dn = sn&0xff, sn>>8
		}
		p.ints[2], p.ints[3] = sn, dn
		ev.ICMPType, ev.ICMPCode = &p.ints[2], &p.ints[3]
	}
}

// lastGroup returns where the bracketed group that ends h starts, if it
// starts with mark ("[Priority: "), or -1. The group's text may itself
// contain brackets (a classification), but the message's [**] is never
// part of it.
func lastGroup(h, mark []byte) int {
	if len(h) == 0 || h[len(h)-1] != ']' || bytes.HasSuffix(h, stars) {
		return -1
	}
	if k := bytes.LastIndexByte(h, '['); k >= 0 && bytes.HasPrefix(h[k:], mark) {
		return k // the usual case, without a search for the whole mark
	}
	return bytes.LastIndex(h, mark)
}

// endpoint is one side of the tuple.
type endpoint struct {
	text  []byte     // the address as written, when that is canonical IPv4
	addr  netip.Addr // else the parsed address
	n     int        // the number after it (port, ICMP type or code), -1 if none, -2 if odd
	isIP6 bool
}

// appendTo appends the address in canonical text.
func (e *endpoint) appendTo(dst []byte) []byte {
	if e.text != nil {
		return append(dst, e.text...)
	}
	return e.addr.AppendTo(dst)
}

// parseEndpoint parses an address with an optional :number after it.
// withNumber says how to read an ambiguous IPv6 address whose last group
// could be a port.
func parseEndpoint(b []byte, withNumber bool) (endpoint, bool) {
	colons := bytes.Count(b, []byte(":"))
	if colons <= 1 { // IPv4, with or without :port
		e := endpoint{n: -1}
		ip := b
		if colons == 1 {
			k := bytes.IndexByte(b, ':')
			v, ok := atoi(b[k+1:])
			if !ok || v > 65535 {
				v = -2 // not a port: odd, the address is still good
			}
			ip, e.n = b[:k], v
		}
		if canonicalIPv4(ip) { // the common case, without a round trip
			e.text = ip
			return e, true
		}
		a, err := netip.ParseAddr(str(ip))
		e.addr = a
		return e, err == nil && a.Is4()
	}
	split := func() (endpoint, bool) {
		k := bytes.LastIndexByte(b, ':')
		v, vok := atoi(b[k+1:])
		if !vok || v > 65535 {
			return endpoint{}, false
		}
		a, err := netip.ParseAddr(str(b[:k]))
		return endpoint{addr: a, n: v, isIP6: a.Is6() && !a.Is4In6()}, err == nil
	}
	whole := func() (endpoint, bool) {
		a, err := netip.ParseAddr(str(b))
		return endpoint{addr: a, n: -1, isIP6: a.Is6() && !a.Is4In6()}, err == nil
	}
	first, second := whole, split
	if withNumber {
		first, second = split, whole
	}
	if e, ok := first(); ok {
		return e, true
	}
	return second()
}

// canonicalIPv4 reports whether b is an IPv4 address written the way
// netip writes it back: four decimal numbers up to 255, no leading zeros.
func canonicalIPv4(b []byte) bool {
	dots, val, digits := 0, 0, 0
	for _, c := range b {
		if c == '.' {
			if digits == 0 || dots == 3 {
				return false
			}
			dots, val, digits = dots+1, 0, 0
			continue
		}
		if !isDigit(c) || digits > 0 && val == 0 {
			return false
		}
		val, digits = val*10+int(c-'0'), digits+1
		if val > 255 {
			return false
		}
	}
	return dots == 3 && digits > 0
}

// scanSig reads [gid:sid:rev] and returns the bytes it used (0 if none).
func scanSig(b []byte) (gid, sid, rev, n int) {
	if len(b) < 7 || b[0] != '[' {
		return 0, 0, 0, 0
	}
	k := bytes.IndexByte(b, ']')
	if k < 0 || k > 40 {
		return 0, 0, 0, 0
	}
	in := b[1:k]
	c1 := bytes.IndexByte(in, ':')
	if c1 < 0 {
		return 0, 0, 0, 0
	}
	c2 := bytes.IndexByte(in[c1+1:], ':')
	if c2 < 0 {
		return 0, 0, 0, 0
	}
	c2 += c1 + 1
	var ok1, ok2, ok3 bool
	gid, ok1 = atoi(in[:c1])
	sid, ok2 = atoi(in[c1+1 : c2])
	rev, ok3 = atoi(in[c2+1:])
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, 0
	}
	return gid, sid, rev, k + 1
}

// sigProblem says why scanSig found no [gid:sid:rev] at the start of b.
func sigProblem(b []byte) string {
	k := bytes.IndexByte(b, ']')
	if len(b) == 0 || b[0] != '[' || k < 0 || k > 40 {
		return "no [gid:sid:rev] after [**]"
	}
	parts := bytes.Split(b[1:k], []byte(":"))
	if len(parts) != 3 {
		return fmt.Sprintf("no [gid:sid:rev] after [**] (%q has %d numbers, not 3)", b[:k+1], len(parts))
	}
	for j, name := range [...]string{"gid", "sid", "rev"} {
		v := parts[j]
		if len(v) == 0 || bytes.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return fmt.Sprintf("%s %q in %q is not a number", name, v, b[:k+1])
		}
		if _, ok := atoi(v); !ok {
			return fmt.Sprintf("%s %s in %q is out of range (0 to %d)", name, v, b[:k+1], uint32(1<<32-1))
		}
	}
	return "no [gid:sid:rev] after [**]"
}

// atoi parses a non-negative decimal of at most 10 digits that fits 32 bits.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= 1<<32-1
}

// blockingAction reports whether a fast.log action prefix means the packet
// was really dropped (EVE's "blocked"): Suricata's [Drop] in IPS mode, or a
// Snort action like drop/block/reject. [wDrop] ("would drop": IDS mode)
// and everything else is "allowed", as EVE reports it.
func blockingAction(a []byte) bool {
	for _, s := range [...]string{"Drop", "Block", "Reject", "Reset", "Sdrop"} {
		if equalFold(a, s) {
			return true
		}
	}
	return false
}

func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != 0 {
			return false
		}
	}
	return true
}

func trimRight(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// appendValidUTF8 appends b with every byte that is not part of valid
// UTF-8 replaced by U+FFFD, as record.AppendString does.
func appendValidUTF8(dst, b []byte) []byte {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\ufffd"...)
		} else {
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return dst
}

// str returns the bytes as a string without copying. Only for bytes the
// Parser owns and will not change before the next Parse.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
