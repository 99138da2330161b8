package block

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

var update = flag.Bool("update", false, "rewrite the golden files")

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

// TestGolden runs testdata/block/*.txtar. A case's comment holds a line
// "flags: ..." ($DIR is a fresh directory holding the case's other files);
// sections: input, want.jsonl, and optional stderr and ar.log (the
// --ar-log file, written when the flags name $DIR/ar.log).
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/block/*.txtar")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var flags []string
			for _, l := range strings.Split(string(ar.Comment), "\n") {
				if f, ok := strings.CutPrefix(l, "flags:"); ok {
					flags = strings.Fields(f)
				}
			}
			sec := map[string][]byte{}
			for _, f := range ar.Files {
				sec[f.Name] = f.Data
			}
			variants := []struct {
				name string
				in   func([]byte) io.Reader
			}{
				{"whole", func(b []byte) io.Reader { return bytes.NewReader(b) }},
				{"bytewise", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
				{"crlf", func(b []byte) io.Reader { return bytes.NewReader(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))) }},
			}
			for i, v := range variants {
				dir := t.TempDir()
				for name, data := range sec {
					if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				os.Remove(filepath.Join(dir, "ar.log"))
				args := make([]string, len(flags))
				for j, f := range flags {
					args[j] = strings.ReplaceAll(f, "$DIR", dir)
				}
				code, out, errOut := runBlock(t, testEnv(), v.in(sec["input"]), args...)
				errOut = strings.ReplaceAll(errOut, dir, "$DIR")
				arLog, _ := os.ReadFile(filepath.Join(dir, "ar.log"))
				if code != 0 {
					t.Fatalf("%s: exit %d, stderr:\n%s", v.name, code, errOut)
				}
				if *update && i == 0 {
					for k := range ar.Files {
						switch ar.Files[k].Name {
						case "want.jsonl":
							ar.Files[k].Data = []byte(out)
						case "stderr":
							ar.Files[k].Data = []byte(errOut)
						case "ar.log":
							ar.Files[k].Data = arLog
						}
					}
					if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
						t.Fatal(err)
					}
					sec["want.jsonl"], sec["stderr"] = []byte(out), []byte(errOut)
					if _, ok := sec["ar.log"]; ok {
						sec["ar.log"] = arLog
					}
				}
				if out != string(sec["want.jsonl"]) {
					t.Errorf("%s: stdout:\n%s\nwant:\n%s", v.name, out, sec["want.jsonl"])
				}
				if want, ok := sec["stderr"]; ok && errOut != string(want) {
					t.Errorf("%s: stderr:\n%s\nwant:\n%s", v.name, errOut, want)
				} else if !ok && errOut != "" {
					t.Errorf("%s: stderr:\n%s", v.name, errOut)
				}
				if want, ok := sec["ar.log"]; ok && string(arLog) != string(want) {
					t.Errorf("%s: ar.log:\n%s\nwant:\n%s", v.name, arLog, want)
				}
			}
		})
	}
}
