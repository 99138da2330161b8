package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/quietwatch/quietwatch/internal/hosttest"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/spool"
)

// nobody is the second, real user of the spool tests.
const nobody = 65534

// asNobody runs sh -c script as the user nobody (uid and gid 65534, no
// supplementary groups) and fails t if it fails.
func asNobody(t *testing.T, script string, args ...string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %s: %v\n%s", script, err, out)
	}
}

// reachable returns a fresh folder that other users can enter (t.TempDir
// is root's alone), as /var/lib/quietwatch is for the unit's user.
func reachable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// plantScript plants, as whoever runs it, a spooled message for
// victim@example.com from attacker@example.net in the msg/ folder $1.
const plantScript = `cat > "$1/00000000000000000001.eml" <<'EOF'
{"upto":1,"created":"2026-01-01T00:00:00Z","from":"attacker@example.net","to":["victim@example.com"],"subject":"planted","message_id":"planted@example.net","alerts":[]}
From: attacker@example.net
To: victim@example.com
Subject: planted

tag=planted
EOF`

// TestSpoolWritableByOthers: with the spool, or its msg/ folder, writable
// by another user, a message that user (nobody, a real second user)
// plants is not mailed: root's notify refuses the spool with exit 78 and
// says why. The old notify mailed it, with the planter's recipients.
func TestSpoolWritableByOthers(t *testing.T) {
	hosttest.Require(t)
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir string) // makes the spool writable, plants as nobody
		want  string
	}{
		{"spool 0777", func(t *testing.T, dir string) {
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			// msg/ is root's 0700, but its parent is writable: swap it.
			asNobody(t, `cd "$1" && mv msg msg.old && mkdir msg && `+plantScript, dir, filepath.Join(dir, "msg"))
		}, "writable by others (mode 0777"},
		{"msg 0777", func(t *testing.T, dir string) {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, "msg"), 0o777); err != nil {
				t.Fatal(err)
			}
			asNobody(t, plantScript, filepath.Join(dir, "msg"))
		}, "/msg: writable by others (mode 0777"},
		{"spool group-writable", func(t *testing.T, dir string) {
			if err := os.Chown(dir, 0, nobody); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o775); err != nil {
				t.Fatal(err)
			}
			asNobody(t, `cd "$1" && mv msg msg.old && mkdir msg && `+plantScript, dir, filepath.Join(dir, "msg"))
		}, "writable by its group (mode 0775"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(reachable(t), "spool")
			sp, err := spool.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			sp.Close()
			c.setup(t, dir)
			sm := newFakeSendmail(t)
			sm.set(t, "ok")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"notify", "--to", "root", "--sendmail", sm.path, "--spool", dir, "--exit-wait", "5s"},
				strings.NewReader(""), &stdout, &stderr, &env{})
			if code != exitcode.Config {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitcode.Config, stderr.String())
			}
			if got := sm.delivered(t); len(got) != 0 {
				t.Errorf("delivered %v: the planted message was mailed", got)
			}
			msg := stderr.String()
			if !strings.HasPrefix(msg, "notify: --spool: ") || !strings.Contains(msg, c.want) ||
				!strings.Contains(msg, "refusing a spool another user could write to") || strings.Count(msg, "\n") != 1 {
				t.Errorf("stderr %q; want one line about %q", msg, c.want)
			}
		})
	}
}

// TestSpoolPlantedFile: a message file another user owns (planted while
// the spool was open to them, the spool since made private again) is
// refused too, as is a link planted in place of msg/.
func TestSpoolPlantedFile(t *testing.T) {
	hosttest.Require(t)
	base := reachable(t)
	dir := filepath.Join(base, "spool")
	sp, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	sp.Close()
	os.Chmod(filepath.Join(dir, "msg"), 0o777) //nolint:errcheck
	os.Chmod(dir, 0o755)                       //nolint:errcheck
	asNobody(t, plantScript, filepath.Join(dir, "msg"))
	os.Chmod(filepath.Join(dir, "msg"), 0o700) //nolint:errcheck
	var stderr bytes.Buffer
	sm := newFakeSendmail(t)
	sm.set(t, "ok")
	code := run(context.Background(), []string{"notify", "--to", "root", "--sendmail", sm.path, "--spool", dir},
		strings.NewReader(""), io.Discard, &stderr, &env{})
	if code != exitcode.Config || !strings.Contains(stderr.String(), "00000000000000000001.eml: owned by uid 65534 (nobody), not by uid 0 (root)") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	// msg/ replaced by a link to a folder of nobody's.
	evil := filepath.Join(base, "evil")
	if err := os.Mkdir(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(evil, nobody, nobody) //nolint:errcheck
	asNobody(t, plantScript, evil)
	if err := os.RemoveAll(filepath.Join(dir, "msg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(evil, filepath.Join(dir, "msg")); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	code = run(context.Background(), []string{"notify", "--to", "root", "--sendmail", sm.path, "--spool", dir},
		strings.NewReader(""), io.Discard, &stderr, &env{})
	if code != exitcode.Config || !strings.Contains(stderr.String(), "/msg: is a symbolic link") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if got := sm.delivered(t); len(got) != 0 {
		t.Errorf("delivered %v", got)
	}
}

// TestSpoolAsServiceUser: as the unit runs it, notify as an unprivileged
// user (nobody here, quietwatch there) with UMask=0027, on a spool that
// quietwatch-run made (mkdir under the umask: 0750) and gave to that user,
// inside root's state folder: it works, twice, and what notify creates is
// private (0700/0600).
func TestSpoolAsServiceUser(t *testing.T) {
	hosttest.Require(t)
	base := reachable(t)
	old := syscall.Umask(0o027)
	state := filepath.Join(base, "state")
	err := os.MkdirAll(filepath.Join(state, "spool"), 0o777)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(state, 0o755) //nolint:errcheck // StateDirectoryMode=0750 with the user in the group: any mode that lets it in
	dir := filepath.Join(state, "spool")
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	// The test binary and a sendmail that nobody can run.
	bin := filepath.Join(base, "notify.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(out, nobody, nobody) //nolint:errcheck
	sendmail := filepath.Join(base, "sendmail")
	script := fmt.Sprintf("#!/bin/sh\ncat > %s/$$.eml\n", out)
	if err := os.WriteFile(sendmail, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		tag := fmt.Sprintf("svc%d", i)
		cmd := exec.Command("/bin/sh", "-c", `umask 0027 && exec "$0" "$@"`, bin, "--to", "root", "--sendmail", sendmail,
			"--spool", dir, "--group-window", "0", "--exit-wait", "10s")
		cmd.Env = append(os.Environ(), "QWN_NOTIFY_MAIN=1")
		cmd.Stdin = strings.NewReader(alertLine(tag, tag, 10))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Fatalf("run %d as nobody: %v\n%s", i, err, stderr.String())
		}
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.eml"))
	var all strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		_, body := decodedBody(t, data)
		all.WriteString(body)
	}
	if got := tags(all.String()); len(got) != 2 {
		t.Errorf("delivered tags %v, want svc0 and svc1", got)
	}
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		want := os.FileMode(0o600)
		switch {
		case p == dir:
			want = 0o750 | os.ModeDir // quietwatch-run's, kept
		case fi.IsDir():
			want = 0o700 | os.ModeDir
		}
		if fi.Mode() != want || st.Uid != nobody {
			t.Errorf("%s: mode %v uid %d, want %v uid %d", p, fi.Mode(), st.Uid, want, nobody)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
