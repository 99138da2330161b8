package record

import "fmt"

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
	// Verbatim is set when the line has no backslash, control character
	// or byte above 0x7f: every string in it is the same in JSON and
	// decoded, and goes into a JSON string as it is (see Verbatim).
	Verbatim bool
	// End is the index of the closing brace of the record's object.
	End int

	line    []byte // the line scanned, for the spans
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

// eveMaxDepth bounds nesting (see scanner.max): no record Suricata
// writes comes close.
const eveMaxDepth = 512

// ScanEVE checks that line is one JSON object (white space around it
// allowed) and fills f with the fields fastparse uses. A line that is not
// one well-formed JSON object gives an *EVEError.
func ScanEVE(line []byte, f *EVEFields) error { return scanEVE(line, f, true) }

// scanEVE is ScanEVE; fast false keeps to the careful scanner (for
// comparing the two in tests).
func scanEVE(line []byte, f *EVEFields, fast bool) error {
	scratch := scratchFor(f.scratch, len(line))
	*f = EVEFields{line: line, scratch: scratch}
	free, ascii := escapeFreeASCII(line)
	if free && fast {
		i := plainWS(line, 0)
		if i < len(line) && line[i] == '{' {
			if end := plainObject(line, i, eveMaxDepth, top, f); end > 0 && plainWS(line, end) == len(line) {
				f.End = end - 1
				f.Verbatim = ascii
				f.NonASCII = !ascii
				return nil
			}
		}
		// not well-formed: the careful scanner says why
		*f = EVEFields{line: line, scratch: scratch}
	}
	f.NonASCII = !ascii
	s := scanner[*EVEFields]{b: line, p: f, buf: &f.scratch, max: eveMaxDepth}
	s.ws()
	switch {
	case s.i >= len(s.b):
		s.fail("no record")
	case s.b[s.i] != '{':
		s.fail("not a JSON object")
	case s.object(0, top):
		f.End = s.i - 1
		if s.end() {
			return nil
		}
		s.fail("text after the record")
	}
	return &EVEError{Col: s.errCol, Msg: s.errMsg}
}

// object picks the record's "alert".
func (f *EVEFields) object(in kind, key []byte) (kind, bool) {
	if in == top && string(key) == "alert" {
		f.HasAlert = true
		f.Action, f.Signature, f.Category = nil, nil, nil
		f.Has &^= HasGID | HasSID | HasRev | HasSeverity
		return alertKind, true
	}
	return skip, true
}

func (f *EVEFields) value(in kind, key []byte, v val) bool {
	var str *[]byte
	var num *int64
	var bit EVEHas
	if in == alertKind {
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
	} else {
		switch string(key) {
		case "timestamp":
			str = &f.Timestamp
		case "event_type":
			str = &f.EventType
		case "proto":
			str = &f.Proto
		case "packet":
			str = &f.Packet
		case "src_ip":
			if v.isString() {
				f.SrcIP, f.SrcIPSpan = v.text(&f.scratch), f.span(v.raw)
			}
		case "dest_ip":
			if v.isString() {
				f.DestIP, f.DestIPSpan = v.text(&f.scratch), f.span(v.raw)
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
		}
	}
	switch {
	case str != nil && v.isString():
		*str = v.text(&f.scratch)
	case str != nil:
		*str = nil
	case num != nil:
		f.Has &^= bit
		if n, ok := eveInt(v.raw); ok {
			*num = n
			f.Has |= bit
		}
	}
	return true
}

// span returns where raw, a slice of the line, is in it.
func (f *EVEFields) span(raw []byte) [2]int {
	at := cap(f.line) - cap(raw)
	return [2]int{at, at + len(raw)}
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
