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
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func TestMain(m *testing.M) {
	// The kill -9 test runs notify as a real process: this test binary.
	if os.Getenv("QWN_NOTIFY_MAIN") == "1" {
		os.Exit(Main(append([]string{"notify"}, os.Args[1:]...), os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// fakeSendmail writes a sendmail script whose behaviour is read from a
// file at each call: "fail" exits 75 (EX_TEMPFAIL), "hang" never reads nor
// exits, "ok" stores the message in out/.
type fakeSendmail struct {
	dir, path string
}

func newFakeSendmail(t *testing.T) *fakeSendmail {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fakeSendmail{dir: dir, path: filepath.Join(dir, "sendmail")}
	script := fmt.Sprintf(`#!/bin/sh
[ "$1 $2" = "-t -i" ] || { echo "bad args: $*" >&2; exit 64; }
case $(cat %[1]s/mode) in
fail) cat >/dev/null; echo "sendmail: fatal: queue file write error" >&2; exit 75 ;;
hang) exec sleep 3600 ;;
ok) cat > %[1]s/out/tmp.$$ && mv %[1]s/out/tmp.$$ %[1]s/out/$$.$(date +%%s%%N).eml ;;
esac
`, dir)
	if err := os.WriteFile(f.path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f.set(t, "fail")
	return f
}

func (f *fakeSendmail) set(t *testing.T, mode string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "mode.tmp"), []byte(mode), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(f.dir, "mode.tmp"), filepath.Join(f.dir, "mode")); err != nil {
		t.Fatal(err)
	}
}

// delivered returns how often each tag was delivered.
func (f *fakeSendmail) delivered(t *testing.T) map[string]int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(f.dir, "out", "*.eml"))
	got := map[string]int{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, body := decodedBody(t, data)
		for _, tag := range tags(body) {
			got[tag]++
		}
	}
	return got
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader that can
// wait for the next write: tests wait for notify's records without polling.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed (and replaced) at each write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// next returns the contents and a channel closed at the next write.
func (s *syncBuffer) next() (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.b.String(), s.changed
}

// hangGuard fires shortly before the test binary's -timeout (or after
// ten minutes without one): a hang then fails the test with a message
// instead of a panic. It is no measure of speed: nothing waits for it
// unless something is stuck.
func hangGuard(t *testing.T) <-chan time.Time {
	d := 10 * time.Minute
	if dl, ok := t.Deadline(); ok {
		d = time.Until(dl) * 9 / 10
	}
	return time.After(d)
}

// waitFor waits until cond holds for what has been written to buf,
// checking at each write (no polling). The processes the tests wait on are
// real (sendmail scripts, notify itself), so there is no clock to fake.
func waitFor(t *testing.T, what string, buf *syncBuffer, cond func(out string) bool) {
	t.Helper()
	guard := hangGuard(t)
	for {
		out, changed := buf.next()
		if cond(out) {
			return
		}
		select {
		case <-changed:
		case <-guard:
			t.Fatalf("never happened: %s; output so far:\n%s", what, out)
		}
	}
}

// waitExit waits for a run's exit code.
func waitExit(t *testing.T, what string, done <-chan int) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-hangGuard(t):
		t.Fatalf("never happened: %s", what)
		return 0
	}
}

