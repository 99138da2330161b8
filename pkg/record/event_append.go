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
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"timestamp":`...)
	dst = appendEVEString(dst, e.Timestamp)
	dst = appendStringField(dst, `,"event_type":`, e.EventType)
	dst = appendStringField(dst, `,"src_ip":`, e.SrcIP)
	dst = appendIntPtrField(dst, `,"src_port":`, e.SrcPort)
	dst = appendStringField(dst, `,"dest_ip":`, e.DestIP)
	dst = appendIntPtrField(dst, `,"dest_port":`, e.DestPort)
	dst = appendStringField(dst, `,"proto":`, e.Proto)
	dst = appendIntPtrField(dst, `,"icmp_type":`, e.ICMPType)
	dst = appendIntPtrField(dst, `,"icmp_code":`, e.ICMPCode)
	if a := e.Alert; a != nil {
		dst = append(dst, `,"alert":{"action":`...)
		dst = appendEVEString(dst, a.Action)
		dst = appendStringField(dst, `,"fast_action":`, a.FastAction)
		dst = append(dst, `,"gid":`...)
		dst = strconv.AppendInt(dst, int64(a.GID), 10)
		dst = append(dst, `,"signature_id":`...)
		dst = strconv.AppendInt(dst, int64(a.SignatureID), 10)
		dst = append(dst, `,"rev":`...)
		dst = strconv.AppendInt(dst, int64(a.Rev), 10)
		dst = append(dst, `,"signature":`...)
		dst = appendEVEString(dst, a.Signature)
		dst = appendStringField(dst, `,"category":`, a.Category)
		if a.Severity != 0 {
			dst = append(dst, `,"severity":`...)
			dst = strconv.AppendInt(dst, int64(a.Severity), 10)
		}
		dst = append(dst, '}')
	}
	dst = appendStringField(dst, `,"full_log":`, e.FullLog)
	dst = appendStringField(dst, `,"location":`, e.Location)
	return append(dst, '}')
}

// appendStringField appends key and s unless s is empty (omitempty).
func appendStringField(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendEVEString(append(dst, key...), s)
}

// appendIntPtrField appends key and *p unless p is nil (omitempty).
func appendIntPtrField(dst []byte, key string, p *int) []byte {
	if p == nil {
		return dst
	}
	return strconv.AppendInt(append(dst, key...), int64(*p), 10)
}

// appendEVEString appends s as a JSON string escaped exactly as the
// project's jsoniter configuration escapes it (control characters, quote
// and backslash; DEL, U+2028 and HTML characters stay literal), so
// AppendJSON matches Marshal byte for byte. Invalid UTF-8 becomes U+FFFD.
func appendEVEString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip eight plain ASCII bytes at a time: log text is mostly that.
		for i+8 <= len(s) && plain8(s[i:i+8]) {
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

// plain8 reports whether none of the 8 bytes needs escaping or UTF-8
// checking: no control character, quote, backslash or non-ASCII byte.
func plain8(s string) bool {
	_ = s[7]
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	ctl := (x - lsb*0x20) & ^x   // a byte < 0x20 (or >= 0x80: caught below)
	quote := (x ^ lsb*'"') - lsb // a zero byte where x had '"'
	quote &= ^(x ^ lsb*'"')
	bslash := (x ^ lsb*'\\') - lsb
	bslash &= ^(x ^ lsb*'\\')
	return (ctl|quote|bslash|x)&msb == 0
}
