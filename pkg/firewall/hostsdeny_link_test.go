package firewall

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A hosts.deny that is a symbolic link (to a file kept elsewhere, relative
// or absolute, through two links) is written through the link: the link
// stays, the file it names gets the bans.
func TestHostsDenySymlink(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "etc"), 0o755)
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	target := filepath.Join(dir, "real", "hosts.deny")
	if err := os.WriteFile(target, []byte("sshd: 10.0.0.1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	mid := filepath.Join(dir, "real", "link")
	if err := os.Symlink("hosts.deny", mid); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "etc", "hosts.deny")
	if err := os.Symlink(mid, path); err != nil {
		t.Fatal(err)
	}
	h := NewHostsDeny(path)
	if err := h.Add([]Entry{{Net: Single(netip.MustParseAddr("192.0.2.241"))}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{path, mid} {
		if fi, err := os.Lstat(l); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s is no longer a link: %v %v", l, fi.Mode(), err)
		}
	}
	got, _ := os.ReadFile(target)
	if !strings.HasPrefix(string(got), "sshd: 10.0.0.1\n") || !strings.Contains(string(got), "ALL: 192.0.2.241\n") {
		t.Fatalf("target:\n%s", got)
	}
	if st, _ := os.Stat(target); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", st.Mode())
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "etc"))
	if len(ents) != 1 {
		t.Errorf("etc holds %d files", len(ents))
	}
	// A dangling link: the file is created where it points.
	dangling := filepath.Join(dir, "etc", "deny2")
	os.Symlink("../real/new.deny", dangling)
	if err := NewHostsDeny(dangling).Add([]Entry{{Net: Single(netip.MustParseAddr("192.0.2.7"))}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "real", "new.deny")); !strings.Contains(string(got), "ALL: 192.0.2.7\n") {
		t.Fatalf("new.deny:\n%s", got)
	}
	// A loop is an error, not a hang.
	loop := filepath.Join(dir, "loop")
	os.Symlink(loop, loop)
	if err := NewHostsDeny(loop).Add([]Entry{{Net: Single(netip.MustParseAddr("192.0.2.7"))}}); err == nil {
		t.Fatal("no error for a link loop")
	}
}

// Repair puts back lines an editor or another tool removed from the file;
// Held reports them with no timeout.
func TestHostsDenyRepair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.deny")
	h := NewHostsDeny(path)
	live := []Entry{{Net: Single(netip.MustParseAddr("192.0.2.1"))}, {Net: Single(netip.MustParseAddr("2001:db8::1"))}}
	if err := h.Sync(live); err != nil {
		t.Fatal(err)
	}
	if notes, err := h.Repair(live); err != nil || len(notes) != 0 {
		t.Fatalf("nothing missing: %q %v", notes, err)
	}
	os.WriteFile(path, []byte("sshd: 10.0.0.1\n"), 0o644)
	notes, err := h.Repair(live)
	if err != nil || len(notes) != 1 || notes[0] != "hosts-deny: "+path+" lost 2 lines: restored" {
		t.Fatalf("%q %v", notes, err)
	}
	got, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(got), "sshd: 10.0.0.1\n") || !strings.Contains(string(got), "ALL: [2001:db8::1]\n") {
		t.Fatalf("file:\n%s", got)
	}
	held, err := h.Held()
	if err != nil || len(held) != 2 || held[0].TTL != 0 {
		t.Fatalf("held %v %v", held, err)
	}
}
