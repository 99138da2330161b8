// Package eve turns the alert records of Suricata's eve.json into the
// events fastparse writes for fast.log lines, so everything after
// fastparse works the same on both inputs.
//
// An event is the EVE record as Suricata wrote it, byte for byte, with two
// keys appended: full_log, the alert rendered as Suricata's fast.log would
// have written it (so rules and <match> patterns written for fast.log
// match eve.json alerts too), and location, the file it came from. The one
// change inside the record: src_ip and dest_ip in canonical text (RFC 5952),
// as in every event (Suricata writes IPv6 fully expanded).
//
// Records of other event types (flow, dns, http, tls, stats, ...) are
// skipped and counted. A line that is not one JSON object, a record cut by
// a crash with the next one glued to it, NUL bytes from a crash's hole in
// the file: one diagnostic per line, never a stop.
package eve

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// Parser parses eve.json lines. The zero value is ready to use; set
// Location first. A Parser reuses its buffers: one per goroutine.
type Parser struct {
	// Location is the events' location field: the file's name, or stdin.
	Location string

	// Other counts the records skipped because they are not alerts, by
	// event_type (at most maxTypes names; the rest under "other").
	Other map[string]int

	f       record.EVEFields
	msgs    []string
	fixed   []byte
	full    []byte
	loc     []byte // Location, encoded
	locFor  string
	starts  []int
	ipCanon [2][]byte
}

// Result says what a line held.
type Result struct {
	Alerts int    // events appended
	Other  int    // records skipped: not alerts
	Lost   int    // records lost: malformed, cut short, unusable alerts
	Blank  bool   // the line was empty or only white space and NULs
	Msg    string // one diagnostic for the line, "" if nothing was wrong
}

// maxTypes bounds Other: event types come from the input.
const maxTypes = 64

// recordStart is how Suricata begins every record.
var recordStart = []byte(`{"timestamp":`)

// Line parses one line of eve.json (without its newline) and appends the
// event of each alert record on it to dst, each followed by a newline.
func (p *Parser) Line(dst, line []byte) ([]byte, Result) {
	p.msgs = p.msgs[:0]
	var r Result
	if blank(line) {
		r.Blank = true
		if len(line) == 0 {
			r.Msg = "blank line: skipped"
		} else {
			r.Msg = fmt.Sprintf("blank line (%d bytes of spaces, tabs or NULs): skipped", len(line))
		}
		return dst, r
	}
	err := record.ScanEVE(line, &p.f)
	if err == nil {
		dst = p.record(dst, line, 0, &r)
		return dst, p.result(r)
	}
	// Not one record: look for records Suricata began on this line. A
	// crash cuts a record short without its newline, and the next run
	// writes after it (or after a hole of NULs).
	p.starts = p.starts[:0]
	for i := 0; ; {
		k := bytes.Index(line[i:], recordStart)
		if k < 0 {
			break
		}
		p.starts = append(p.starts, i+k)
		i += k + len(recordStart)
	}
	if len(p.starts) == 0 || len(p.starts) == 1 && p.starts[0] == 0 {
		r.Lost++
		p.msgs = append(p.msgs, err.Error()+": skipped")
		return dst, p.result(r)
	}
	if first := p.starts[0]; first > 0 {
		switch {
		case bytes.Count(line[:first], []byte{0}) == first: // a crash's hole in the file
			p.msgs = append(p.msgs, fmt.Sprintf("%d NUL bytes before the record at column %d: skipped", first, first+1))
		case !blank(line[:first]):
			p.msgs = append(p.msgs, fmt.Sprintf("%d bytes of garbage before the record at column %d: skipped", first, first+1))
		}
	}
	for k, start := range p.starts {
		end := len(line)
		if k+1 < len(p.starts) {
			end = p.starts[k+1]
		}
		seg := line[start:end]
		if err := record.ScanEVE(seg, &p.f); err != nil {
			r.Lost++
			if k+1 < len(p.starts) {
				p.msgs = append(p.msgs, fmt.Sprintf("record at column %d cut short after %d bytes, the next one glued to it: skipped", start+1, len(seg)))
			} else {
				e := *err.(*record.EVEError)
				e.Col += start
				p.msgs = append(p.msgs, e.Error()+": skipped")
			}
			continue
		}
		dst = p.record(dst, seg, start, &r)
	}
	return dst, p.result(r)
}

func (p *Parser) result(r Result) Result {
	if len(p.msgs) > 0 {
		r.Msg = strings.Join(p.msgs, "; ")
	}
	return r
}

