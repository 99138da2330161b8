package notify

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rogpeppe/go-internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixedHooks gives a run a clock that stands still at a fixed time and
// Message-IDs numbered from 1, so whole messages are golden.
func fixedHooks() *hooks {
	n := 0
	return &hooks{
		now: func() time.Time { return time.Date(2026, 11, 28, 21, 0, 0, 0, time.UTC) },
		newID: func(time.Time) string {
			n++
			return fmt.Sprintf("golden.%d@vm", n)
		},
	}
}

// TestGolden runs testdata/notify/*.txtar with --dry-run: the input's
// alerts must give exactly the want.mbox messages, whether the input comes
// whole, byte by byte or with CRLF line ends.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("../../testdata/notify/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var input []byte
			var flags []string
			wantIdx := -1
			stderrIdx := -1
			for i, f := range ar.Files {
				switch f.Name {
				case "input":
					input = f.Data
				case "want.mbox":
					wantIdx = i
				case "stderr":
					stderrIdx = i
				}
			}
			for _, l := range strings.Split(string(ar.Comment), "\n") {
				if rest, ok := strings.CutPrefix(l, "flags:"); ok {
					flags = strings.Fields(rest)
				}
			}
			checkMailLog(t, file, ar, input, flags)
			args := append([]string{"notify", "--dry-run", "--to", "root", "--hostname", "vm"}, flags...)
			feeds := map[string]func() io.Reader{
				"whole": func() io.Reader { return bytes.NewReader(input) },
				"bytes": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(input)) },
				"crlf":  func() io.Reader { return bytes.NewReader(bytes.ReplaceAll(input, []byte("\n"), []byte("\r\n"))) },
			}
			var first []byte
			for _, name := range []string{"whole", "bytes", "crlf"} {
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), args, feeds[name](), &stdout, &stderr, fixedHooks())
				if code != 0 {
					t.Fatalf("%s: exit %d, stderr:\n%s", name, code, stderr.String())
				}
				if name == "whole" {
					first = stdout.Bytes()
					if *update {
						if wantIdx < 0 {
							ar.Files = append(ar.Files, txtar.File{Name: "want.mbox"})
							wantIdx = len(ar.Files) - 1
						}
						ar.Files[wantIdx].Data = stdout.Bytes()
						if stderr.Len() > 0 || stderrIdx >= 0 {
							if stderrIdx < 0 {
								ar.Files = append(ar.Files, txtar.File{Name: "stderr"})
								stderrIdx = len(ar.Files) - 1
							}
							ar.Files[stderrIdx].Data = stderr.Bytes()
						}
						if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
							t.Fatal(err)
						}
						continue
					}
					if wantIdx < 0 {
						t.Fatal("no want.mbox section (run with -update)")
					}
					if got, want := stdout.String(), string(ar.Files[wantIdx].Data); got != want {
						t.Errorf("mbox differs\n--- got ---\n%s\n--- want ---\n%s", got, want)
					}
					var wantErr string
					if stderrIdx >= 0 {
						wantErr = string(ar.Files[stderrIdx].Data)
					}
					if stderr.String() != wantErr {
						t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), wantErr)
					}
					checkMbox(t, stdout.Bytes())
					continue
				}
				if !bytes.Equal(stdout.Bytes(), first) {
					t.Errorf("%s feed: output differs from the whole feed:\n%s", name, stdout.String())
				}
			}
		})
	}
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
func checkMailLog(t *testing.T, file string, ar *txtar.Archive, input []byte, flags []string) {
	t.Helper()
	for _, f := range flags {
		if f == "--max-per-hour" {
			return
		}
	}
	idx := -1
	for i, f := range ar.Files {
		if f.Name == "want.jsonl" {
			idx = i
		}
	}
	args := append([]string{"notify", "--to", "root", "--hostname", "vm", "--spool", t.TempDir()}, flags...)
	h := fixedHooks()
	h.transport = &fakeMTA{}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, bytes.NewReader(input), &stdout, &stderr, h); code != 0 {
		t.Fatalf("mail log run: exit %d: %s", code, stderr.String())
	}
	if *update {
		if idx < 0 {
			ar.Files = append(ar.Files, txtar.File{Name: "want.jsonl"})
			idx = len(ar.Files) - 1
		}
		ar.Files[idx].Data = stdout.Bytes()
		if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if idx < 0 {
		t.Fatal("no want.jsonl section (run with -update)")
	}
	if got, want := stdout.String(), string(ar.Files[idx].Data); got != want {
		t.Errorf("mail log differs\n--- got ---\n%s--- want ---\n%s", got, want)
	}
}
