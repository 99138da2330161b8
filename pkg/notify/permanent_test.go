package notify

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/spool"
)

// policySMTP is an in-process SMTP server (plain, on loopback) that
// answers the final dot of a message carrying "tag=bad" with reject, and
// accepts the others.
type policySMTP struct {
	ln     net.Listener
	reject string
	mu     sync.Mutex
	got    [][]byte // accepted messages
	tries  int      // rejected deliveries
}

func newPolicySMTP(t *testing.T, reject string) *policySMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &policySMTP{ln: ln, reject: reject}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); s.serve(c) }()
		}
	}()
	return s
}

func (s *policySMTP) serve(c net.Conn) {
	r := bufio.NewReader(c)
	w := func(line string) { io.WriteString(c, line+"\r\n") } //nolint:errcheck
	w("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"), strings.HasPrefix(cmd, "MAIL"),
			strings.HasPrefix(cmd, "RCPT"), cmd == "RSET", cmd == "NOOP":
			w("250 ok")
		case cmd == "DATA":
			w("354 go on")
			var data bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			s.mu.Lock()
			if bytes.Contains(data.Bytes(), []byte("tag=bad")) {
				s.tries++
				s.mu.Unlock()
				w(s.reject)
				continue
			}
			s.got = append(s.got, data.Bytes())
			s.mu.Unlock()
			w("250 queued")
		case cmd == "QUIT":
			w("221 bye")
			return
		default:
			w("502 unknown")
		}
	}
}

func (s *policySMTP) delivered(t *testing.T) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := map[string]int{}
	for _, m := range s.got {
		_, body := decodedBody(t, m)
		for _, tag := range tags(body) {
			got[tag]++
		}
	}
	return got
}

// checkFailed checks that the run moved exactly the message holding
// alert "bad" to failed/, said so in a "failed" record (the reason
// matching errText), and that the spool's msg/ is empty.
func checkFailed(t *testing.T, dir string, stdout []byte, errText string) {
	t.Helper()
	var failed, retries int
	for _, r := range mailLog(t, stdout) {
		m := r.Mail
		switch m.Status {
		case "failed":
			failed++
			if strings.Join(m.Alerts, ",") != "bad" || !strings.Contains(m.Error, errText) || m.Attempt != permanentTries {
				t.Errorf("failed record %+v", m)
			}
			if data, err := os.ReadFile(m.File); err != nil || !bytes.Contains(data, []byte("tag=bad")) {
				t.Errorf("failed message %s not kept: %v", m.File, err)
			}
		case "retry":
			retries++
			if strings.Join(m.Alerts, ",") != "bad" {
				t.Errorf("retry of a good message: %+v", m)
			}
		}
	}
	if failed != 1 || retries != permanentTries-1 {
		t.Errorf("%d failed and %d retry records; want 1 and %d", failed, retries, permanentTries-1)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "msg", "*")); len(left) != 0 {
		t.Errorf("left in msg/: %v", left)
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "failed", "*.eml")); len(kept) != 1 {
		t.Errorf("in failed/: %v", kept)
	}
}

// permanentInput is three alerts, one mail each; the middle one is the
// one the MTA refuses.
func permanentInput() string {
	return alertLine("ok1", "ok1", 10) + alertLine("bad", "bad", 10) + alertLine("ok2", "ok2", 10)
}

// TestPermanentSMTP: an SMTP server refusing one message for good (550)
// does not hold back the ones behind it: after permanentTries refusals
// the message goes to failed/ with a "failed" record, the next is sent,
// and the run exits 1 to say not everything was delivered.
func TestPermanentSMTP(t *testing.T) {
	srv := newPolicySMTP(t, "550 5.7.1 <root>: message rejected by policy")
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--smtp", srv.ln.Addr().String(),
		"--spool", dir, "--group-window", "0", "--max-per-hour", "0", "--retry-min", "10ms", "--retry-max", "50ms",
		"--exit-wait", "30s"}, strings.NewReader(permanentInput()), &stdout, &stderr, &env{})
	if code != 1 || !strings.Contains(stderr.String(), "1 message(s) refused for good by the MTA") {
		t.Fatalf("exit %d, want 1: %s", code, stderr.String())
	}
	checkOnce(t, srv.delivered(t), []string{"ok1", "ok2"})
	srv.mu.Lock()
	tries := srv.tries
	srv.mu.Unlock()
	if tries != permanentTries {
		t.Errorf("the refused message was tried %d times, want %d", tries, permanentTries)
	}
	checkFailed(t, dir, stdout.Bytes(), "end of DATA: 550")
}

