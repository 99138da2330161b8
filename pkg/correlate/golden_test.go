package correlate

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/quietwatch/quietwatch/pkg/command"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// wallClock is the --clock wall time of the golden cases.
func wallClock() time.Time { return time.Date(2020, 5, 14, 22, 10, 17, 0, time.UTC) }

// fixedEnv is the stage's env with the wall clock fixed at wallClock and
// no SIGHUP.
func fixedEnv() *env { return &env{Hooks: command.Hooks{Now: wallClock}} }

// TestGolden runs testdata/correlate/*.txtar: the comment's "flags:" line
// gives the arguments ($REPO is the repository root, $RULES the case's own
// rules.xml section), "exit:" the exit code (default 0), input is fed whole, byte by byte and with CRLF line
// ends, and stdout must equal want.jsonl (and stderr the stderr section,
// when there is one).
func TestGolden(t *testing.T) {
	repo, _ := filepath.Abs("../..")
	files, _ := filepath.Glob(filepath.Join(repo, "testdata", "correlate", "*.txtar"))
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sec := map[string][]byte{}
			for _, f := range ar.Files {
				sec[f.Name] = f.Data
			}
			var args []string
			wantCode := 0
			for _, l := range strings.Split(string(ar.Comment), "\n") {
				if rest, ok := strings.CutPrefix(l, "flags:"); ok {
					args = strings.Fields(rest)
				}
				if rest, ok := strings.CutPrefix(l, "exit:"); ok {
					if wantCode, err = strconv.Atoi(strings.TrimSpace(rest)); err != nil {
						t.Fatalf("bad exit line %q", l)
					}
				}
			}
			dir := t.TempDir()
			if r, ok := sec["rules.xml"]; ok {
				if err := os.WriteFile(filepath.Join(dir, "rules.xml"), r, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for i, a := range args {
				a = strings.ReplaceAll(a, "$REPO", repo)
				args[i] = strings.ReplaceAll(a, "$RULES", filepath.Join(dir, "rules.xml"))
			}
			input := sec["input"]
			runCase := func(in []byte, byteByByte bool) (string, string, int) {
				var stdout, stderr bytes.Buffer
				r := bytes.NewReader(in)
				var rd interface{ Read([]byte) (int, error) } = r
				if byteByByte {
					rd = iotest.OneByteReader(r)
				}
				code := run(context.Background(), append([]string{"correlate"}, args...), rd, &stdout, &stderr, fixedEnv())
				return stdout.String(), strings.ReplaceAll(stderr.String(), dir, "$DIR"), code
			}
			out, errOut, code := runCase(input, false)
			if *update {
				for i := range ar.Files {
					switch ar.Files[i].Name {
					case "want.jsonl":
						ar.Files[i].Data = []byte(out)
					case "stderr":
						ar.Files[i].Data = []byte(errOut)
					}
				}
				if _, ok := sec["want.jsonl"]; !ok {
					ar.Files = append(ar.Files, txtar.File{Name: "want.jsonl", Data: []byte(out)})
				}
				if _, ok := sec["stderr"]; !ok && errOut != "" {
					ar.Files = append(ar.Files, txtar.File{Name: "stderr", Data: []byte(errOut)})
				}
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if code != wantCode {
				t.Errorf("exit %d, want %d", code, wantCode)
			}
			check := func(how, out, errOut string) {
				t.Helper()
				if want := string(sec["want.jsonl"]); out != want {
					t.Errorf("%s: stdout differs:\n%s", how, diffLines(out, want))
				}
				if want, ok := sec["stderr"]; ok && errOut != string(want) {
					t.Errorf("%s: stderr:\n%s\nwant:\n%s", how, errOut, want)
				} else if !ok && errOut != "" {
					t.Errorf("%s: unexpected stderr:\n%s", how, errOut)
				}
			}
			check("whole", out, errOut)
			out, errOut, _ = runCase(input, true)
			check("byte by byte", out, errOut)
			crlf := bytes.ReplaceAll(input, []byte("\n"), []byte("\r\n"))
			out, errOut, _ = runCase(crlf, false)
			check("CRLF", out, errOut)
		})
	}
}

func diffLines(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n got  " + gl + "\n want " + wl + "\n")
		}
	}
	return b.String()
}
