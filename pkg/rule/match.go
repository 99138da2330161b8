package rule

import (
	"bytes"
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
}

type matchAlt struct {
	lit        []byte // lower case
	start, end bool
}

// CompileMatch compiles an OSSEC match pattern. It fails only on an empty
// pattern or an empty alternative, which OSSEC would accept and match
// everything with: almost always a typo.
func CompileMatch(pattern string) (*Match, error) {
	m := &Match{src: pattern}
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

// LowerASCII appends s to dst with ASCII letters lower-cased, as OSSEC
// compares (bytes >= 0x80 are left alone).
func LowerASCII(dst, s []byte) []byte {
	n := len(dst)
	dst = append(dst, s...)
	for i := n; i < len(dst); i++ {
		if c := dst[i]; 'A' <= c && c <= 'Z' {
			dst[i] = c + 'a' - 'A'
		}
	}
	return dst
}
