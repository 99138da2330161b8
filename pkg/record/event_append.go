package record

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends e as one compact JSON object to dst and returns the
// extended slice. It writes the same bytes as Marshal(e) (field order,
// omitempty, string escaping) without reflection or allocation, so
// fastparse can encode a million events a second into one reused buffer.
//
// The one difference: Marshal copies invalid UTF-8 through unchanged, while
// AppendJSON replaces each invalid byte with U+FFFD so the output is always
// valid UTF-8. fastparse never hands it invalid UTF-8.
func (e *Event) AppendJSON(dst []byte) []byte { return e.appendJSON(dst, false) }

// AppendJSONPlain is AppendJSON for an event whose strings are all Plain:
// it copies them without looking for bytes to escape. fastparse checks its
// input line once (every string of its events is a piece of the line or
// text it made) instead of every string of every event.
func (e *Event) AppendJSONPlain(dst []byte) []byte { return e.appendJSON(dst, true) }

func (e *Event) appendJSON(dst []byte, plain bool) []byte {
	dst = append(dst, `{"timestamp":`...)
	dst = appendEVEString(dst, e.Timestamp, plain)
	dst = appendStringField(dst, `,"event_type":`, e.EventType, plain)
	dst = appendStringField(dst, `,"src_ip":`, e.SrcIP, plain)
	dst = appendIntPtrField(dst, `,"src_port":`, e.SrcPort)
	dst = appendStringField(dst, `,"dest_ip":`, e.DestIP, plain)
	dst = appendIntPtrField(dst, `,"dest_port":`, e.DestPort)
	dst = appendStringField(dst, `,"proto":`, e.Proto, plain)
	dst = appendIntPtrField(dst, `,"icmp_type":`, e.ICMPType)
	dst = appendIntPtrField(dst, `,"icmp_code":`, e.ICMPCode)
	if a := e.Alert; a != nil {
		dst = append(dst, `,"alert":{"action":`...)
		dst = appendEVEString(dst, a.Action, plain)
		dst = appendStringField(dst, `,"fast_action":`, a.FastAction, plain)
		dst = append(dst, `,"gid":`...)
		dst = strconv.AppendInt(dst, int64(a.GID), 10)
		dst = append(dst, `,"signature_id":`...)
		dst = strconv.AppendInt(dst, int64(a.SignatureID), 10)
		dst = append(dst, `,"rev":`...)
		dst = strconv.AppendInt(dst, int64(a.Rev), 10)
		dst = append(dst, `,"signature":`...)
		dst = appendEVEString(dst, a.Signature, plain)
		dst = appendStringField(dst, `,"category":`, a.Category, plain)
		dst = appendIntPtrField(dst, `,"severity":`, a.Severity)
		dst = append(dst, '}')
	}
	dst = appendStringField(dst, `,"full_log":`, e.FullLog, plain)
	dst = appendStringField(dst, `,"location":`, e.Location, plain)
	return append(dst, '}')
}

// appendStringField appends key and s unless s is empty (omitempty).
func appendStringField(dst []byte, key, s string, plain bool) []byte {
	if s == "" {
		return dst
	}
	return appendEVEString(append(dst, key...), s, plain)
}

// appendIntPtrField appends key and *p unless p is nil (omitempty).
func appendIntPtrField(dst []byte, key string, p *int) []byte {
	if p == nil {
		return dst
	}
	return strconv.AppendInt(append(dst, key...), int64(*p), 10)
}

// Plain reports whether s holds only bytes a JSON string keeps as they
// are: printable ASCII other than '"' and '\\' (DEL included, as Marshal
// keeps it).
func Plain[S ~string | ~[]byte](s S) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		if special8(x) {
			return false
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendEVEString appends s as a JSON string (AppendString); plain says the
// caller knows s needs no escaping, which saves the scan.
func appendEVEString(dst []byte, s string, plain bool) []byte {
	if plain {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	return AppendString(dst, s)
}
