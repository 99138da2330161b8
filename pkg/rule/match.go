package rule

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// Match is a compiled OSSEC <match> pattern: a case-insensitive literal
// substring test with alternatives separated by '|', each of which may be
// anchored with a leading '^' and/or a trailing '$'. Every other character
// is literal, so "[Priority: 1]" matches "[priority: 1]" and not
// "[Priority: 10]".
type Match struct {
	src  string
	alts []matchAlt
	// fold: every unanchored alternative starts with a non-letter, so
	// MatchFold can find it without a lower-cased copy of the text.
	fold bool
}

type matchAlt struct {
	lit        []byte // lower case
	start, end bool
}

// CompileMatch compiles an OSSEC match pattern. It fails only on an empty
// pattern or an empty alternative, which OSSEC would accept and match
// everything with: almost always a typo.
func CompileMatch(pattern string) (*Match, error) {
	m := &Match{src: pattern, fold: true}
	for _, alt := range strings.Split(pattern, "|") {
		a := matchAlt{}
		if strings.HasPrefix(alt, "^") {
			a.start = true
			alt = alt[1:]
		}
		if strings.HasSuffix(alt, "$") {
			a.end = true
			alt = alt[:len(alt)-1]
		}
		if alt == "" && !a.start && !a.end {
			return nil, errorf("empty alternative in match pattern %q", pattern)
		}
		a.lit = []byte(strings.ToLower(alt))
		if !a.start && !a.end && isLetter(a.lit[0]) {
			m.fold = false
		}
		m.alts = append(m.alts, a)
	}
	return m, nil
}

// String returns the pattern as written.
func (m *Match) String() string { return m.src }

// MatchLower reports whether lower, a text already lower-cased with
// LowerASCII, matches.
func (m *Match) MatchLower(lower []byte) bool {
	for i := range m.alts {
		a := &m.alts[i]
		switch {
		case a.start && a.end:
			if bytes.Equal(lower, a.lit) {
				return true
			}
		case a.start:
			if bytes.HasPrefix(lower, a.lit) {
				return true
			}
		case a.end:
			if bytes.HasSuffix(lower, a.lit) {
				return true
			}
		default:
			if bytes.Contains(lower, a.lit) {
				return true
			}
		}
	}
	return false
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// CanFold reports whether MatchFold may be used.
func (m *Match) CanFold() bool { return m.fold }

// MatchFold is MatchLower on text as it is (not lower-cased); only for a
// Match whose CanFold is true.
func (m *Match) MatchFold(text []byte) bool {
	for i := range m.alts {
		a := &m.alts[i]
		n := len(a.lit)
		switch {
		case a.start && a.end:
			if len(text) == n && equalFold(text, a.lit) {
				return true
			}
		case a.start:
			if len(text) >= n && equalFold(text[:n], a.lit) {
				return true
			}
		case a.end:
			if len(text) >= n && equalFold(text[len(text)-n:], a.lit) {
				return true
			}
		default:
			if indexFold(text, a.lit) >= 0 {
				return true
			}
		}
	}
	return false
}

// indexFold finds lit (lower case, not starting with a letter) in s,
// ignoring ASCII case.
func indexFold(s, lit []byte) int {
	c0 := lit[0]
	last := len(s) - len(lit)
	for i := 0; i <= last; i++ {
		j := bytes.IndexByte(s[i:last+1], c0)
		if j < 0 {
			return -1
		}
		i += j
		if equalFold(s[i:i+len(lit)], lit) {
			return i
		}
	}
	return -1
}

// equalFold compares s with lower, already lower case, ignoring ASCII case.
func equalFold(s, lower []byte) bool {
	for i, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// LowerASCII appends s to dst with ASCII letters lower-cased, as OSSEC
// compares (bytes >= 0x80 are left alone).
func LowerASCII(dst, s []byte) []byte {
	n := len(dst)
	dst = append(dst, s...)
	i := n
	// eight bytes at a time: set 0x20 in every byte from 'A' to 'Z'
	for ; i+8 <= len(dst); i += 8 {
		x := binary.LittleEndian.Uint64(dst[i:])
		h := x & 0x7f7f7f7f7f7f7f7f
		geA := h + 0x0101010101010101*(0x80-'A')
		gtZ := h + 0x0101010101010101*(0x7f-'Z')
		upper := (geA &^ gtZ) &^ x & 0x8080808080808080
		binary.LittleEndian.PutUint64(dst[i:], x|upper>>2)
	}
	for ; i < len(dst); i++ {
		if c := dst[i]; 'A' <= c && c <= 'Z' {
			dst[i] = c + 'a' - 'A'
		}
	}
	return dst
}
