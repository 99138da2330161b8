package notify

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/golden"
	"github.com/quietwatch/quietwatch/pkg/command"
)

// fixedEnv gives a run a clock that stands still at a fixed time and
// Message-IDs numbered from 1, so whole messages are golden.
func fixedEnv() *env {
	n := 0
	return &env{
		Hooks: command.Hooks{Now: func() time.Time { return time.Date(2026, 11, 28, 21, 0, 0, 0, time.UTC) }},
		newID: func(time.Time) string {
			n++
			return fmt.Sprintf("golden.%d@vm", n)
		},
	}
}

// TestGolden runs testdata/notify/*.txtar with --dry-run: the input's
// alerts must give exactly the want.mbox messages (and stderr), whether
// the input comes whole, byte by byte or with CRLF line ends.
func TestGolden(t *testing.T) {
	golden.Run(t, "../../testdata/notify", func(t *testing.T, c *golden.Case) {
		input, _ := c.Section("input")
		flags := c.Flags(nil)
		feeds := golden.Feeds(input)
		checkMailLog(t, c, feeds[0], input, flags)
		args := append([]string{"notify", "--dry-run", "--to", "root", "--hostname", "vm"}, flags...)
		for _, feed := range feeds {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, feed.Reader(), &stdout, &stderr, fixedEnv())
			if want := c.Exit(t); code != want {
				t.Fatalf("%s: exit %d, want %d; stderr:\n%s", feed.Name, code, want, stderr.String())
			}
			c.Expect(t, feed, "want.mbox", stdout.String())
			c.Expect(t, feed, "stderr", stderr.String())
			if feed.First() {
				checkMbox(t, stdout.Bytes())
			}
		}
	})
}

// checkMbox checks what every message must satisfy whatever the input:
// only known headers, no line over 998 bytes, only 7-bit bytes.
func checkMbox(t *testing.T, mbox []byte) {
	t.Helper()
	known := map[string]bool{"From": true, "To": true, "Date": true, "Message-ID": true, "Subject": true,
		"Auto-Submitted": true, "X-Quietwatch-Alerts": true, "MIME-Version": true, "Content-Type": true,
		"Content-Transfer-Encoding": true}
	inHeader := false
	for i, line := range strings.Split(string(mbox), "\n") {
		if len(line) > 998 {
			t.Errorf("line %d: %d bytes", i+1, len(line))
		}
		for _, c := range []byte(line) {
			if c >= 0x80 || (c < 0x20 && c != '\t') {
				t.Errorf("line %d: byte %#x: %q", i+1, c, line)
				break
			}
		}
		switch {
		case strings.HasPrefix(line, "From ") && !inHeader:
			inHeader = true
		case inHeader && line == "":
			inHeader = false
		case inHeader && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
		case inHeader:
			name, _, ok := strings.Cut(line, ":")
			if !ok || !known[name] {
				t.Errorf("line %d: unexpected header line %q", i+1, line)
			}
		}
	}
}

// checkMailLog runs a case for real (a fake MTA that accepts everything, a
// spool in a temporary directory) and compares the mail log records on
// stdout with the want.jsonl section. Cases with an hourly limit have none:
// there the order of "queued" and "sent" records depends on timing (see
// TestHourlyLimit for those).
func checkMailLog(t *testing.T, c *golden.Case, feed golden.Feed, input []byte, flags []string) {
	t.Helper()
	if slices.Contains(flags, "--max-per-hour") {
		return
	}
	args := append([]string{"notify", "--to", "root", "--hostname", "vm", "--spool", t.TempDir()}, flags...)
	e := fixedEnv()
	e.transport = &fakeMTA{}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, bytes.NewReader(input), &stdout, &stderr, e); code != 0 {
		t.Fatalf("mail log run: exit %d: %s", code, stderr.String())
	}
	c.Expect(t, feed, "want.jsonl", stdout.String())
}
