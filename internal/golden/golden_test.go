package golden

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCase(t *testing.T) {
	dir := t.TempDir()
	src := "flags: --a $X\nexit: 3\n-- input --\none\ntwo\n-- want --\nONE\nTWO\n"
	if err := os.WriteFile(filepath.Join(dir, "c.txtar"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ran := 0
	Run(t, dir, func(t *testing.T, c *Case) {
		ran++
		if got := c.Flags(strings.NewReplacer("$X", "x")); len(got) != 2 || got[1] != "x" {
			t.Errorf("Flags = %q", got)
		}
		if c.Exit(t) != 3 {
			t.Errorf("Exit = %d", c.Exit(t))
		}
		in, _ := c.Section("input")
		var names []string
		for _, f := range Feeds(in) {
			b, _ := io.ReadAll(f.Reader())
			names = append(names, f.Name)
			c.Expect(t, f, "want", strings.ToUpper(strings.ReplaceAll(string(b), "\r", "")))
			c.Expect(t, f, "stderr", "")
		}
		if strings.Join(names, ",") != "whole,bytewise,crlf" {
			t.Errorf("feeds %v", names)
		}
	})
	if ran != 1 {
		t.Errorf("ran %d cases", ran)
	}
}

func TestDiff(t *testing.T) {
	if d := Diff("a\nb\n", "a\nc\n"); !strings.Contains(d, "line 2:") || strings.Contains(d, "line 1:") {
		t.Errorf("Diff = %q", d)
	}
}
