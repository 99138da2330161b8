// Package golden runs the stages' golden-file tests: one txtar archive per
// case under testdata/<stage>/, its comment holding "flags: ..." and
// "exit: N" lines, its sections the input and the wanted outputs. Each
// case's input is fed whole, byte by byte and with CRLF line ends; with
// -update the whole run's outputs are written back into the archive.
package golden

import (
	"bytes"
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

// Update, set by -update, rewrites the golden files from the whole feed's
// outputs instead of comparing.
var Update = flag.Bool("update", false, "rewrite the golden files")

// Case is one golden file.
type Case struct {
	File    string
	Archive *txtar.Archive
	dirty   bool
}

// Run runs fn on every dir/*.txtar as a subtest named for the file, and
// writes back the cases fn changed under -update. No files is a failure.
func Run(t *testing.T, dir string, fn func(t *testing.T, c *Case)) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s: %v", dir, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c := &Case{File: file, Archive: ar}
			fn(t, c)
			if c.dirty {
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// Section returns the named section's data and whether the case has it.
func (c *Case) Section(name string) ([]byte, bool) {
	for _, f := range c.Archive.Files {
		if f.Name == name {
			return f.Data, true
		}
	}
	return nil, false
}

// Set replaces the named section's data, or adds the section.
func (c *Case) Set(name string, data []byte) {
	c.dirty = true
	for i := range c.Archive.Files {
		if c.Archive.Files[i].Name == name {
			c.Archive.Files[i].Data = data
			return
		}
	}
	c.Archive.Files = append(c.Archive.Files, txtar.File{Name: name, Data: data})
}

// Comment returns the text after "key:" on the comment's first line that
// starts with it, trimmed.
func (c *Case) Comment(key string) (string, bool) {
	for _, l := range strings.Split(string(c.Archive.Comment), "\n") {
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

// Flags returns the fields of the comment's "flags:" line, each with the
// replacer applied (nil: none).
func (c *Case) Flags(r *strings.Replacer) []string {
	s, _ := c.Comment("flags")
	f := strings.Fields(s)
	if r != nil {
		for i := range f {
			f[i] = r.Replace(f[i])
		}
	}
	return f
}

// Exit returns the comment's "exit:" code, 0 without one.
func (c *Case) Exit(t *testing.T) int {
	t.Helper()
	s, ok := c.Comment("exit")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s: bad exit line %q", c.File, s)
	}
	return n
}

// Feed is one way of giving a case its input.
type Feed struct {
	Name string
	data []byte
	one  bool
}

// Reader returns a fresh reader of the feed's input.
func (f Feed) Reader() io.Reader {
	if f.one {
		return iotest.OneByteReader(bytes.NewReader(f.data))
	}
	return bytes.NewReader(f.data)
}

// First reports whether this is the feed -update records from.
func (f Feed) First() bool { return f.Name == "whole" }

// Feeds returns input whole, byte by byte and with CRLF line ends (left
// out when the input already holds a carriage return). Under -update only
// the whole feed runs.
func Feeds(input []byte) []Feed {
	feeds := []Feed{{Name: "whole", data: input}}
	if *Update {
		return feeds
	}
	feeds = append(feeds, Feed{Name: "bytewise", data: input, one: true})
	if !bytes.Contains(input, []byte("\r")) {
		feeds = append(feeds, Feed{Name: "crlf", data: bytes.ReplaceAll(input, []byte("\n"), []byte("\r\n"))})
	}
	return feeds
}

// Expect compares got with the named section: a case without the section
// wants it empty. Under -update the whole feed's output is recorded
// instead (an empty output does not add a missing section).
func (c *Case) Expect(t *testing.T, feed Feed, name, got string) {
	t.Helper()
	want, ok := c.Section(name)
	if *Update {
		if feed.First() && (ok || got != "") {
			c.Set(name, []byte(got))
		}
		return
	}
	switch {
	case !ok && got != "":
		t.Errorf("%s: unexpected %s:\n%s", feed.Name, name, got)
	case ok && got != string(want):
		t.Errorf("%s: %s differs:\n%s", feed.Name, name, Diff(got, string(want)))
	}
}

// Diff lists the lines where got and want differ.
func Diff(got, want string) string {
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
