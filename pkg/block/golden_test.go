package block

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quietwatch/quietwatch/internal/golden"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// testEnv is block's world in a synctest bubble: the bubble's clock (it
// starts at 2000-01-01 00:00:00 UTC and moves only when every goroutine
// waits, so the reaper's timers run at once and exactly), a fixed set of
// own addresses and a fixed program path.
func testEnv() *env {
	return &env{
		Hooks: command.Hooks{Now: func() time.Time { return time.Now().UTC() }},
		ownAddrs: func() ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("198.51.100.44"), netip.MustParseAddr("2001:db8::44"), netip.MustParseAddr("127.0.0.1")}, nil
		},
		backend:   testBackend,
		program:   "/usr/local/bin/block",
		stateWait: 10 * time.Millisecond,
	}
}

// testBackend is firewall.New, except that iptables, ipset and nftables are refused:
// in-process tests run in the test machine's own network namespace, whose
// firewall they must never touch (a subcommand with no settings in its
// state falls back to --backend's default, iptables). Tests that need them
// run the binary in a namespace (realfw_linux_test.go).
func testBackend(name string, cfg firewall.Config) (firewall.Backend, error) {
	if name == "iptables" || name == "ipset" || name == "nftables" {
		if err := firewall.CheckChain(cfg.Chain); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: refused in an in-process test (the host's own firewall)", name)
	}
	return firewall.New(name, cfg)
}

// runBlock runs block with args on stdin in a synctest bubble and returns
// its exit code, stdout and stderr.
func runBlock(t *testing.T, e *env, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		var out, errb bytes.Buffer
		code = command.Run(context.Background(), newApp(e), append([]string{"block"}, args...), stdin, &out, &errb)
		stdout, stderr = out.String(), errb.String()
	})
	return code, stdout, stderr
}

// TestGolden runs testdata/block/*.txtar (internal/golden: input fed
// whole, byte by byte and with CRLF line ends). A case's comment holds a
// line "flags: ..." ($DIR is a fresh directory holding the case's other
// sections as files); sections: input, want.jsonl, and optional stderr and
// ar.log (the --ar-log file, written when the flags name $DIR/ar.log).
func TestGolden(t *testing.T) {
	golden.Run(t, "../../testdata/block", func(t *testing.T, c *golden.Case) {
		input, _ := c.Section("input")
		for _, feed := range golden.Feeds(input) {
			dir := t.TempDir()
			for _, f := range c.Archive.Files {
				if f.Name == "ar.log" {
					continue // block writes it
				}
				if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errOut := runBlock(t, testEnv(), feed.Reader(), c.Flags(strings.NewReplacer("$DIR", dir))...)
			errOut = strings.ReplaceAll(errOut, dir, "$DIR")
			if want := c.Exit(t); code != want {
				t.Fatalf("%s: exit %d, want %d; stderr:\n%s", feed.Name, code, want, errOut)
			}
			arLog, _ := os.ReadFile(filepath.Join(dir, "ar.log"))
			c.Expect(t, feed, "want.jsonl", out)
			c.Expect(t, feed, "stderr", errOut)
			c.Expect(t, feed, "ar.log", string(arLog))
		}
	})
}
