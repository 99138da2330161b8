package fastparse

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/internal/golden"
)

// goldenDir holds one txtar case per file: see testdata/README.md. The
// comment may say "flags: ..." (--tz UTC unless it names a zone), "exit: N"
// and "noeol" (the input's last line has no newline). An "input.esc"
// section instead of "input" holds Go escapes (\x00, \xff, \r), one
// escaped line per line.
const goldenDir = "../../testdata/fastparse"

func TestGolden(t *testing.T) {
	golden.Run(t, goldenDir, func(t *testing.T, c *golden.Case) {
		flags := c.Flags(nil)
		if !strings.Contains(strings.Join(flags, " "), "--tz") {
			flags = append([]string{"--tz", "UTC"}, flags...)
		}
		input := goldenInput(t, c)
		exit := c.Exit(t)
		for _, feed := range golden.Feeds(input) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"fastparse"}, flags...), feed.Reader(), &stdout, &stderr, &env{})
			if code != exit && !*golden.Update {
				t.Errorf("%s: exit %d, want %d\nstderr:\n%s", feed.Name, code, exit, stderr.String())
			}
			c.Expect(t, feed, "want.jsonl", stdout.String())
			c.Expect(t, feed, "stderr", stderr.String())
		}
	})
}

// goldenInput is the case's input: its "input" section, or "input.esc"
// unescaped, without the last newline when the comment says "noeol".
func goldenInput(t *testing.T, c *golden.Case) []byte {
	t.Helper()
	input, ok := c.Section("input")
	if esc, isEsc := c.Section("input.esc"); isEsc {
		var b bytes.Buffer
		for _, l := range strings.SplitAfter(string(esc), "\n") {
			if l == "" {
				continue
			}
			b.Write(unescape(strings.TrimSuffix(l, "\n")))
			b.WriteByte('\n')
		}
		input, ok = b.Bytes(), true
	}
	if !ok {
		t.Fatal("no input section")
	}
	for _, l := range strings.Split(string(c.Archive.Comment), "\n") {
		if strings.TrimSpace(l) == "noeol" {
			input = bytes.TrimSuffix(input, []byte("\n"))
		}
	}
	return input
}

// unescape replaces \xHH, \r, \t, \n and \\ in s.
func unescape(s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b = append(b, s[i])
			continue
		}
		i++
		switch s[i] {
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'n':
			b = append(b, '\n')
		case 'x':
			if v, err := strconv.ParseUint(s[i+1:min(i+3, len(s))], 16, 8); err == nil && i+3 <= len(s) {
				b = append(b, byte(v))
				i += 2
				continue
			}
			b = append(b, '\\', 'x')
		default:
			b = append(b, s[i])
		}
	}
	return b
}