func checkOnce(t *testing.T, got map[string]int, want []string) {
	t.Helper()
	for _, tag := range want {
		if got[tag] != 1 {
			t.Errorf("alert %s delivered %d times", tag, got[tag])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d distinct alerts delivered, want %d", len(got), len(want))
	}
}

// TestMTAFailures: with sendmail failing (exit 75) and then hanging, notify
// keeps reading stdin (thousands of alerts go through a real pipe while the
// MTA is stuck), loses nothing, and delivers everything exactly once when
// the MTA recovers.
func TestMTAFailures(t *testing.T) {
	sm := newFakeSendmail(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"notify", "--to", "root", "--sendmail", sm.path,
			"--spool", t.TempDir(), "--group-window", "100ms", "--max-per-hour", "0",
			"--send-timeout", "300ms", "--retry-min", "20ms", "--retry-max", "200ms", "--exit-wait", "60s"},
			pr, &stdout, &stderr, &env{})
	}()
	var want []string
	feed := func(prefix string, n int) {
		var b strings.Builder
		for i := range n {
			tag := fmt.Sprintf("%s-%05d", prefix, i)
			want = append(want, tag)
			b.WriteString(alertLine(tag, tag, 10))
		}
		if _, err := io.WriteString(pw, b.String()); err != nil {
			t.Fatal(err)
		}
	}

	feed("fail", 100)
	waitFor(t, "a retry after exit 75", &stdout, func(out string) bool {
		return strings.Contains(out, `"status":"retry"`) && strings.Contains(out, "exit status 75")
	})

	sm.set(t, "hang")
	waitFor(t, "a hung sendmail to be killed", &stdout, func(out string) bool {
		return strings.Contains(out, "--send-timeout")
	})
	// The MTA hangs: 5000 alerts (about 3 MB, fifty times a pipe's buffer)
	// must still be read. The write returns only once notify read it all.
	feed("hang", 5000)
	if strings.Contains(stdout.String(), `"status":"sent"`) {
		t.Fatal("something was sent while the MTA was down")
	}

	sm.set(t, "ok")
	pw.Close()
	if code := waitExit(t, "notify finishing after the MTA recovered", done); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	checkOnce(t, sm.delivered(t), want)
	ids := map[string]int{}
	for _, r := range mailLog(t, []byte(stdout.String())) {
		if r.Mail.Status == "sent" {
			for _, id := range r.Mail.Alerts {
				ids[id]++
			}
		}
	}
	checkOnce(t, ids, want)
}

// TestKill9: notify killed with SIGKILL while the MTA fails; a new run
// sends what was spooled (messages and alerts still in the journal), and
// what was accepted before is not sent again.
func TestKill9(t *testing.T) {
	sm := newFakeSendmail(t)
	sm.set(t, "ok")
	spoolDir := t.TempDir()
	cmd := exec.Command(os.Args[0], "--to", "root", "--sendmail", sm.path, "--spool", spoolDir,
		"--group-window", "0", "--max-per-hour", "5", "--retry-min", "20ms", "--retry-max", "100ms")
	stdin, stdout, _ := startNotify(t, cmd)
	var want []string
	feed := func(from, to int) {
		var b strings.Builder
		for i := from; i < to; i++ {
			tag := fmt.Sprintf("k-%03d", i)
			want = append(want, tag)
			b.WriteString(alertLine(tag, tag, 10))
		}
		if _, err := io.WriteString(stdin, b.String()); err != nil {
			t.Fatal(err)
		}
	}
	feed(0, 2) // accepted before the crash
	waitFor(t, "two messages sent", stdout, func(out string) bool {
		return strings.Count(out, `"status":"sent"`) == 2
	})
	sm.set(t, "fail")
	feed(2, 40) // 3 more messages (then the limit), 35 alerts queued
	waitFor(t, "a retry and 35 queued alerts", stdout, func(out string) bool {
		return strings.Contains(out, `"status":"retry"`) && strings.Contains(out, `"queued":35`)
	})
	cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck
	cmd.Wait()                          //nolint:errcheck

	sm.set(t, "ok")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--sendmail", sm.path, "--spool", spoolDir,
		"--group-window", "0", "--max-per-hour", "0"}, strings.NewReader(""), &out, &errOut, &env{})
	if code != 0 {
		t.Fatalf("restart: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "3 message(s) and 35 alert(s) left by an earlier run") {
		t.Errorf("restart stderr: %s", errOut.String())
	}
	checkOnce(t, sm.delivered(t), want)
}

