package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// unsafeOpen opens dir and wants an *UnsafeError whose text holds want.
func unsafeOpen(t *testing.T, dir, want string) {
	t.Helper()
	s, err := Open(dir)
	if err == nil {
		s.Close()
		t.Fatalf("Open accepted the spool; want an error about %q", want)
	}
	var u *UnsafeError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open: %v; want an UnsafeError about %q", err, want)
	}
}

// spoolWithMessage makes a spool holding one message and one journal line.
func spoolWithMessage(t *testing.T) string {
	t.Helper()
	return spoolIn(t, t.TempDir())
}

func spoolIn(t *testing.T, parent string) string {
	t.Helper()
	dir := filepath.Join(parent, "spool")
	s := open(t, dir)
	appendN(t, s, "a1", "a2")
	if _, err := s.Put(Meta{Upto: 1, Created: t0, To: []string{"root"}}, []byte("m\n")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	return dir
}

// TestUnsafeModes: a spool, or a folder or file in it, that a group or
// other users can write to is refused; read-only for the group (0750, the
// unit's UMask=0027) is fine.
func TestUnsafeModes(t *testing.T) {
	for _, c := range []struct {
		path string // relative to the spool
		mode os.FileMode
		want string // "" if it must open
	}{
		{".", 0o777, "writable by others (mode 0777"},
		{".", 0o770, "writable by its group (mode 0770"},
		{".", 0o1777, "writable by others (mode 1777"},
		{".", 0o750, ""},
		{".", 0o755, ""},
		{"msg", 0o777, "msg: writable by others"},
		{"tmp", 0o730, "tmp: writable by its group"},
		{"state", 0o666, "state: writable by others"},
		{"lock", 0o620, "lock: writable by its group"},
		{"msg/00000000000000000001.eml", 0o646, "00000000000000000001.eml: writable by others"},
		{"journal-00000000000000000001.jsonl", 0o662, "journal-00000000000000000001.jsonl: writable by others"},
		{"msg/00000000000000000001.eml", 0o640, ""},
	} {
		t.Run(strings.ReplaceAll(c.path, "/", "_")+"_"+c.mode.String(), func(t *testing.T) {
			dir := spoolWithMessage(t)
			mode := c.mode & os.ModePerm
			if c.mode&0o1000 != 0 {
				mode |= os.ModeSticky
			}
			if err := os.Chmod(filepath.Join(dir, c.path), mode); err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				open(t, dir).Close()
				return
			}
			unsafeOpen(t, dir, c.want)
		})
	}
}

// TestUnsafeFailedDir: failed/ is checked too once it exists.
func TestUnsafeFailedDir(t *testing.T) {
	dir := spoolWithMessage(t)
	if err := os.Mkdir(filepath.Join(dir, "failed"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "failed"), 0o777); err != nil {
		t.Fatal(err)
	}
	unsafeOpen(t, dir, "failed: writable by others")
}

// TestUnsafeLinks: a symbolic link in the spool is never followed, even to
// a file or folder of the user's own.
func TestUnsafeLinks(t *testing.T) {
	for _, name := range []string{"msg", "tmp", "failed", "state", "lock", "msg/00000000000000000001.eml", "journal-00000000000000000001.jsonl"} {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			dir := spoolWithMessage(t)
			elsewhere := filepath.Join(t.TempDir(), "target")
			p := filepath.Join(dir, name)
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
				if err := os.Rename(p, elsewhere); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(elsewhere, []byte("{}\nm\n"), 0o600); err != nil {
				t.Fatal(err)
			} else if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if err := os.Symlink(elsewhere, p); err != nil {
				t.Fatal(err)
			}
			unsafeOpen(t, dir, name+": is a symbolic link")
		})
	}
	// A link planted as the lock does not make Open create its target.
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "created")
	if err := os.Symlink(target, filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	unsafeOpen(t, dir, "lock: is a symbolic link")
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link's target was created: %v", err)
	}
}

// TestUnsafeFIFO: a FIFO where a file belongs is refused at once, not read
// (which would block forever).
func TestUnsafeFIFO(t *testing.T) {
	dir := spoolWithMessage(t)
	if err := syscall.Mkfifo(filepath.Join(dir, "state.new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "state.new"), filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	unsafeOpen(t, dir, "state: is not a regular file")
}

// TestUnsafeAncestor: a folder above the spool that others can write to
// (and that is not sticky) is refused: they could rename the spool away
// and put one of theirs in its place. A sticky one (/tmp) is fine.
func TestUnsafeAncestor(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "spool")
	open(t, dir).Close()
	if err := os.Chmod(parent, 0o777); err != nil {
		t.Fatal(err)
	}
	unsafeOpen(t, dir, "is writable by others (mode 0777) and not sticky")
	if err := os.Chmod(parent, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	open(t, dir).Close()
	// A link to the spool: the folders on the way to its target count.
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	open(t, link).Close()
	if err := os.Chmod(parent, 0o757); err != nil {
		t.Fatal(err)
	}
	unsafeOpen(t, link, "is writable by others (mode 0757) and not sticky")
}

// TestCreatedPrivate: what the spool creates is 0700 (folders) and 0600
// (files) whatever the umask.
func TestCreatedPrivate(t *testing.T) {
	parent := t.TempDir()
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := spoolIn(t, parent)
	s := open(t, dir)
	e, err := s.Put(Meta{Upto: 2, Created: t0}, []byte("m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fail(e); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "a3")
	s.Close()
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700 | os.ModeDir
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
