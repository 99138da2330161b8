package block

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/firewall"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// These tests run block in-process on the wall clock (a synctest bubble
// cannot wait on a real socket) with a fake backend and a real socket in a
// temporary folder; the subcommands run in-process as separate Mains.

// ctl runs block with args (a subcommand) in env e and returns its exit
// code, stdout and stderr.
func ctl(t *testing.T, e *env, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := command.Run(context.Background(), newApp(e), append([]string{"block"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// end stops block for a test that failed half-way: block may be waiting
// for its stdout to be read.
func (l *live) end() {
	go io.Copy(io.Discard, l.out)
	l.stop()
	<-l.done
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestControl(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "block.sock")
	state := filepath.Join(dir, "state.db")
	arLog := filepath.Join(dir, "ar.log")
	fake := firewall.NewFake("fake")
	l := startLive(t, fake, "--socket", sock, "--state", state, "--timeout", "1h", "--allow", "203.0.113.0/24", "--ar-log", arLog)
	defer l.end()
	l.send(t, alertLine("192.0.2.1", 10, "a"))
	if d, _ := l.next(t); !strings.Contains(d, `"action":"add","ip":"192.0.2.1"`) {
		t.Fatal(d)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", fi.Mode(), err)
	}
	e := testEnv()
	other := firewall.NewFake("other")
	e.backend = func(string, firewall.Config) (firewall.Backend, error) { return other, nil }

	// list, while block holds the state file (it used to exit 75).
	code, out, errOut := ctl(t, e, "--socket", sock, "list", "--json")
	var lb listBan
	if code != 0 || errOut != "" || strings.Count(out, "\n") != 1 || record.Unmarshal([]byte(out), &lb) != nil {
		t.Fatalf("list --json: %d %q %q", code, out, errOut)
	}
	if lb.IP != "192.0.2.1" || lb.RemainingS < 3590 || lb.RemainingS > 3600 || lb.TimeoutS != 3600 || lb.Offense != 1 ||
		lb.RuleID != "300011" || lb.AlertID != "a" || strings.Join(lb.Backends, ",") != "fake" || lb.Reason != "" {
		t.Fatalf("list --json: %+v", lb)
	}
	// With --state: the block keeping that state answers; another
	// state is read from its file.
	if code, out, _ := ctl(t, e, "--socket", sock, "--state", state, "list", "--json"); code != 0 || !strings.Contains(out, `"ip":"192.0.2.1"`) {
		t.Fatalf("list --state (the running block's): %d %q", code, out)
	}
	if code, out, errOut := ctl(t, e, "--socket", sock, "--state", filepath.Join(dir, "other.db"), "ban", "192.0.2.3"); code != 0 || !strings.Contains(out, `"ip":"192.0.2.3"`) || errOut != "" {
		t.Fatalf("ban --state (another): %d %q %q", code, out, errOut)
	}
	if fake.Has(mustAddr("192.0.2.3")) || !other.Has(mustAddr("192.0.2.3")) {
		t.Fatal("the running block took a ban meant for another state")
	}
	code, out, _ = ctl(t, e, "list", "--socket", sock)
	if lines := strings.Split(out, "\n"); code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "IP ") ||
		!regexpMatch(`^192\.0\.2\.1 +\S+ +(1h0m0s|59m[0-9]+s) +1 +300011 +a +fake$`, lines[1]) {
		t.Fatalf("list: %d\n%s", code, out)
	}

	// ban: the same decision on the caller's stdout and block's.
	code, out, errOut = ctl(t, e, "--socket", sock, "ban", "192.0.2.2", "--timeout", "2m")
	if code != 0 || errOut != "" || !strings.Contains(out, `"action":"add","ip":"192.0.2.2"`) || !strings.Contains(out, `"timeout_s":120,"offense":1,"backends":["fake"],"reason":"manual"}}`) {
		t.Fatalf("ban: %d %q %q", code, out, errOut)
	}
	if d, _ := l.next(t); d != out {
		t.Fatalf("block wrote %q, the caller got %q", d, out)
	}
	if a := mustAddr("192.0.2.2"); !fake.Has(a) || fake.TTL(a) != 2*time.Minute {
		t.Fatalf("backend: %q", fake.Calls())
	}
	// Again, without --timeout: block's --timeout, an extend.
	code, out, _ = ctl(t, e, "ban", "--socket", sock, "192.0.2.2")
	if code != 0 || !strings.Contains(out, `"action":"extend","ip":"192.0.2.2"`) || !strings.Contains(out, `"timeout_s":3600,`) {
		t.Fatalf("second ban: %d %q", code, out)
	}
	l.next(t)
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"ban", "203.0.113.12"}, 1, "block: ban 203.0.113.12: refused: allowlisted (--allow, --allow-file)\n"},
		{[]string{"ban", "198.51.100.44"}, 1, "block: ban 198.51.100.44: refused: own-address (an address of this host)\n"},
		{[]string{"ban", "::ffff:127.0.0.1"}, 1, "block: ban 127.0.0.1: refused: loopback (never banned)\n"},
		{[]string{"ban", "192.0.2.0/24"}, exitcode.Usage, `block: ban: "192.0.2.0/24" is not an IP address`},
		{[]string{"ban", "192.0.2.3", "--timeout", "-1s"}, exitcode.Config, "block: ban: --timeout -1s: want a positive duration\n"},
		{[]string{"unban", "192.0.2.9"}, 1, "block: unban 192.0.2.9: not banned\n"},
	} {
		code, out, errOut := ctl(t, e, append([]string{"--socket", sock}, c.args...)...)
		if code != c.code || out != "" || !strings.HasPrefix(errOut, c.stderr) {
			t.Errorf("%q: %d %q %q, want %d %q", c.args, code, out, errOut, c.code, c.stderr)
		}
	}

	// unban
	code, out, errOut = ctl(t, e, "--socket", sock, "unban", "192.0.2.1")
	if code != 0 || errOut != "" || !strings.Contains(out, `"action":"delete","ip":"192.0.2.1"`) || !strings.Contains(out, `"reason":"unban"`) {
		t.Fatalf("unban: %d %q %q", code, out, errOut)
	}
	if d, _ := l.next(t); d != out {
		t.Fatalf("block wrote %q, the caller got %q", d, out)
	}
	if fake.Has(mustAddr("192.0.2.1")) {
		t.Fatal("unbanned address still in the backend")
	}
	code, _, errOut = ctl(t, e, "--socket", sock, "unban", "192.0.2.1")
	if code != 1 || errOut != "block: unban 192.0.2.1: not banned\n" {
		t.Fatalf("second unban: %d %q", code, errOut)
	}
	code, out, _ = ctl(t, e, "--socket", sock, "list", "--json")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"ip":"192.0.2.2"`) || !strings.Contains(out, `"reason":"manual"`) {
		t.Fatalf("list after: %d %q", code, out)
	}
	ar := readFile(t, arLog)
	for _, want := range []string{"block add - 192.0.2.1 a 300011\n", "block add - 192.0.2.2 - -\n", "block delete - 192.0.2.1 a 300011\n"} {
		if !strings.Contains(ar, want) {
			t.Errorf("ar-log lacks %q:\n%s", want, ar)
		}
	}
	if n := strings.Count(ar, "\n"); n != 3 {
		t.Errorf("ar-log has %d lines, want 3:\n%s", n, ar)
	}

	// Stopped: the socket is gone, and the subcommands use the state.
	l.stop()
	if code := <-l.done; code != 0 {
		t.Fatalf("exit %d: %s", code, l.errb)
	}
	l.done <- 0
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	code, out, errOut = ctl(t, e, "--socket", sock, "--state", state, "list", "--json")
	if code != 0 || errOut != "" || !strings.Contains(out, `"ip":"192.0.2.2"`) || !strings.Contains(out, `"reason":"manual"`) {
		t.Fatalf("list with no block: %d %q %q", code, out, errOut)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// A socket file left by a crash is replaced; one a block still answers
// on, or a file that is not a socket, stops block.
func TestControlSocketFile(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "block.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	e := testEnv()
	// Another block answers there.
	code, _, errOut := ctl(t, e, "--backend", "dry-run", "--state=", "--socket", sock)
	if code != exitcode.TempFail || errOut != "block: --socket "+sock+": another block process answers there (give each block a --socket of its own)\n" {
		t.Fatalf("live socket: %d %q", code, errOut)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Fatal("the other block's socket was removed")
	}
	// It crashed: its socket file stays.
	ln.SetUnlinkOnClose(false)
	ln.Close()
	l := startLive(t, firewall.NewFake("fake"), "--socket", sock, "--state", filepath.Join(dir, "state.db"))
	l.send(t, alertLine("192.0.2.1", 10, "a"))
	l.next(t)
	// A client that connects and says nothing does not hold block's exit
	// (for the 10 s read timeout): its connection is closed. (It is
	// accepted before the list's, which is answered.)
	idle, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if code, out, errOut := ctl(t, e, "--socket", sock, "list", "--json"); code != 0 || !strings.Contains(out, `"ip":"192.0.2.1"`) {
		t.Fatalf("list: %d %q %q", code, out, errOut)
	}
	l.stop()
	select {
	case <-l.done:
	case <-time.After(ioTimeout / 2):
		t.Fatal("block waits for an idle client to exit")
	}
	if n, err := idle.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("idle client: %d %v, want its connection closed", n, err)
	}
	if s := l.errb.String(); s != "" {
		t.Errorf("stderr: %q", s)
	}
	// Not a socket: left alone.
	os.WriteFile(sock, []byte("mine\n"), 0o644)
	code, _, errOut = ctl(t, e, "--backend", "dry-run", "--state=", "--socket", sock)
	if code != exitcode.Config || errOut != "block: --socket "+sock+": exists and is not a socket\n" || readFile(t, sock) != "mine\n" {
		t.Fatalf("regular file: %d %q", code, errOut)
	}
	// A replay (--state '') serves no socket unless --socket is given.
	e.socket = filepath.Join(dir, "default.sock")
	var out bytes.Buffer
	in := strings.NewReader(alertLine("192.0.2.1", 10, "a"))
	if code := command.Run(context.Background(), newApp(e), []string{"block", "--backend", "dry-run", "--state=", "--timeout", "1ms"}, in, &out, &out); code != 0 {
		t.Fatalf("replay: %d %s", code, out.String())
	}
	if _, err := os.Lstat(e.socket); !os.IsNotExist(err) {
		t.Fatalf("a replay served the default socket: %v", err)
	}
}

// With no block running, the subcommands work on the state with the
// settings the last block was started with: its --ar-log, allow list and
// --timeout.
func TestControlOffline(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	arLog := filepath.Join(dir, "ar.log")
	allow := filepath.Join(dir, "allow")
	os.WriteFile(allow, []byte("203.0.113.0/24\n"), 0o644)
	fake := firewall.NewFake("fake")
	now := time.Date(2026, 5, 17, 21, 0, 0, 0, time.UTC)
	e := testEnv()
	e.Now = func() time.Time { return now }
	e.backend = func(string, firewall.Config) (firewall.Backend, error) { return fake, nil }
	var out bytes.Buffer
	code := command.Run(context.Background(), newApp(e), []string{"block", "--backend", "dry-run", "--state", state,
		"--ar-log", arLog, "--allow-file", allow, "--timeout", "10m", "--socket", filepath.Join(dir, "block.sock")}, strings.NewReader(""), &out, &out)
	if code != 0 {
		t.Fatalf("block: %d %s", code, out.String())
	}
	nosock := filepath.Join(dir, "none.sock")
	code, o, errOut := ctl(t, e, "--state", state, "--socket", nosock, "ban", "192.0.2.5")
	if code != 0 || errOut != "" || !strings.Contains(o, `"action":"add","ip":"192.0.2.5","until":"2026-05-17T21:10:00.000000+0000","timeout_s":600,"offense":1,"backends":["fake"],"reason":"manual"`) {
		t.Fatalf("ban: %d %q %q", code, o, errOut)
	}
	if !fake.Has(mustAddr("192.0.2.5")) {
		t.Fatalf("backend: %q", fake.Calls())
	}
	fake.Calls()
	for _, c := range []struct{ ip, stderr string }{
		{"203.0.113.7", "block: ban 203.0.113.7: refused: allowlisted (--allow, --allow-file)\n"},
		{"198.51.100.44", "block: ban 198.51.100.44: refused: own-address (an address of this host)\n"},
	} {
		if code, o, errOut := ctl(t, e, "--state", state, "ban", c.ip); code != 1 || o != "" || errOut != c.stderr {
			t.Errorf("ban %s: %d %q %q", c.ip, code, o, errOut)
		}
	}
	// A refused ban touches no backend (it used to reconcile them first).
	if calls := fake.Calls(); len(calls) != 0 {
		t.Fatalf("refused bans called the backend: %q", calls)
	}
	// The ban has ended, no reaper lifted it: unban lifts it and
	// succeeds (it used to say "not banned" and exit 1).
	now = now.Add(11 * time.Minute)
	code, o, errOut = ctl(t, e, "unban", "--state", state, "192.0.2.5")
	if code != 0 || errOut != "" || !strings.Contains(o, `"action":"delete","ip":"192.0.2.5"`) || fake.Has(mustAddr("192.0.2.5")) {
		t.Fatalf("unban of an ended ban: %d %q %q", code, o, errOut)
	}
	if code, _, errOut := ctl(t, e, "unban", "--state", state, "192.0.2.5"); code != 1 || errOut != "block: unban 192.0.2.5: not banned\n" {
		t.Fatalf("unban again: %d %q", code, errOut)
	}
	// Lifted from the command line, logged like the pipeline's (it used
	// to need --ar-log again).
	ar := readFile(t, arLog)
	if !strings.Contains(ar, "block add - 192.0.2.5 - -\n") || !strings.Contains(ar, "block delete - 192.0.2.5 - -\n") || strings.Count(ar, "\n") != 2 {
		t.Fatalf("ar-log:\n%s", ar)
	}
	// --ar-log given to the subcommand wins (here: none).
	ctl(t, e, "--state", state, "--ar-log=", "ban", "192.0.2.6")
	if readFile(t, arLog) != ar {
		t.Fatal("--ar-log '' still logged")
	}
	// An allow list that cannot be read: no ban without the guards.
	os.WriteFile(allow, []byte("not-a-net\n"), 0o644)
	if code, _, errOut := ctl(t, e, "--state", state, "ban", "192.0.2.7"); code != exitcode.Config || !strings.Contains(errOut, "not-a-net") {
		t.Fatalf("broken allow file: %d %q", code, errOut)
	}
	if fake.Has(mustAddr("192.0.2.7")) {
		t.Fatal("banned without the guards")
	}
}

// The socket is for root: 0600, and a peer of another uid that reaches it
// anyway (here: the mode widened by hand) is refused after SO_PEERCRED.
func TestControlPeerCred(t *testing.T) {
	hosttest.Require(t, "/usr/bin/python3")
	dir, err := os.MkdirTemp("", "qwb-peer")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "block.sock")
	l := startLive(t, firewall.NewFake("fake"), "--socket", sock, "--state", filepath.Join(dir, "state.db"))
	defer l.end()
	l.send(t, alertLine("192.0.2.1", 10, "a"))
	l.next(t)
	asNobody := func() string {
		t.Helper()
		cmd := exec.Command("/usr/bin/python3", "-c", `
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect:", e.strerror); sys.exit(0)
s.sendall(b'{"op":"list"}\n')
print(s.makefile().readline().strip())`, sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("python3 as nobody: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := asNobody(); got != "connect: Permission denied" {
		t.Fatalf("nobody, socket 0600: %q", got)
	}
	os.Chmod(sock, 0o666)
	if got := asNobody(); got != `{"ok":false,"error":"permission denied: uid 65534 is not root","exit":1}` {
		t.Fatalf("nobody, socket 0666: %q", got)
	}
	if code, out, _ := ctl(t, testEnv(), "--socket", sock, "list", "--json"); code != 0 || !strings.Contains(out, `"ip":"192.0.2.1"`) {
		t.Fatalf("root: %d %q", code, out)
	}
	l.stop()
	<-l.done
	l.done <- 0
	if s := l.errb.String(); !strings.Contains(s, "block: --socket: refused pid ") || !strings.Contains(s, ": uid 65534 is not root\n") {
		t.Fatalf("stderr: %q", s)
	}
}
