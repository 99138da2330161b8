package record

// AppendCompact appends the compact form of the JSON text obj (no
// insignificant white space) to dst: the text correlate matches rules
// against for a record without full_log. obj is well-formed (ScanEvent
// said so); an unclosed string is appended unchanged.
//
// (Not encoding/json's Compact: this is the only thing record needed it
// for, and jsoniter is the one JSON library of the non-test code.)
func AppendCompact(dst, obj []byte) []byte {
	n := len(dst)
	in := false // inside a string
	for i := 0; i < len(obj); i++ {
		c := obj[i]
		switch {
		case in:
			dst = append(dst, c)
			if c == '\\' && i+1 < len(obj) {
				i++
				dst = append(dst, obj[i])
			} else if c == '"' {
				in = false
			}
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		default:
			dst = append(dst, c)
			in = c == '"'
		}
	}
	if in {
		return append(dst[:n], obj...)
	}
	return dst
}
