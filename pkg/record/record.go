// Package record is the one place where quietwatch reads and writes JSON.
//
// Records travel between the stages as JSON Lines: one object per line,
// UTF-8, newline-terminated. Every stage keeps the fields it does not own
// byte for byte, so a record is kept as its raw bytes and a stage appends
// its own keys after the ones it passed through (AppendField) instead of
// re-encoding the whole object.
//
// Reading a stage's input is one pass of one scanner (scan.go, with the
// fast path for lines without escapes in scan_plain.go) that checks the
// line and hands the fields a stage needs to that stage's picker:
// event_fields.go for correlate, eve_fields.go for fastparse's eve.json
// input, mail_fields.go for notify. Writing is by hand where it is hot
// (event_encode.go, alert_encode.go, AppendString) and through the one
// jsoniter configuration below elsewhere.
package record

import (
	"bytes"
	"errors"

	jsoniter "github.com/json-iterator/go"
)

// api is the single JSON configuration of the project: sorted map keys for
// deterministic output, no HTML escaping so log text stays readable.
var api = jsoniter.Config{
	SortMapKeys:            true,
	EscapeHTML:             false,
	ValidateJsonRawMessage: true,
}.Froze()

// Marshal encodes v as compact JSON.
func Marshal(v any) ([]byte, error) { return api.Marshal(v) }

// Unmarshal decodes the JSON in data into v. Unknown fields are ignored.
func Unmarshal(data []byte, v any) error { return api.Unmarshal(data, v) }

// Valid reports whether data is one well-formed JSON value.
func Valid(data []byte) bool { return api.Valid(data) }

// ErrNotObject is returned for a line that is not a JSON object.
var ErrNotObject = errors.New("not a JSON object")

// AppendField returns obj with "key":value added after its last field. obj
// is the raw text of a JSON object; value is already-encoded JSON. The bytes
// of obj before its closing brace are kept exactly, so fields a stage does
// not know survive. The result may share obj's backing array.
func AppendField(obj []byte, key string, value []byte) ([]byte, error) {
	end := len(obj)
	for end > 0 && isSpace(obj[end-1]) {
		end--
	}
	if end < 2 || obj[end-1] != '}' {
		return nil, ErrNotObject
	}
	start := 0
	for start < end && isSpace(obj[start]) {
		start++
	}
	if obj[start] != '{' {
		return nil, ErrNotObject
	}
	body := obj[:end-1]
	empty := len(bytes.TrimSpace(body[start+1:])) == 0
	out := body
	if !empty {
		out = append(out, ',')
	}
	out = AppendString(out, key)
	out = append(out, ':')
	out = append(out, value...)
	out = append(out, '}')
	return out, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
