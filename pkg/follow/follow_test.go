package follow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pump reads what the follower gives over a few poll cycles (rotation
// switches after one quiet cycle) and returns the lines as text; torn and
// over-long lines are marked.
func pump(t *testing.T, fl *Follower) []string {
	t.Helper()
	var out []string
	for cycle := 0; cycle < 4; cycle++ {
		for {
			l, err := fl.Next()
			if errors.Is(err, ErrNoData) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			s := string(l.Text)
			switch {
			case l.TooLong > 0:
				s = fmt.Sprintf("<too long: %d>", l.TooLong)
			case l.Torn:
				s = "<torn>" + s
			}
			out = append(out, s)
		}
		if err := fl.Wait(context.Background(), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func appendTo(t *testing.T, name, text string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func want(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}

func newFollower(t *testing.T, path string, saved *Position, fromStart bool) (*Follower, *[]string) {
	t.Helper()
	var notes []string
	fl := &Follower{Path: path, Notify: func(m string) { notes = append(notes, m) }}
	if err := fl.Open(saved, fromStart); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close() })
	return fl, &notes
}

func TestCompleteLinesOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fast.log")
	appendTo(t, path, "old 1\nold 2\npart")
	fl, _ := newFollower(t, path, nil, false)
	want(t, pump(t, fl)) // starts after the last complete line
	appendTo(t, path, "ial\r\nnext")
	want(t, pump(t, fl), "partial")
	appendTo(t, path, "\n")
	want(t, pump(t, fl), "next")
	if p := fl.Position(); p.Offset != int64(len("old 1\nold 2\npartial\r\nnext\n")) || p.Line != 4 || string(p.Tail) != "old 1\nold 2\npartial\r\nnext\n" {
		t.Errorf("position %v", p)
	}
}

func TestFromStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fast.log")
	appendTo(t, path, "a\nb\n")
	fl, _ := newFollower(t, path, nil, true)
	want(t, pump(t, fl), "a", "b")
}

func TestNotThereYet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fast.log")
	fl, notes := newFollower(t, path, nil, false)
	want(t, pump(t, fl))
	appendTo(t, path, "first\n")
	want(t, pump(t, fl), "first") // a new file is read from its start
	if len(*notes) != 1 || !strings.Contains((*notes)[0], "does not exist yet") {
		t.Errorf("notes %q", *notes)
	}
}

func TestRenameRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fast.log")
	appendTo(t, path, "")
	fl, notes := newFollower(t, path, nil, false)
	appendTo(t, path, "1\n2\n")
	want(t, pump(t, fl), "1", "2")
	// logrotate: rename, create the new file; the writer still appends to
	// the old one (and leaves a torn line) until it reopens.
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, "")
	w.WriteString("3\n4\ntor")
	appendTo(t, path, "5\n")
	want(t, pump(t, fl), "3", "4", "<torn>tor", "5")
	appendTo(t, path, "6\n")
	want(t, pump(t, fl), "6")
	if len(*notes) != 0 {
		t.Errorf("notes %q", *notes)
	}
}

func TestDeleteAndRecreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fast.log")
	appendTo(t, path, "")
	fl, _ := newFollower(t, path, nil, false)
	appendTo(t, path, "1\n")
	want(t, pump(t, fl), "1")
	os.Remove(path)
	want(t, pump(t, fl))
	appendTo(t, path, "2\n")
	want(t, pump(t, fl), "2")
}

func TestCopyTruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fast.log")
	appendTo(t, path, "")
	fl, notes := newFollower(t, path, nil, false)
	appendTo(t, path, "1\n2\n")
	want(t, pump(t, fl), "1", "2")
	// Lines written after the last read and before the truncation are
	// only in the copy.
	appendTo(t, path, "3\n4\n")
	copyFile(t, path, path+".1")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, "5\n")
	want(t, pump(t, fl), "3", "4", "5")
	if len(*notes) != 0 {
		t.Errorf("notes %q", *notes)
	}
}

