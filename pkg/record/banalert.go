package record

import (
	"bytes"
	"fmt"
	"math"
	"strconv"

	jsoniter "github.com/json-iterator/go"
)

// rawBanAlert is an alert with block's fields kept as raw JSON, so each is
// checked on its own and a wrong type is reported in the user's words
// rather than the JSON library's.
type rawBanAlert struct {
	SrcIP jsoniter.RawMessage `json:"src_ip"`
	ID    jsoniter.RawMessage `json:"id"`
	Rule  jsoniter.RawMessage `json:"rule"`
	// SrcPrefix is correlate's "src_prefix"; block checks it against
	// src_ip and its own --ipv6-prefix, so a wrong one only loses itself.
	SrcPrefix jsoniter.RawMessage `json:"src_prefix"`
}

type rawBanRule struct {
	ID    jsoniter.RawMessage `json:"id"`
	Level jsoniter.RawMessage `json:"level"`
}

// DecodeBanAlert decodes the fields block uses from one JSON object line
// and ignores every other field. A src_prefix that is not a string is
// dropped (block then computes the prefix itself), not an error. A rule level may be written as any
// integral number (10, 10.0, 1e1) or as a string holding one ("10"); an
// id may be a string or a number. Errors name the field and say what was
// wanted, e.g. "rule.level: want an integer, got 10.5".
func DecodeBanAlert(line []byte) (*Alert, error) {
	var r rawBanAlert
	if err := api.Unmarshal(line, &r); err != nil {
		return nil, ErrNotObject
	}
	src, err := text(r.SrcIP, "src_ip", false)
	if err != nil {
		return nil, err
	}
	id, err := text(r.ID, "id", true)
	if err != nil {
		return nil, err
	}
	a := &Alert{Event: Event{SrcIP: src}, ID: id}
	if p, err := text(r.SrcPrefix, "src_prefix", false); err == nil {
		a.SrcPrefix = p
	}
	if isNull(r.Rule) {
		return a, nil
	}
	if r.Rule[0] != '{' {
		return nil, fmt.Errorf("rule: want an object, got %s", short(r.Rule))
	}
	var rr rawBanRule
	if err := api.Unmarshal(r.Rule, &rr); err != nil {
		return nil, fmt.Errorf("rule: want an object, got %s", short(r.Rule))
	}
	rid, err := text(rr.ID, "rule.id", true)
	if err != nil {
		return nil, err
	}
	level, err := Level(rr.Level)
	if err != nil {
		return nil, err
	}
	a.Rule = &Rule{ID: rid, Level: level}
	return a, nil
}

func isNull(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// text reads a JSON string (or, if numbers is set, a number, kept as
// written) for field; absent or null is "".
func text(raw []byte, field string, numbers bool) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	raw = bytes.TrimSpace(raw)
	if raw[0] == '"' {
		var s string
		if err := api.Unmarshal(raw, &s); err == nil {
			return s, nil
		}
	} else if numbers && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return string(raw), nil
	}
	if numbers {
		return "", fmt.Errorf("%s: want a string or a number, got %s", field, short(raw))
	}
	return "", fmt.Errorf("%s: want a string, got %s", field, short(raw))
}

// Level reads a rule level: an integral JSON number in any notation, or a
// string holding one. Absent or null is 0.
func Level(raw []byte) (int, error) {
	if isNull(raw) {
		return 0, nil
	}
	raw = bytes.TrimSpace(raw)
	num := raw
	if raw[0] == '"' {
		var s string
		if err := api.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("rule.level: want an integer, got %s", short(raw))
		}
		num = bytes.TrimSpace([]byte(s))
	}
	if n, err := strconv.Atoi(string(num)); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || f != math.Trunc(f) || math.IsInf(f, 0) || f > math.MaxInt32 || f < math.MinInt32 {
		return 0, fmt.Errorf("rule.level: want an integer, got %s", short(raw))
	}
	return int(f), nil
}

// short returns raw JSON for a message, cut to 40 bytes.
func short(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "..."
	}
	return string(raw)
}
