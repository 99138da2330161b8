package firewall

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// Under systemd's ProtectSystem=strict with ReadWritePaths=/etc/hosts.deny
// only the file is writable: a temporary file in /etc cannot be created
// (EROFS) and a rename over the bind-mounted file fails (EBUSY). The
// backend then rewrites the file in place.
func TestHostsDenyInPlaceFallback(t *testing.T) {
	a4 := netip.MustParseAddr("192.0.2.241")
	orig := "sshd: 10.0.0.1\n"
	for _, c := range []struct {
		name       string
		createTemp error
		rename     error
		fallback   bool
	}{
		{"no temp file (EROFS)", &os.PathError{Op: "open", Path: "x", Err: syscall.EROFS}, nil, true},
		{"no temp file (EACCES)", &os.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, nil, true},
		{"rename over a mount (EBUSY)", nil, &os.LinkError{Op: "rename", Err: syscall.EBUSY}, true},
		{"rename across mounts (EXDEV)", nil, &os.LinkError{Op: "rename", Err: syscall.EXDEV}, true},
		{"disk full (ENOSPC)", &os.PathError{Op: "open", Path: "x", Err: syscall.ENOSPC}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "hosts.deny")
			if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
				t.Fatal(err)
			}
			h := NewHostsDeny(path)
			if c.createTemp != nil {
				h.createTemp = func(string, string) (*os.File, error) { return nil, c.createTemp }
			}
			if c.rename != nil {
				h.rename = func(string, string) error { return c.rename }
			}
			err := h.Add([]Entry{{Net: Single(a4)}, {Net: Single(netip.MustParseAddr("2001:db8::1"))}})
			data, _ := os.ReadFile(path)
			if !c.fallback {
				if err == nil || string(data) != orig {
					t.Fatalf("err %v, file %q", err, data)
				}
				return
			}
			want := orig + hostsDenyBegin + "\nALL: 192.0.2.241\nALL: [2001:db8::1]\n" + hostsDenyEnd + "\n"
			if err != nil || string(data) != want {
				t.Fatalf("err %v, file:\n%s", err, data)
			}
			// Shorter content: the file is truncated to it.
			if err := h.Delete(nets(a4, netip.MustParseAddr("2001:db8::1"))); err != nil {
				t.Fatal(err)
			}
			if data, _ := os.ReadFile(path); string(data) != orig {
				t.Fatalf("after delete: %q", data)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
				t.Fatalf("mode %v", st.Mode())
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Fatalf("left behind: %v", ents)
			}
		})
	}
}

// The same for real, in a private mount namespace with this test binary
// run inside it: what systemd builds (a read-only bind mount of the
// directory, the file bind-mounted read-write on itself: EROFS), and a
// writable directory whose file is a mount point (rename: EBUSY).
func TestHostsDenyReadOnlyDir(t *testing.T) {
	if path := os.Getenv("QWB_HOSTSDENY_HELPER"); path != "" {
		hostsDenyHelper(t, path, os.Getenv("QWB_HOSTSDENY_MODE"))
		return
	}
	hosttest.Require(t, "unshare", "mount")
	for mode, setup := range map[string]string{
		"rodir": `mount --bind "$1" "$1"; mount -o remount,bind,ro "$1"; mount --bind "$2" "$2"; mount -o remount,bind,rw "$2"`,
		"mount": `mount --bind "$2" "$2"`,
	} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "hosts.deny")
			orig := "# the admin's\nsshd: 10.0.0.1\n"
			if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
				t.Fatal(err)
			}
			script := `set -e; ` + setup + `; exec "$0" -test.run='^TestHostsDenyReadOnlyDir$' -test.v`
			cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, os.Args[0], dir, path)
			cmd.Env = append(os.Environ(), "QWB_HOSTSDENY_HELPER="+path, "QWB_HOSTSDENY_MODE="+mode)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "hosts-deny helper: ok") {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			want := orig + hostsDenyBegin + "\nALL: 192.0.2.241\n" + hostsDenyEnd + "\n"
			if data, _ := os.ReadFile(path); string(data) != want {
				t.Fatalf("hosts.deny:\n%s", data)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Fatalf("left behind: %v", ents)
			}
		})
	}
}

// hostsDenyHelper runs in the private mount namespace.
func hostsDenyHelper(t *testing.T, path, mode string) {
	dir := filepath.Dir(path)
	// Check the setup fails the way it should without the fallback.
	f, err := os.CreateTemp(dir, "probe")
	if mode == "rodir" && !errors.Is(err, syscall.EROFS) {
		t.Fatalf("create in the directory: %v, want EROFS", err)
	}
	if mode == "mount" {
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		err := os.Rename(f.Name(), path)
		os.Remove(f.Name())
		if !errors.Is(err, syscall.EBUSY) {
			t.Fatalf("rename over the file: %v, want EBUSY", err)
		}
	}
	h := NewHostsDeny(path)
	a4, a6 := netip.MustParseAddr("192.0.2.241"), netip.MustParseAddr("2001:db8::241")
	if err := h.Add([]Entry{{Net: Single(a4)}, {Net: Single(a6)}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Delete(nets(a6)); err != nil {
		t.Fatal(err)
	}
	if got, err := h.List(); err != nil || len(got) != 1 || got[0] != Single(a4) {
		t.Fatalf("list %v %v", got, err)
	}
	t.Log("hosts-deny helper: ok")
}