// TestSIGTERM: a signal (the context's end) stops notify at once with exit
// 0, even with a hung MTA and an open group; the next run mails it all.
// Under synctest: "the alerts are queued" is the moment every goroutine
// waits, and a notify that does not stop is a deadlock, not a timeout.
func TestSIGTERM(t *testing.T) {
	dir := t.TempDir()
	var want []string
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var stdout, stderr syncBuffer
		go func() {
			done <- run(ctx, []string{"notify", "--to", "root", "--spool", dir, "--group-window", "0", "--max-per-hour", "2"},
				pr, &stdout, &stderr, &env{transport: blockedMTA{}})
		}()
		for i := range 5 {
			tag := fmt.Sprintf("s%d", i)
			want = append(want, tag)
			io.WriteString(pw, alertLine(tag, tag, 10)) //nolint:errcheck
		}
		synctest.Wait()
		if !strings.Contains(stdout.String(), `"queued":3`) {
			t.Fatalf("not 3 alerts queued:\n%s", stdout.String())
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		pw.Close() // the reader, still in its read, ends
	})
	mta := &fakeMTA{}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"notify", "--to", "root", "--spool", dir, "--max-per-hour", "0"},
		strings.NewReader(""), &out, &errOut, &env{transport: mta}); code != 0 {
		t.Fatalf("restart: exit %d: %s", code, errOut.String())
	}
	got := map[string]int{}
	for _, m := range mta.messages() {
		_, body := decodedBody(t, m)
		for _, tag := range tags(body) {
			got[tag]++
		}
	}
	checkOnce(t, got, want)
}

// TestKill9DuringSendmail: notify killed with SIGKILL while its sendmail
// runs (it has read the whole message and not yet queued it). The old
// notify left that sendmail running: it queued the message after the kill,
// and the next run, finding the message still spooled, sent it again (the
// same Message-ID twice). Now the kernel kills the sendmail with notify,
// so the message is queued once, by the next run.
func TestKill9DuringSendmail(t *testing.T) {
	sm := newFakeSendmail(t)
	sm.set(t, "ok")
	d := sm.dir
	for _, f := range []string{"alive", "go"} {
		if err := syscall.Mkfifo(filepath.Join(d, f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The slow sendmail reads the message, opens "alive" (held open while
	// it lives), waits for a line on "go", then queues the message.
	slow := filepath.Join(d, "slow-sendmail")
	script := fmt.Sprintf("#!/bin/sh\ncat > %[1]s/msg.$$\nexec 3>%[1]s/alive\nread x < %[1]s/go\nmv %[1]s/msg.$$ %[1]s/out/$$.eml\n", d)
	if err := os.WriteFile(slow, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	spoolDir := t.TempDir()
	cmd := exec.Command(os.Args[0], "--to", "root", "--sendmail", slow, "--spool", spoolDir, "--group-window", "0")
	cmd.Env = append(os.Environ(), "QWN_NOTIFY_MAIN=1")
	cmd.Stdin = strings.NewReader(alertLine("k9", "k9", 10))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck
	// Opening "alive" returns once sendmail has the whole message.
	alive, err := os.Open(filepath.Join(d, "alive"))
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck
	cmd.Wait()                          //nolint:errcheck

	// Reading "alive" ends when the sendmail is gone.
	gone := make(chan struct{})
	go func() { io.Copy(io.Discard, alive); close(gone) }() //nolint:errcheck
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Errorf("sendmail still running 10 s after notify was killed")
		// Let it finish, as a real sendmail would: it queues the message.
		goFIFO, err := os.OpenFile(filepath.Join(d, "go"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		goFIFO.WriteString("go\n") //nolint:errcheck
		goFIFO.Close()
		<-gone
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--sendmail", sm.path, "--spool", spoolDir},
		strings.NewReader(""), &out, &errOut, &env{})
	if code != 0 {
		t.Fatalf("restart: exit %d: %s", code, errOut.String())
	}
	checkOnce(t, sm.delivered(t), []string{"k9"})
}

// startNotify starts cmd (this test binary, run as notify by
// QWN_NOTIFY_MAIN) with a stdin pipe and stdout and stderr collected; it
// is killed when the test ends.
func startNotify(t *testing.T, cmd *exec.Cmd) (io.WriteCloser, *syncBuffer, *syncBuffer) {
	t.Helper()
	cmd.Env = append(os.Environ(), "QWN_NOTIFY_MAIN=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck
	return stdin, stdout, stderr
}
