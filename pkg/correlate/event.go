package correlate

import (
	"strconv"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/seen"
)

// decoderName is what <decoded_as> compares with: every input record is
// an IDS event, and OSSEC's decoder for snort-fast lines is "snort".
const decoderName = "snort"

// prepare fills ev from the scanned fields of line (all but the parsed
// addresses, which only rules with srcip/dstip need).
func prepare(ev *event, f *record.EventFields, line []byte) {
	ev.IDS = true
	ev.Decoder = decoderName
	ev.src, ev.dst = f.SrcIP, f.DestIP
	if f.FullLog != nil {
		ev.log = f.FullLog
		ev.SetText(stripStamp(f.FullLog))
	} else {
		// (its own buffer: ev.log may still point into an earlier line's
		// bytes, which appending to it would overwrite)
		ev.compact = record.AppendCompact(ev.compact[:0], line)
		ev.log = ev.compact
		ev.SetText(ev.log)
	}
	ev.SigID = nil
	ev.preSet = nil
	if f.HasSig {
		b := ev.sigBuf[:0]
		b = strconv.AppendInt(b, f.GID, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, f.SID, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, f.Rev, 10)
		ev.sigBuf = b
		ev.SigID = b
	}
	ev.ftsKey = seen.NewHash().Add([]byte(decoderName)).Add(ev.SigID).Add(ev.src).Add(ev.dst)
}

// stripStamp returns the log text without its leading timestamp, as OSSEC
// tests rules: Suricata's "MM/DD/YYYY-HH:MM:SS.uuuuuu" or Snort's
// year-less "MM/DD-HH:MM:SS.uuuuuu", with the blanks after it. Text of
// another shape is returned whole.
func stripStamp(s []byte) []byte {
	n := stampLen(s)
	if n == 0 {
		return s
	}
	for n < len(s) && s[n] == ' ' {
		n++
	}
	return s[n:]
}

func stampLen(s []byte) int {
	digits := func(i, n int) bool {
		if i+n > len(s) {
			return false
		}
		for _, c := range s[i : i+n] {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	at := func(i int, c byte) bool { return i < len(s) && s[i] == c }
	if !digits(0, 2) || !at(2, '/') || !digits(3, 2) {
		return 0
	}
	i := 5
	if at(5, '/') && digits(6, 4) {
		i = 10
	}
	// i is at the '-' before the time
	if !at(i, '-') || !digits(i+1, 2) || !at(i+3, ':') || !digits(i+4, 2) || !at(i+6, ':') || !digits(i+7, 2) {
		return 0
	}
	j := i + 9
	if at(j, '.') {
		j++
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
	}
	if j < len(s) && s[j] != ' ' {
		return 0
	}
	return j
}

// parseTime reads an EVE timestamp ("2020-05-14T22:10:17.391373+0000";
// also "Z", "+00:00" and no fraction) as microseconds since the epoch.
func parseTime(b []byte) (int64, bool) {
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
		return slowTime(b)
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 2)
	d, ok3 := num(8, 2)
	h, ok4 := num(11, 2)
	mi, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 {
		return slowTime(b)
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
			return slowTime(b)
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
			return slowTime(b)
		}
		off = oh*3600 + om*60
		if b[i] == '-' {
			off = -off
		}
	case i+6 == len(b) && (b[i] == '+' || b[i] == '-') && b[i+3] == ':':
		oh, ok := num(i+1, 2)
		om, ok2 := num(i+4, 2)
		if !ok || !ok2 {
			return slowTime(b)
		}
		off = oh*3600 + om*60
		if b[i] == '-' {
			off = -off
		}
	default:
		return slowTime(b)
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC).Unix() - int64(off)
	return t*1e6 + int64(us), true
}

func slowTime(b []byte) (int64, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700"} {
		if t, err := time.Parse(layout, string(b)); err == nil {
			return t.UnixMicro(), true
		}
	}
	return 0, false
}
