package fastparse

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/rogpeppe/go-internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/fastparse")

// goldenDir holds one txtar case per file: see testdata/README.md. The
// comment may say "flags: ..." (--tz UTC unless it names a zone), "exit: N"
// and "noeol" (the input's last line has no newline). An "input.esc"
// section instead of "input" holds Go escapes (\x00, \xff, \r), one
// escaped line per line.
const goldenDir = "../../testdata/fastparse"

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			a, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c := parseCase(t, a)
			modes := []struct {
				name  string
				input func() io.Reader
			}{
				{"whole", func() io.Reader { return bytes.NewReader(c.input) }},
				{"bytewise", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(c.input)) }},
			}
			if !bytes.Contains(c.input, []byte("\r")) {
				crlf := bytes.ReplaceAll(c.input, []byte("\n"), []byte("\r\n"))
				modes = append(modes, struct {
					name  string
					input func() io.Reader
				}{"crlf", func() io.Reader { return bytes.NewReader(crlf) }})
			}
			for _, m := range modes {
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), append([]string{"fastparse"}, c.flags...), m.input(), &stdout, &stderr, &env{})
				if *update && m.name == "whole" {
					setSection(a, "want.jsonl", stdout.Bytes())
					if stderr.Len() > 0 || section(a, "stderr") != nil {
						setSection(a, "stderr", stderr.Bytes())
					}
					if err := os.WriteFile(file, txtar.Format(a), 0o644); err != nil {
						t.Fatal(err)
					}
					c = parseCase(t, a)
					continue
				}
				if code != c.exit {
					t.Errorf("%s: exit %d, want %d\nstderr:\n%s", m.name, code, c.exit, stderr.String())
				}
				if got := stdout.String(); got != string(c.want) {
					t.Errorf("%s: stdout:\n%s\nwant:\n%s", m.name, got, c.want)
				}
				if c.stderr != nil && stderr.String() != string(c.stderr) {
					t.Errorf("%s: stderr:\n%s\nwant:\n%s", m.name, stderr.String(), c.stderr)
				}
			}
		})
	}
}

type goldenCase struct {
	flags        []string
	exit         int
	input        []byte
	want, stderr []byte
}

func parseCase(t *testing.T, a *txtar.Archive) goldenCase {
	t.Helper()
	var c goldenCase
	noeol := false
	for _, line := range strings.Split(string(a.Comment), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch strings.TrimSpace(k) {
		case "flags":
			c.flags = strings.Fields(v)
		case "exit":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("bad exit line %q", line)
			}
			c.exit = n
		case "noeol":
			noeol = true
		}
	}
	if !strings.Contains(strings.Join(c.flags, " "), "--tz") {
		c.flags = append([]string{"--tz", "UTC"}, c.flags...)
	}
	c.input = section(a, "input")
	if esc := section(a, "input.esc"); esc != nil {
		var b bytes.Buffer
		for _, l := range strings.SplitAfter(string(esc), "\n") {
			if l == "" {
				continue
			}
			b.Write(unescape(strings.TrimSuffix(l, "\n")))
			b.WriteByte('\n')
		}
		c.input = b.Bytes()
	}
	if c.input == nil {
		t.Fatal("no input section")
	}
	if noeol {
		c.input = bytes.TrimSuffix(c.input, []byte("\n"))
	}
	c.want = section(a, "want.jsonl")
	c.stderr = section(a, "stderr")
	return c
}

func section(a *txtar.Archive, name string) []byte {
	for _, f := range a.Files {
		if f.Name == name {
			if f.Data == nil {
				return []byte{}
			}
			return f.Data
		}
	}
	return nil
}

func setSection(a *txtar.Archive, name string, data []byte) {
	for i := range a.Files {
		if a.Files[i].Name == name {
			a.Files[i].Data = data
			return
		}
	}
	a.Files = append(a.Files, txtar.File{Name: name, Data: data})
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
