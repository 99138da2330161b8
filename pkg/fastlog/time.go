package fastlog

import "time"

// stamp is a fast.log timestamp as written: the sensor's local wall time.
type stamp struct {
	year, mon, day, hour, min, sec, usec int
	yearDigits                           int // 0 (Snort without -y), 2 (Snort -y) or 4 (Suricata)
}

// stampLen is the length of the year-less form MM/DD-HH:MM:SS.uuuuuu.
const stampLen = 21

// scanStamp reads the timestamp at the start of b: MM/DD[/YY|/YYYY]-HH:MM:SS.uuuuuu.
// It returns the number of bytes it used, or 0 if b does not start with one.
// The fraction must have exactly six digits: that is what every writer
// prints, and it is what makes a timestamp cut short detectable.
func scanStamp(b []byte) (stamp, int) {
	var s stamp
	if len(b) < stampLen || !digits2(b, 0) || b[2] != '/' || !digits2(b, 3) {
		return s, 0
	}
	s.mon, s.day = num2(b, 0), num2(b, 3)
	i := 5
	if b[i] == '/' {
		j := i + 1
		for j < len(b) && j-i-1 < 4 && isDigit(b[j]) {
			j++
		}
		n := j - i - 1
		if n != 2 && n != 4 {
			return s, 0
		}
		for k := i + 1; k < j; k++ {
			s.year = s.year*10 + int(b[k]-'0')
		}
		if n == 2 {
			s.year += 2000
		}
		s.yearDigits = n
		i = j
	}
	if len(b)-i < 16 || !isTimeOfDay(b[i:]) {
		return s, 0
	}
	s.hour, s.min, s.sec = num2(b, i+1), num2(b, i+4), num2(b, i+7)
	for k := i + 10; k < i+16; k++ {
		s.usec = s.usec*10 + int(b[k]-'0')
	}
	return s, i + 16
}

// isTimeOfDay reports whether b starts with -HH:MM:SS.uuuuuu (16 bytes).
func isTimeOfDay(b []byte) bool {
	return b[0] == '-' && digits2(b, 1) && b[3] == ':' && digits2(b, 4) && b[6] == ':' &&
		digits2(b, 7) && b[9] == '.' && digits2(b, 10) && digits2(b, 12) && digits2(b, 14)
}

// stampStartBefore returns where a timestamp that ends exactly at end
// starts, or -1. It tries the Suricata form (with a four-digit year) first.
func stampStartBefore(b []byte, end int) int {
	t := end - 16
	if t < 5 || !isTimeOfDay(b[t:end]) {
		return -1
	}
	for _, n := range [...]int{10, 8, 5} { // MM/DD/YYYY, MM/DD/YY, MM/DD
		s := t - n
		if s < 0 {
			continue
		}
		d := b[s:t]
		if !digits2(d, 0) || d[2] != '/' || !digits2(d, 3) {
			continue
		}
		if n > 5 && (d[5] != '/' || !allDigits(d[6:])) {
			continue
		}
		return s
	}
	return -1
}

func (s *stamp) valid() bool {
	if s.mon < 1 || s.mon > 12 || s.day < 1 || s.hour > 23 || s.min > 59 || s.sec > 60 {
		return false
	}
	return s.day <= daysIn(s.mon, s.year)
}

func daysIn(mon, year int) int {
	switch mon {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// inferYear picks the year of a year-less Snort timestamp read at now: this
// year, unless the month lies more than a month ahead, which means the line
// was written last year (a December line read in January).
func inferYear(mon int, now time.Time) int {
	y := now.Year()
	if mon > int(now.Month())+1 {
		y--
	}
	return y
}

// appendEVETime appends s in EVE's layout, 2006-01-02T15:04:05.000000-0700,
// using offset, the zone offset already formatted as +hhmm.
func appendEVETime(dst []byte, s *stamp, offset *[5]byte) []byte {
	dst = append4(dst, s.year)
	dst = append(dst, '-')
	dst = append2(dst, s.mon)
	dst = append(dst, '-')
	dst = append2(dst, s.day)
	dst = append(dst, 'T')
	dst = append2(dst, s.hour)
	dst = append(dst, ':')
	dst = append2(dst, s.min)
	dst = append(dst, ':')
	dst = append2(dst, s.sec)
	dst = append(dst, '.')
	u := s.usec
	dst = append(dst, byte('0'+u/100000), byte('0'+u/10000%10), byte('0'+u/1000%10),
		byte('0'+u/100%10), byte('0'+u/10%10), byte('0'+u%10))
	return append(dst, offset[:]...)
}

// zoneCache remembers the zone offset of the last minute looked up: fast.log
// lines come in time order, and time.Date with a zone costs more than the
// rest of a line. Offsets change only on whole minutes.
type zoneCache struct {
	loc    *time.Location
	key    int64
	offset [5]byte
}

func (z *zoneCache) lookup(loc *time.Location, s *stamp) *[5]byte {
	key := int64(((((s.year*13+s.mon)*32+s.day)*24+s.hour)*60 + s.min))
	if loc == z.loc && key == z.key && z.loc != nil {
		return &z.offset
	}
	_, off := time.Date(s.year, time.Month(s.mon), s.day, s.hour, s.min, 0, 0, loc).Zone()
	z.loc, z.key = loc, key
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	h, m := off/3600, off/60%60
	z.offset = [5]byte{sign, byte('0' + h/10), byte('0' + h%10), byte('0' + m/10), byte('0' + m%10)}
	return &z.offset
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digits2(b []byte, i int) bool { return isDigit(b[i]) && isDigit(b[i+1]) }

func num2(b []byte, i int) int { return int(b[i]-'0')*10 + int(b[i+1]-'0') }

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
}

func append2(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/10%10), byte('0'+n%10))
}

func append4(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/1000%10), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
}
