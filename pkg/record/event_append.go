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
		if a.Severity != 0 {
			dst = append(dst, `,"severity":`...)
			dst = strconv.AppendInt(dst, int64(a.Severity), 10)
		}
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

// special8 reports whether one of the 8 bytes in x is below 0x20, a quote,
// a backslash or not ASCII: the byte's high bit is set in the result.
func special8(x uint64) bool {
	q, b := x^(lsb*'"'), x^(lsb*'\\')
	return ((x-lsb*0x20)&^x|(q-lsb)&^q|(b-lsb)&^b|x)&msb != 0
}

// appendEVEString appends s as a JSON string escaped exactly as the
// project's jsoniter configuration escapes it (control characters, quote
// and backslash; DEL, U+2028 and HTML characters stay literal), so
// AppendJSON matches Marshal byte for byte. Invalid UTF-8 becomes U+FFFD.
func appendEVEString(dst []byte, s string, plain bool) []byte {
	dst = append(dst, '"')
	if plain {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		// Skip eight plain ASCII bytes at a time: log text is mostly that.
		for i+8 <= len(s) {
			w := s[i : i+8]
			x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
				uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
			if special8(x) {
				break
			}
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)