// record handles one well-formed record, scanned into p.f; col is where
// it starts on the line, for messages.
func (p *Parser) record(dst, rec []byte, col int, r *Result) []byte {
	f := &p.f
	if f.NonASCII && !utf8.Valid(rec) {
		p.msgs = append(p.msgs, fmt.Sprintf("invalid UTF-8 at column %d replaced by U+FFFD", col+firstInvalid(rec)+1))
		p.fixed = appendValidUTF8(p.fixed[:0], rec)
		rec = p.fixed
		if err := record.ScanEVE(rec, f); err != nil {
			r.Lost++ // cannot happen: the bytes replaced were inside strings
			p.msgs = append(p.msgs, err.Error()+": skipped")
			return dst
		}
	}
	if string(f.EventType) != "alert" {
		r.Other++
		p.countOther(f.EventType)
		return dst
	}
	at := ""
	if col > 0 {
		at = fmt.Sprintf(" (record at column %d)", col+1)
	}
	if !f.HasAlert || f.Has&(record.HasSID) == 0 {
		r.Lost++
		p.msgs = append(p.msgs, "alert record without alert.signature_id"+at+": skipped")
		return dst
	}
	if _, ok := record.ParseTime(f.Timestamp); !ok || len(f.Timestamp) < 19 {
		r.Lost++
		p.msgs = append(p.msgs, fmt.Sprintf("timestamp %s is not an EVE time%s: skipped", quote(f.Timestamp), at))
		return dst
	}
	// The record up to its closing brace, with the addresses canonical.
	lead := 0
	for lead < len(rec) && rec[lead] != '{' {
		lead++
	}
	spans := [2][2]int{f.SrcIPSpan, f.DestIPSpan}
	ips := [2][]byte{f.SrcIP, f.DestIP}
	if spans[0][0] > spans[1][0] {
		spans[0], spans[1] = spans[1], spans[0]
		ips[0], ips[1] = ips[1], ips[0]
	}
	from := lead
	for k, ip := range ips {
		if ip == nil {
			continue
		}
		canon, ok := p.canonical(k, ip)
		switch {
		case !ok:
			p.msgs = append(p.msgs, fmt.Sprintf("address %s is not an IP address%s: kept as written", quote(ip), at))
		case canon != nil:
			dst = append(dst, rec[from:spans[k][0]]...)
			dst = append(dst, '"')
			dst = append(dst, canon...)
			dst = append(dst, '"')
			from = spans[k][1]
		}
	}
	dst = append(dst, rec[from:f.End]...)
	empty := len(bytes.TrimSpace(rec[lead+1:f.End])) == 0
	if !f.HasFullLog {
		if !empty {
			dst = append(dst, ',')
		}
		empty = false
		p.full = p.renderFast(p.full[:0])
		dst = append(dst, `"full_log":`...)
		if f.Verbatim { // every piece of it is from the line, or digits
			dst = append(dst, '"')
			dst = append(dst, p.full...)
			dst = append(dst, '"')
		} else {
			dst = record.AppendString(dst, p.full)
		}
	}
	if !f.HasLocation && p.Location != "" {
		if p.locFor != p.Location || p.loc == nil {
			p.loc = record.AppendString(p.loc[:0], p.Location)
			p.locFor = p.Location
		}
		if !empty {
			dst = append(dst, ',')
		}
		dst = append(dst, `"location":`...)
		dst = append(dst, p.loc...)
	}
	r.Alerts++
	return append(dst, '}', '\n')
}

// canonical returns the canonical text of ip, or nil if ip is canonical
// already; ok is false if ip is not an address.
func (p *Parser) canonical(k int, ip []byte) (canon []byte, ok bool) {
	if canonicalIPv4(ip) {
		return nil, true
	}
	a, err := netip.ParseAddr(string(ip))
	if err != nil {
		return nil, false
	}
	p.ipCanon[k] = a.AppendTo(p.ipCanon[k][:0])
	if bytes.Equal(p.ipCanon[k], ip) {
		return nil, true
	}
	return p.ipCanon[k], true
}

func (p *Parser) countOther(t []byte) {
	if p.Other == nil {
		p.Other = make(map[string]int)
	}
	name := string(t)
	if t == nil {
		name = "(none)"
	}
	if _, ok := p.Other[name]; !ok && len(p.Other) >= maxTypes {
		name = "other"
	}
	p.Other[name]++
}

