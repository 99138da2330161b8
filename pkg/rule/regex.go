package rule

import (
	"regexp"
	"strings"
)

// Regex is a compiled OSSEC <regex> pattern. OSSEC's dialect differs from
// RE2: \w is [A-Za-z0-9@_-], \s a space only, \p punctuation, \. any
// character; '.', '[', ']', '{', '}', '+', '?' and '*' are literal except
// that '+' and '*' right after a \x class quantify it; '^', '$', '|', '('
// and ')' keep their usual meaning. Matching is case-insensitive. The
// pattern is translated to an equivalent Go regexp once.
type Regex struct {
	src string
	re  *regexp.Regexp
}

var regexClasses = map[byte]string{
	'w': `[A-Za-z0-9@_\-]`,
	'W': `[^A-Za-z0-9@_\-]`,
	'd': `[0-9]`,
	'D': `[^0-9]`,
	's': ` `,
	'S': `[^ ]`,
	't': `\t`,
	'p': `[()*+,\-.:;<=>?\[\]!"'#$%&|{}]`,
	'.': `(?s:.)`,
}

// Bounds on a regex's work, so one event cannot hold correlate for
// minutes (a 64 KiB pattern against a 1 MiB log took over ten; Go's
// regexp is linear, but in the pattern's size times the text's). With
// both, the worst pattern takes about a tenth of a second per event.
const (
	// MaxRegexLen is the longest <regex> accepted, as OSSEC's own
	// os_regex limit (2048).
	MaxRegexLen = 2048
	// MaxRegexText is how much of a text a <regex> is matched against:
	// its first 8 KiB (Suricata cuts its fast.log lines at 2 KiB, OSSEC
	// reads 6 KiB of a log); what follows is not seen by any <regex>.
	MaxRegexText = 8 << 10
)

// CompileRegex translates and compiles an OSSEC regex.
func CompileRegex(pattern string) (*Regex, error) {
	if len(pattern) > MaxRegexLen {
		return nil, errorf("regex %q... is %d bytes long, more than %d", pattern[:32], len(pattern), MaxRegexLen)
	}
	var b strings.Builder
	b.WriteString("(?i)")
	depth := 0
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch c {
		case '\\':
			if i+1 >= len(pattern) {
				return nil, errorf("regex %q ends with a lone backslash", pattern)
			}
			i++
			e := pattern[i]
			if cls, ok := regexClasses[e]; ok {
				b.WriteString(cls)
				if i+1 < len(pattern) && (pattern[i+1] == '+' || pattern[i+1] == '*') {
					i++
					b.WriteByte(pattern[i])
				}
				continue
			}
			switch e {
			case '$', '(', ')', '\\', '|', '<', '>', '^':
				b.WriteString(regexp.QuoteMeta(string(e)))
			default:
				return nil, errorf("regex %q: unknown escape \\%c", pattern, e)
			}
		case '(':
			depth++
			b.WriteByte('(')
		case ')':
			if depth == 0 {
				return nil, errorf("regex %q: unbalanced ')'", pattern)
			}
			depth--
			b.WriteByte(')')
		case '^', '$', '|':
			b.WriteByte(c)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	if depth != 0 {
		return nil, errorf("regex %q: unbalanced '('", pattern)
	}
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, errorf("regex %q: %v", pattern, err)
	}
	return &Regex{src: pattern, re: re}, nil
}

// String returns the pattern as written.
func (r *Regex) String() string { return r.src }

// Match reports whether text, up to its first MaxRegexText bytes, matches.
func (r *Regex) Match(text []byte) bool {
	if len(text) > MaxRegexText {
		text = text[:MaxRegexText]
	}
	return r.re.Match(text)
}