// TestTemporarySMTP: a 4xx is retried for as long as it lasts; the
// message is not failed.
func TestTemporarySMTP(t *testing.T) {
	srv := newPolicySMTP(t, "451 4.3.0 try again later")
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--smtp", srv.ln.Addr().String(),
		"--spool", dir, "--group-window", "0", "--max-per-hour", "0", "--retry-min", "1ms", "--retry-max", "1ms",
		"--exit-wait", "0"}, strings.NewReader(alertLine("bad", "bad", 10)), &stdout, &stderr, &env{})
	if code != 75 {
		t.Fatalf("exit %d, want 75: %s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), `"failed"`) {
		t.Errorf("a 4xx failed the message:\n%s", stdout.String())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "msg", "*.eml")); len(left) != 1 {
		t.Errorf("in msg/: %v", left)
	}
}

// TestPermanentSendmail: a real sendmail program exiting 67 (EX_NOUSER)
// for one message: it goes to failed/, the others are delivered, and a
// restart does not send it again.
func TestPermanentSendmail(t *testing.T) {
	out := t.TempDir()
	path := filepath.Join(t.TempDir(), "sendmail")
	script := fmt.Sprintf(`#!/bin/sh
cat > %[1]s/tmp.$$
if grep -q tag=bad %[1]s/tmp.$$; then
	rm %[1]s/tmp.$$
	echo "sendmail: nobody: User unknown" >&2
	exit 67
fi
mv %[1]s/tmp.$$ %[1]s/$$.eml
`, out)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sm := &fakeSendmail{dir: filepath.Dir(out), path: path}
	delivered := func() map[string]int {
		got := map[string]int{}
		files, _ := filepath.Glob(filepath.Join(out, "*.eml"))
		for _, f := range files {
			data, err := os.ReadFile(f)
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
	dir := t.TempDir()
	args := []string{"notify", "--to", "root", "--sendmail", sm.path, "--spool", dir, "--group-window", "0",
		"--max-per-hour", "0", "--retry-min", "10ms", "--retry-max", "50ms", "--exit-wait", "30s"}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(permanentInput()), &stdout, &stderr, &env{})
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr.String())
	}
	checkOnce(t, delivered(), []string{"ok1", "ok2"})
	checkFailed(t, dir, stdout.Bytes(), "exit status 67: sendmail: nobody: User unknown")

	// The next run: nothing pending, nothing sent again.
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, &env{}); code != 0 {
		t.Fatalf("restart: exit %d: %s", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("restart wrote %s", stdout.String())
	}
	checkOnce(t, delivered(), []string{"ok1", "ok2"})
}

// TestReaderStoppedAfterRun: once run has returned on a signal, the reader
// goroutine (which may still be inside a read of stdin) can no longer
// append to the spool, which run's caller closes right after. It used to
// append after run returned, racing with spool.Close (a line lost).
func TestReaderStoppedAfterRun(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	cfg := Config{To: []string{"root"}, From: "q@vm", Host: "vm", MinLevel: 9, Window: time.Second,
		SendTimeout: time.Minute, RetryMin: time.Second, RetryMax: time.Second, ExitWait: time.Minute, SyncEvery: time.Second}
	var stdout, stderr syncBuffer
	n := newNotifier(cfg, sp, blockedMTA{}, &stdout, &stderr)
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.run(ctx, pr); err != nil {
		t.Fatal(err)
	}
	// What the reader would do with the next line it reads.
	if err := n.add([]byte(alertLine("late", "late", 10)), 1); err == nil {
		t.Error("the reader appended after run returned")
	}
	if err := sp.Flush(); err != nil {
		t.Fatal(err)
	}
	var lines int
	if err := sp.EachUnconsumed(func(spool.Line) error { lines++; return nil }); err != nil {
		t.Fatal(err)
	}
	if lines != 0 {
		t.Errorf("%d line(s) appended to the journal after run returned", lines)
	}
}
