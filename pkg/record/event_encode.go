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

// AppendJSONVerbatim is AppendJSON for an event whose strings are all
// Verbatim: it copies them without looking for bytes to escape. fastparse checks its
// input line once (every string of its events is a piece of the line or
// text it made) instead of every string of every event.
func (e *Event) AppendJSONVerbatim(dst []byte) []byte { return e.appendJSON(dst, true) }

func (e *Event) appendJSON(dst []byte, verbatim bool) []byte {
	dst = append(dst, `{"timestamp":`...)
	dst = appendEVEString(dst, e.Timestamp, verbatim)
	dst = appendStringField(dst, `,"event_type":`, e.EventType, verbatim)
	dst = appendStringField(dst, `,"src_ip":`, e.SrcIP, verbatim)
	dst = appendIntPtrField(dst, `,"src_port":`, e.SrcPort)
	dst = appendStringField(dst, `,"dest_ip":`, e.DestIP, verbatim)
	dst = appendIntPtrField(dst, `,"dest_port":`, e.DestPort)
	dst = appendStringField(dst, `,"proto":`, e.Proto, verbatim)
	dst = appendIntPtrField(dst, `,"icmp_type":`, e.ICMPType)
	dst = appendIntPtrField(dst, `,"icmp_code":`, e.ICMPCode)
	if a := e.Alert; a != nil {
		dst = append(dst, `,"alert":{"action":`...)
		dst = appendEVEString(dst, a.Action, verbatim)
		dst = appendStringField(dst, `,"fast_action":`, a.FastAction, verbatim)
		dst = append(dst, `,"gid":`...)
		dst = strconv.AppendInt(dst, int64(a.GID), 10)
		dst = append(dst, `,"signature_id":`...)
		dst = strconv.AppendInt(dst, int64(a.SignatureID), 10)
		dst = append(dst, `,"rev":`...)
		dst = strconv.AppendInt(dst, int64(a.Rev), 10)
		dst = append(dst, `,"signature":`...)
		dst = appendEVEString(dst, a.Signature, verbatim)
		dst = appendStringField(dst, `,"category":`, a.Category, verbatim)
		dst = appendIntPtrField(dst, `,"severity":`, a.Severity)
		dst = append(dst, '}')
	}
	dst = appendStringField(dst, `,"full_log":`, e.FullLog, verbatim)
	dst = appendStringField(dst, `,"location":`, e.Location, verbatim)
	return append(dst, '}')
}

// appendStringField appends key and s unless s is empty (omitempty).
func appendStringField(dst []byte, key, s string, verbatim bool) []byte {
	if s == "" {
		return dst
	}
	return appendEVEString(append(dst, key...), s, verbatim)
}

// appendIntPtrField appends key and *p unless p is nil (omitempty).
func appendIntPtrField(dst []byte, key string, p *int) []byte {
	if p == nil {
		return dst
	}
	return strconv.AppendInt(append(dst, key...), int64(*p), 10)
}

// Verbatim reports whether s goes into a JSON string as it is: it holds
// only printable ASCII other than '"' and '\\' (DEL included, as Marshal
// keeps it).
func Verbatim[S ~string | ~[]byte](s S) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if escapeMask(load8s(s[i:i+8])) != 0 {
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

// appendEVEString appends s as a JSON string (AppendString); verbatim says the
// caller knows s needs no escaping, which saves the scan.
func appendEVEString(dst []byte, s string, verbatim bool) []byte {
	if verbatim {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	return AppendString(dst, s)
}
