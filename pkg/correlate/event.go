package correlate

import (
	"strconv"

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