// TestCopyTruncateSameSize: the file is cut and written again to exactly
// the size already read, with lines that all end alike (as eve.json's
// do: the last TailSize bytes before the offset are the same), so neither
// the size nor the bytes before the offset show it: the file's start does.
func TestCopyTruncateSameSize(t *testing.T) {
	line := func(n int) string {
		return fmt.Sprintf(`{"seq":%d,"pad":"%s","end":"the same closing text on every line of it"}`+"\n", n, strings.Repeat("x", 40))
	}
	path := filepath.Join(t.TempDir(), "eve.json")
	appendTo(t, path, "")
	fl, notes := newFollower(t, path, nil, false)
	appendTo(t, path, line(11)+line(12))
	want(t, pump(t, fl), strings.TrimSuffix(line(11), "\n"), strings.TrimSuffix(line(12), "\n"))
	appendTo(t, path, line(13))
	copyFile(t, path, path+".1")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, line(21)+line(22)) // the size read so far: lines 11 and 12
	want(t, pump(t, fl), strings.TrimSuffix(line(13), "\n"), strings.TrimSuffix(line(21), "\n"), strings.TrimSuffix(line(22), "\n"))
	if len(*notes) != 0 {
		t.Errorf("notes %q", *notes)
	}
}

func TestTruncateWithoutCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fast.log")
	appendTo(t, path, "")
	fl, notes := newFollower(t, path, nil, false)
	appendTo(t, path, "first line\n")
	want(t, pump(t, fl), "first line")
	// Truncated and written past the old offset before the next poll: the
	// size alone would not show it, the changed bytes do.
	if err := os.WriteFile(path, []byte("a new, longer first line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, pump(t, fl), "a new, longer first line")
	if len(*notes) != 1 || !strings.Contains((*notes)[0], "truncated") {
		t.Errorf("notes %q", *notes)
	}
}

func TestTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fast.log")
	appendTo(t, path, "")
	fl, _ := newFollower(t, path, nil, false)
	fl.MaxLine = 10
	appendTo(t, path, "short\n"+strings.Repeat("x", 100))
	want(t, pump(t, fl), "short")
	appendTo(t, path, strings.Repeat("y", 200000)+"\nafter\n")
	want(t, pump(t, fl), "<too long: 200100>", "after")
	if p := fl.Position(); p.Offset != int64(6+200100+1+6) || p.Line != 3 {
		t.Errorf("position %v", p)
	}
}

func TestResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fast.log")
	appendTo(t, path, "1\n2\n")
	fl, _ := newFollower(t, path, nil, true)
	want(t, pump(t, fl), "1", "2")
	pos := fl.Position()
	fl.Close()

	t.Run("same file", func(t *testing.T) {
		appendTo(t, path, "3\n")
		fl, _ := newFollower(t, path, &pos, false)
		want(t, pump(t, fl), "3")
		pos = fl.Position()
	})
	t.Run("rotated while stopped", func(t *testing.T) {
		appendTo(t, path, "4\n")
		os.Rename(path, path+".1")
		appendTo(t, path, "5\n")
		fl, notes := newFollower(t, path, &pos, false)
		want(t, pump(t, fl), "4", "5")
		pos = fl.Position()
		if len(*notes) != 0 {
			t.Errorf("notes %q", *notes)
		}
	})
	t.Run("truncated while stopped", func(t *testing.T) {
		appendTo(t, path, "6\n")
		copyFile(t, path, path+".2")
		os.Truncate(path, 0)
		appendTo(t, path, "7\n")
		fl, notes := newFollower(t, path, &pos, false)
		want(t, pump(t, fl), "6", "7")
		pos = fl.Position()
		if len(*notes) != 0 {
			t.Errorf("notes %q", *notes)
		}
	})
	t.Run("gone", func(t *testing.T) {
		// The new file is made before the old one goes, so it cannot get
		// the old one's inode number (which would make it look truncated).
		appendTo(t, path+".new", "8\n")
		os.Remove(path)
		os.Remove(path + ".1")
		os.Remove(path + ".2")
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
		fl, notes := newFollower(t, path, &pos, false)
		want(t, pump(t, fl), "8")
		if len(*notes) != 1 || !strings.Contains((*notes)[0], "gone") {
			t.Errorf("notes %q", *notes)
		}
	})
}

func TestPositionFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "pos")
	if _, ok, err := LoadPosition(name); ok || err != nil {
		t.Fatalf("missing file: %v %v", ok, err)
	}
	p := Position{Dev: 2049, Ino: 1234567, Offset: 1 << 40, Line: 99, Tail: []byte("x\n\x00")}
	if err := SavePosition(name, p); err != nil {
		t.Fatal(err)
	}
	got, ok, err := LoadPosition(name)
	if !ok || err != nil || !got.Equal(p) {
		t.Fatalf("LoadPosition = %v %v %v, want %v", got, ok, err, p)
	}
	for _, bad := range []string{"", "quietwatch-position 2 dev=1 ino=1 offset=1 line=1 tail=", "quietwatch-position 1 dev=1 ino=1 offset=-1 line=1 tail=", "quietwatch-position 1 dev=1 ino=1 offset=0 line=0 tail=00"} {
		if _, err := ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) accepted", bad)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(name))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// drainNext reads until ErrNoData, without waiting.
func drainNext(t *testing.T, fl *Follower) []string {
	t.Helper()
	var out []string
	for {
		l, err := fl.Next()
		if errors.Is(err, ErrNoData) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		s := string(l.Text)
		if l.Torn {
			s = "<torn>" + s
		}
		out = append(out, s)
	}
}

// TestDrainDeleted: stopping while the file being read was deleted (and a
// new one created) with lines in it not read yet: Drain reads them, then
// the position is the new file's start, so a restart reads all of it and
// nothing is lost. (The saved position pointed to the deleted file, and a
// restart read only the new one.)
func TestDrainDeleted(t *testing.T) {
	for _, newFile := range []bool{true, false} {
		dir := t.TempDir()
		path := filepath.Join(dir, "fast.log")
		appendTo(t, path, "a\nb\n")
		fl, _ := newFollower(t, path, nil, true)
		want(t, drainNext(t, fl), "a", "b")
		appendTo(t, path, "c\nd\nhalf")
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if newFile {
			appendTo(t, path, "new1\n")
		}
		if !fl.Drain() {
			t.Fatal("Drain: false for a deleted file")
		}
		want(t, drainNext(t, fl), "c", "d", "<torn>half")
		pos := fl.Position()
		fl.Close()
		if newFile {
			appendTo(t, path, "new2\n")
		} else {
			appendTo(t, path, "new1\nnew2\n")
		}
		fl2, _ := newFollower(t, path, &pos, false)
		want(t, drainNext(t, fl2), "new1", "new2")
	}
}

// TestDrainRenamed: a file renamed by a rotation (logrotate may compress
// it before a restart could find it by its inode) or moved out of the
// folder is drained too; the file still at Path is not: stopping stays
// immediate, and the position finds it again.
func TestDrainRenamed(t *testing.T) {
	for _, away := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "fast.log")
		appendTo(t, path, "a\n")
		fl, _ := newFollower(t, path, nil, true)
		want(t, drainNext(t, fl), "a")
		appendTo(t, path, "b\n")
		if fl.Drain() {
			t.Error("Drain: true for the file at Path")
		}
		renamed := path + ".1"
		if away {
			renamed = filepath.Join(t.TempDir(), "elsewhere")
		}
		if err := os.Rename(path, renamed); err != nil {
			t.Fatal(err)
		}
		appendTo(t, path, "new\n")
		if !fl.Drain() {
			t.Fatal("Drain: false for a renamed file")
		}
		want(t, drainNext(t, fl), "b")
		pos := fl.Position()
		fl.Close()
		if pos.Offset != 0 {
			t.Errorf("position %v, want the new file's start", pos)
		}
		if err := os.Remove(renamed); err != nil { // compressed by logrotate
			t.Fatal(err)
		}
		fl2, notes := newFollower(t, path, &pos, false)
		want(t, drainNext(t, fl2), "new")
		if len(*notes) > 0 {
			t.Errorf("notes: %q", *notes)
		}
	}
}
