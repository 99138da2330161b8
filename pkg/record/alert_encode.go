package record

import "strconv"

// EncodedRule is a Rule encoded once, all but its firedtimes, for writing
// many alerts of the same rule.
type EncodedRule struct {
	head []byte // from '{' up to the field before firedtimes
	tail []byte // the fields after firedtimes and '}'
}

// EncodeRule encodes r (its FiredTimes is supplied per alert).
func EncodeRule(r *Rule) *EncodedRule {
	e := &EncodedRule{}
	e.head = append(e.head, `{"id":`...)
	e.head = AppendString(e.head, r.ID)
	e.head = append(e.head, `,"level":`...)
	e.head = strconv.AppendInt(e.head, int64(r.Level), 10)
	e.head = append(e.head, `,"description":`...)
	e.head = AppendString(e.head, r.Description)
	if len(r.Groups) > 0 {
		e.head = append(e.head, `,"groups":[`...)
		for i, g := range r.Groups {
			if i > 0 {
				e.head = append(e.head, ',')
			}
			e.head = AppendString(e.head, g)
		}
		e.head = append(e.head, ']')
	}
	if r.Frequency != 0 {
		e.head = append(e.head, `,"frequency":`...)
		e.head = strconv.AppendInt(e.head, int64(r.Frequency), 10)
	}
	if r.Timeframe != 0 {
		e.head = append(e.head, `,"timeframe":`...)
		e.head = strconv.AppendInt(e.head, int64(r.Timeframe), 10)
	}
	if r.Mail != nil {
		if *r.Mail {
			e.tail = append(e.tail, `,"mail":true`...)
		} else {
			e.tail = append(e.tail, `,"mail":false`...)
		}
	}
	e.tail = append(e.tail, '}')
	return e
}

func (e *EncodedRule) appendRule(dst []byte, firedTimes int) []byte {
	dst = append(dst, e.head...)
	if firedTimes != 0 {
		dst = append(dst, `,"firedtimes":`...)
		dst = strconv.AppendInt(dst, int64(firedTimes), 10)
	}
	return append(dst, e.tail...)
}

// AppendAlert appends to dst the alert for event: the event's bytes up to
// its closing brace, unchanged, then "rule" (the encoded rule with the
// given firedtimes, in record.Rule's field order), "id" ("<sec>.<seq>"),
// "previous_output" when prev is not empty, and "hostname" when host is
// not empty. event must be a JSON object (ScanEvent said so).
func (e *EncodedRule) AppendAlert(dst, event []byte, firedTimes int, sec int64, seq uint64, prev [][]byte, host string) ([]byte, error) {
	n := len(dst)
	dst = append(dst, event...)
	// a placeholder value keeps AppendField's checks; it is cut off below
	out, err := AppendField(dst[n:], "rule", []byte("0"))
	if err != nil {
		return dst[:n], err
	}
	dst = append(dst[:n], out[:len(out)-2]...)
	dst = e.appendRule(dst, firedTimes)
	dst = append(dst, `,"id":"`...)
	dst = strconv.AppendInt(dst, sec, 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, '"')
	if len(prev) > 0 {
		dst = append(dst, `,"previous_output":[`...)
		for i, p := range prev {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, p)
		}
		dst = append(dst, ']')
	}
	if host != "" {
		dst = append(dst, `,"hostname":`...)
		dst = AppendString(dst, host)
	}
	return append(dst, '}'), nil
}
