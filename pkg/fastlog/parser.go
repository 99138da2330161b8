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
// fills stay valid until its next Parse. Copy what you keep (Clone).
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
func (p *Parser) Parse(rec []byte, ev *record.Event) error {
	*ev = record.Event{}
	if blank(rec) {
		return ErrBlank
	}
	// Copy the record into the arena so every string of the event aliases
	// memory the parser owns rather than the caller's line buffer.
	if need := 2*len(rec) + 256; cap(p.arena) < need {
		p.arena = make([]byte, 0, need)
	}
	a := p.arena[:0]
	if utf8.Valid(rec) {
		a = append(a, rec...)
	} else {
		a = appendValidUTF8(a, rec)
	}
	b := a[:len(a):len(a)] // the record; later appends cannot overwrite it
	ev.FullLog = str(b)

	// Left: timestamp, optional [action], [**], [gid:sid:rev].
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
	snort3 := i+1 < len(b) && b[i+1] != ' ' // Suricata and Snort 2 write two spaces
	for i < len(b) && b[i] == ' ' {
		i++
	}
	action := []byte(nil)
	if i < len(b) && b[i] == '[' && !bytes.HasPrefix(b[i:], stars) {
		k := bytes.IndexByte(b[i:], ']')
		if k < 0 || k > 33 || bytes.IndexByte(b[i+1:i+k], '[') >= 0 {
			return errAt(i, "bad action before [**]")
		}
		action = b[i+1 : i+k]
		i += k + 1
		for i < len(b) && b[i] == ' ' {
			i++
		}
	}
	if !bytes.HasPrefix(b[i:], stars) {
		return errAt(i, "no [**] after the timestamp")
	}
	i += len(stars)
	for i < len(b) && b[i] == ' ' {
		i++
	}
	gid, sid, rev, n := scanSig(b[i:])
	if n == 0 {
		return errAt(i, "%s", sigProblem(b[i:]))
	}
	i += n
	if i < len(b) && b[i] == ' ' {
		i++
	}
	body := b[i:]
	bodyCol := i

	// Right: the tuple (or decoder event's raw packet), priority,
	// classification, then the [**] that ends the message.
	end := len(body)
	for end > 0 && (body[end-1] == ' ' || body[end-1] == '\t') {
		end--
	}
	var head, protoText, tuple []byte
	if end > 0 && body[end-1] == ']' && bytes.LastIndex(body[:end], rawMark) >= 0 {
		head = body[:bytes.LastIndex(body[:end], rawMark)] // decoder event: no IP layer
	} else if k := bytes.LastIndexByte(body[:end], '{'); k >= 0 {
		c := bytes.IndexByte(body[k:], '}')
		if c < 0 {
			return errAt(bodyCol+k, "no } after the protocol")
		}
		protoText = body[k+1 : k+c]
		tuple = body[k+c+1:]
		head = body[:k]
	} else {
		head = body[:end] // Snort 2 alert on a packet without IP header
	}
	h := trimRight(head)
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
	var severity *int
	if k := lastGroup(h, prioMark); k >= 0 {
		// An odd priority (not a number) loses the severity, not the alert.
		if v, ok := atoi(h[k+len(prioMark) : len(h)-1]); ok {
			p.ints[4] = v
			severity = &p.ints[4]
		}
		h = trimRight(h[:k])
	}
	category := []byte(nil)
	if k := lastGroup(h, classMark); k >= 0 {
		category = h[k+len(classMark) : len(h)-1]
		h = trimRight(h[:k])
	}
	if !bytes.HasSuffix(h, stars) {
		return errAt(bodyCol+len(h), "no [**] after the message")
	}
	msg := h[:len(h)-len(stars)]
	if len(msg) > 0 && msg[len(msg)-1] == ' ' {
		msg = msg[:len(msg)-1]
	}
	if snort3 && len(msg) >= 2 && msg[0] == '"' && msg[len(msg)-1] == '"' {
		msg = msg[1 : len(msg)-1]
	}
	if string(msg) == "(null)" {
		msg = nil
	}
	if string(category) == "(null)" {
		category = nil
	}

	// The timestamp, in the sensor's zone.
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
			return errAt(0, "impossible date %q in %d", b[:5], ts.year)
		}
	}
	zone := p.Zone
	if zone == nil {
		zone = time.Local
	}
	t0 := len(a)
	a = appendEVETime(a, &ts, p.zone.lookup(zone, &ts))
	ev.Timestamp = str(a[t0:])

	ev.EventType = "alert"
	p.alert = record.EventAlert{
		Action:      "allowed",
		GID:         gid,
		SignatureID: sid,
		Rev:         rev,
		Signature:   str(msg),
		Category:    str(category),
		Severity:    severity,
	}
	if len(action) > 0 {
		p.alert.FastAction = str(action)
		if blockingAction(action) {
			p.alert.Action = "blocked"
		}
	}
	ev.Alert = &p.alert
	ev.Location = p.Location

	if protoText == nil {
		p.arena = a
		return nil
	}
	proto, known := canonicalProto(protoText)
	if !known {
		if num, ok := protoNumber(protoText); ok {
			v, _ := atoi(num)
			if v > 255 { // no such protocol: odd, kept as written
				proto = str(protoText)
			} else {
				p0 := len(a)
				a = append(a, byte('0'+v/100), byte('0'+v/10%10), byte('0'+v%10))
				proto = str(a[p0:])
			}
		} else {
			if len(protoText) == 0 || bytes.ContainsAny(protoText, " []{") {
				return errAt(bodyCol, "bad protocol %q", protoText)
			}
			proto = str(protoText)
		}
	}

	// The tuple: "SRC[:N] -> DST[:N]", or " -> " for Snort 3's ARP alerts.
	k := bytes.Index(tuple, arrow)
	if k < 0 {
		return errAt(bodyCol+len(body)-len(tuple), "no -> between the addresses")
	}
	src, dst := bytes.TrimSpace(tuple[:k]), bytes.TrimSpace(tuple[k+len(arrow):])
	if len(src) == 0 && len(dst) == 0 {
		ev.Proto = proto
		p.arena = a
		return nil
	}
	// Suricata always writes two numbers after the addresses; Snort only
	// for TCP and UDP (and an IPv6 address ends in :hex, so the protocol
	// decides whether the last group is a port).
	withNumbers := ts.yearDigits == 4 || portProto(proto)
	se, ok := parseEndpoint(src, withNumbers)
	if !ok {
		return errAt(bodyCol+len(body)-len(tuple), "bad source address %q", src)
	}
	de, ok := parseEndpoint(dst, withNumbers)
	if !ok {
		return errAt(bodyCol+len(body)-len(tuple), "bad destination address %q", dst)
	}
	sn, dn := se.n, de.n
	if sn < 0 || dn < 0 {
		// A number on one side only, or one that is not a port (IPv4's
		// :99999): odd, so no numbers, but the alert is kept.
		sn, dn = -1, -1
	}
	if proto == "ICMP" && se.isIP6 {
		proto = "IPv6-ICMP" // Snort 3 writes {ICMP} for ICMPv6 too
	}
	ev.Proto = proto
	s0 := len(a)
	a = se.appendTo(a)
	ev.SrcIP = str(a[s0:])
	d0 := len(a)
	a = de.appendTo(a)
	ev.DestIP = str(a[d0:])
	p.arena = a
	if sn < 0 {
		return nil
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
	return nil
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

// Clone returns a deep copy of an event filled by Parse, safe to keep.
func Clone(ev *record.Event) *record.Event {
	c := *ev
	c.Timestamp = strings.Clone(ev.Timestamp)
	c.SrcIP = strings.Clone(ev.SrcIP)
	c.DestIP = strings.Clone(ev.DestIP)
	c.Proto = strings.Clone(ev.Proto)
	c.FullLog = strings.Clone(ev.FullLog)
	c.Location = strings.Clone(ev.Location)
	for _, p := range []**int{&c.SrcPort, &c.DestPort, &c.ICMPType, &c.ICMPCode} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	if ev.Alert != nil {
		al := *ev.Alert
		al.Action = strings.Clone(al.Action)
		al.FastAction = strings.Clone(al.FastAction)
		al.Signature = strings.Clone(al.Signature)
		al.Category = strings.Clone(al.Category)
		if al.Severity != nil {
			v := *al.Severity
			al.Severity = &v
		}
		c.Alert = &al
	}
	return &c
}
