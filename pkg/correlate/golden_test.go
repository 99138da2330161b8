package correlate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/golden"
	"github.com/quietwatch/quietwatch/pkg/command"
)

// wallClock is the --clock wall time of the golden cases.
func wallClock() time.Time { return time.Date(2020, 5, 14, 22, 10, 17, 0, time.UTC) }

// fixedEnv is the stage's env with the wall clock fixed at wallClock and
// no SIGHUP.
func fixedEnv() *env { return &env{Hooks: command.Hooks{Now: wallClock}} }

// TestGolden runs testdata/correlate/*.txtar: the comment's "flags:" line
// gives the arguments ($REPO is the repository root, $RULES the case's own
// rules.xml section), "exit:" the exit code (default 0); input is fed
// whole, byte by byte and with CRLF line ends, and stdout must equal
// want.jsonl and stderr the stderr section (none: empty), with the case's
// folder written as $DIR.
func TestGolden(t *testing.T) {
	repo, _ := filepath.Abs("../..")
	golden.Run(t, filepath.Join(repo, "testdata", "correlate"), func(t *testing.T, c *golden.Case) {
		dir := t.TempDir()
		rules := filepath.Join(dir, "rules.xml")
		if r, ok := c.Section("rules.xml"); ok {
			if err := os.WriteFile(rules, r, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		args := append([]string{"correlate"}, c.Flags(strings.NewReplacer("$REPO", repo, "$RULES", rules))...)
		input, _ := c.Section("input")
		wantCode := c.Exit(t)
		for _, feed := range golden.Feeds(input) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, feed.Reader(), &stdout, &stderr, fixedEnv())
			if code != wantCode {
				t.Errorf("%s: exit %d, want %d", feed.Name, code, wantCode)
			}
			c.Expect(t, feed, "want.jsonl", stdout.String())
			c.Expect(t, feed, "stderr", strings.ReplaceAll(stderr.String(), dir, "$DIR"))
		}
	})
}
