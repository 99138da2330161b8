package follow

import "testing"

// FuzzParsePosition: a position file's text never crashes the parser, and
// what it accepts it writes back the same.
func FuzzParsePosition(f *testing.F) {
	f.Add("quietwatch-position 1 dev=2049 ino=12 offset=300 line=2 tail=0a41")
	f.Add("quietwatch-position 1 dev=0 ino=0 offset=0 line=0 tail=")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		q, err := ParsePosition(p.String())
		if err != nil || !q.Equal(p) {
			t.Fatalf("%q: round trip %v %v", s, q, err)
		}
	})
}
