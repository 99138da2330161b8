package record

import "errors"

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

// eventMaxDepth bounds the nesting of events (see scanner.max): 999
// levels inside the event's object, as correlate has always taken.
const eventMaxDepth = 999

// ScanEvent checks that line is one well-formed JSON object and fills f
// with the fields correlate needs. It returns ErrNotObject for other JSON
// values and ErrBadJSON for malformed text.
func ScanEvent(line []byte, f *EventFields) error {
	return scanEvent(line, f, true)
}

// scanEvent is ScanEvent; fast false keeps to the careful scanner (for
// comparing the two in tests).
func scanEvent(line []byte, f *EventFields, fast bool) error {
	*f = EventFields{scratch: scratchFor(f.scratch, len(line))}
	i := plainWS(line, 0)
	free := escapeFree(line)
	if fast && free && i < len(line) && line[i] == '{' {
		if end := plainObject(line, i, eventMaxDepth, top, f); end < 0 || plainWS(line, end) != len(line) {
			return ErrBadJSON
		}
	} else {
		s := scanner[*EventFields]{b: line, p: f, buf: &f.scratch, max: eventMaxDepth}
		s.ws()
		switch {
		case s.i >= len(s.b):
			return ErrNotObject
		case s.b[s.i] != '{':
			if _, ok := s.value(0, skip); ok && s.end() {
				return ErrNotObject
			}
			return ErrBadJSON
		case !s.object(0, top) || !s.end():
			return ErrBadJSON
		}
	}
	f.HasSig = f.hasGID && f.hasSID && f.hasRev
	return nil
}

// object picks the record's "alert".
func (f *EventFields) object(in kind, key []byte) (kind, bool) {
	if in == top && string(key) == "alert" {
		f.HasAlert = true
		return alertKind, true
	}
	return skip, true
}

func (f *EventFields) value(in kind, key []byte, v val) bool {
	if in == alertKind {
		// the alert's gid, signature_id and rev
		var num *int64
		var has *bool
		switch string(key) {
		case "gid":
			num, has = &f.GID, &f.hasGID
		case "signature_id":
			num, has = &f.SID, &f.hasSID
		case "rev":
			num, has = &f.Rev, &f.hasRev
		default:
			return true
		}
		if n, ok := smallInt(v.raw); ok {
			*num, *has = n, true
		}
		return true
	}
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
	case "rule", "id", "previous_output", "src_prefix":
		f.own(key)
	case "hostname":
		f.HasHostname = true
	}
	if dst != nil && v.isString() {
		*dst = v.text(&f.scratch)
	}
	return true
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
