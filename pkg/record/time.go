package record

import "time"

// TimeLayout is the layout of every quietwatch record's timestamps: Suricata
// EVE's (microseconds, numeric zone offset).
const TimeLayout = "2006-01-02T15:04:05.000000-0700"

// ParseTime reads an EVE timestamp ("2020-05-14T22:10:17.391373+0000";
// also "Z", "+00:00" and no fraction) as microseconds since the epoch.
func ParseTime(b []byte) (int64, bool) {
	num := func(i, n int) (int, bool) {
		if i+n > len(b) {
			return 0, false
		}
		v := 0
		for _, c := range b[i : i+n] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return slowParseTime(b)
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 2)
	d, ok3 := num(8, 2)
	h, ok4 := num(11, 2)
	mi, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 {
		return slowParseTime(b)
	}
	i := 19
	us := 0
	if i < len(b) && b[i] == '.' {
		i++
		digits := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if digits < 6 {
				us = us*10 + int(b[i]-'0')
			}
			digits++
			i++
		}
		if digits == 0 {
			return slowParseTime(b)
		}
		for ; digits < 6; digits++ {
			us *= 10
		}
	}
	off := 0
	switch {
	case i == len(b)-1 && b[i] == 'Z':
	case i+5 == len(b) && (b[i] == '+' || b[i] == '-'):
		oh, ok := num(i+1, 2)
		om, ok2 := num(i+3, 2)
		if !ok || !ok2 {
			return slowParseTime(b)
		}
		off = oh*3600 + om*60
		if b[i] == '-' {
			off = -off
		}
	case i+6 == len(b) && (b[i] == '+' || b[i] == '-') && b[i+3] == ':':
		oh, ok := num(i+1, 2)
		om, ok2 := num(i+4, 2)
		if !ok || !ok2 {
			return slowParseTime(b)
		}
		off = oh*3600 + om*60
		if b[i] == '-' {
			off = -off
		}
	default:
		return slowParseTime(b)
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC).Unix() - int64(off)
	return t*1e6 + int64(us), true
}

func slowParseTime(b []byte) (int64, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700"} {
		if t, err := time.Parse(layout, string(b)); err == nil {
			return t.UnixMicro(), true
		}
	}
	return 0, false
}