// renderFast appends the alert of p.f as Suricata's alert-fastlog.c writes
// it: "%s  %s[**] [%u:%u:%u] %s [**] [Classification: %s] [Priority: %u]
// {%s} %s:%u -> %s:%u", or the "[Raw pkt: ...]" form for a packet without
// an IP layer.
func (p *Parser) renderFast(b []byte) []byte {
	f := &p.f
	ts := f.Timestamp // checked: at least YYYY-MM-DDTHH:MM:SS
	b = append(b, ts[5:7]...)
	b = append(b, '/')
	b = append(b, ts[8:10]...)
	b = append(b, '/')
	b = append(b, ts[0:4]...)
	b = append(b, '-')
	b = append(b, ts[11:19]...)
	b = append(b, '.')
	n := 0
	if len(ts) > 19 && ts[19] == '.' {
		for i := 20; i < len(ts) && n < 6 && ts[i] >= '0' && ts[i] <= '9'; i++ {
			b = append(b, ts[i])
			n++
		}
	}
	for ; n < 6; n++ {
		b = append(b, '0')
	}
	b = append(b, "  "...)
	if string(f.Action) == "blocked" {
		b = append(b, "[Drop] "...)
	}
	b = append(b, "[**] ["...)
	b = strconv.AppendInt(b, orDefault(f.GID, f.Has&record.HasGID != 0, 1), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, f.SID, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, orDefault(f.Rev, f.Has&record.HasRev != 0, 0), 10)
	b = append(b, "] "...)
	b = appendOrNull(b, f.Signature)
	b = append(b, " [**] [Classification: "...)
	b = appendOrNull(b, f.Category)
	b = append(b, "] [Priority: "...)
	b = strconv.AppendInt(b, orDefault(f.Severity, f.Has&record.HasSeverity != 0, 3), 10)
	b = append(b, ']')
	if f.SrcIP == nil || f.DestIP == nil {
		b = append(b, " [**] [Raw pkt: "...)
		if pkt, err := base64.StdEncoding.DecodeString(string(f.Packet)); err == nil && len(f.Packet) > 0 {
			for i := 0; i < len(pkt) && i < 32; i++ {
				b = append(b, "0123456789ABCDEF"[pkt[i]>>4], "0123456789ABCDEF"[pkt[i]&15], ' ')
			}
		}
		b = append(b, ']')
		if f.Has&record.HasPcapCnt != 0 && f.PcapCnt != 0 {
			b = append(b, " [pcap file packet: "...)
			b = strconv.AppendInt(b, f.PcapCnt, 10)
			b = append(b, ']')
		}
		return b
	}
	b = append(b, " {"...)
	b = appendProto(b, f.Proto)
	b = append(b, "} "...)
	sp, dp := f.SrcPort, f.DestPort
	hasSP, hasDP := f.Has&record.HasSrcPort != 0, f.Has&record.HasDestPort != 0
	if isICMP(f.Proto) {
		sp, dp = f.ICMPType, f.ICMPCode
		hasSP, hasDP = f.Has&record.HasICMPType != 0, f.Has&record.HasICMPCode != 0
	}
	// The addresses as Suricata wrote them: its fast.log prints them the
	// same way, so patterns written against fast.log match.
	b = append(b, f.SrcIP...)
	b = append(b, ':')
	b = strconv.AppendInt(b, orDefault(sp, hasSP, 0), 10)
	b = append(b, " -> "...)
	b = append(b, f.DestIP...)
	b = append(b, ':')
	return strconv.AppendInt(b, orDefault(dp, hasDP, 0), 10)
}

func orDefault(v int64, has bool, def int64) int64 {
	if has {
		return v
	}
	return def
}

// appendOrNull appends s, or "(null)" (what printf writes for the NULL
// message or classification fast.log gets) when s is empty.
func appendOrNull(b, s []byte) []byte {
	if len(s) == 0 {
		return append(b, "(null)"...)
	}
	return append(b, s...)
}

// appendProto appends the protocol as fast.log writes it: the name, or
// PROTO:NNN for a number (EVE writes a protocol without a name as its
// number).
func appendProto(b, proto []byte) []byte {
	if len(proto) == 0 {
		return append(b, "PROTO:000"...)
	}
	for _, c := range proto {
		if c < '0' || c > '9' {
			return append(b, proto...)
		}
	}
	b = append(b, "PROTO:"...)
	for n := len(proto); n < 3; n++ {
		b = append(b, '0')
	}
	return append(b, proto...)
}

func isICMP(proto []byte) bool {
	switch string(proto) {
	case "ICMP", "IPv6-ICMP", "ICMPv6", "IPV6-ICMP":
		return true
	}
	return false
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
		if c < '0' || c > '9' || digits > 0 && val == 0 {
			return false
		}
		val, digits = val*10+int(c-'0'), digits+1
		if val > 255 {
			return false
		}
	}
	return dots == 3 && digits > 0
}

func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != 0 {
			return false
		}
	}
	return true
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return 0
}

// appendValidUTF8 appends b with each byte that is not part of valid UTF-8
// replaced by U+FFFD.
func appendValidUTF8(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\ufffd"...)
		} else {
			dst = append(dst, b[i:i+n]...)
		}
		i += n
	}
	return dst
}

// quote quotes text from the input for a diagnostic, cut to a sane length.
func quote(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "..."
	}
	return strconv.Quote(string(b))
}
