//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

var (
	repo   string // the repository root
	binDir string // the four stages, built once
)

func TestMain(m *testing.M) {
	var err error
	repo, err = filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "qwe-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/fastparse", "./cmd/correlate", "./cmd/notify", "./cmd/block", "./cmd/share")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	return m.Run()
}

// settings is a quietwatch.env for a test run.
type settings map[string]string

func (s settings) write(t *testing.T, path string) {
	t.Helper()
	var b strings.Builder
	for k, v := range s {
		fmt.Fprintf(&b, "%s=%s\n", k, strconv.Quote(v))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pipeline runs scripts/quietwatch-run inside a host's namespace and, like
// systemd's Restart=always, starts it again whenever it exits.
type pipeline struct {
	t        *testing.T
	host     hosttest.Host
	env      string
	stdout   *lockedBuffer
	stderr   *lockedBuffer
	mu       sync.Mutex
	cmd      *exec.Cmd
	restarts int
	stop     chan struct{}
	done     chan struct{}
}

func startPipeline(t *testing.T, host hosttest.Host, env string) *pipeline {
	p := &pipeline{t: t, host: host, env: env, stdout: &lockedBuffer{}, stderr: &lockedBuffer{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go p.supervise()
	t.Cleanup(p.Stop)
	return p
}

func (p *pipeline) supervise() {
	defer close(p.done)
	for {
		cmd := p.host.Command(context.Background(), "bash", filepath.Join(repo, "scripts", "quietwatch-run"), p.env)
		cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
		if err := cmd.Start(); err != nil {
			p.t.Errorf("start pipeline: %v", err)
			return
		}
		p.mu.Lock()
		p.cmd = cmd
		p.mu.Unlock()
		_ = cmd.Wait()
		select {
		case <-p.stop:
			return
		case <-time.After(200 * time.Millisecond): // systemd's RestartSec, shortened
		}
		p.mu.Lock()
		p.restarts++
		p.mu.Unlock()
	}
}

// Stop sends SIGTERM to the wrapper, as systemctl stop does, and waits.
func (p *pipeline) Stop() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.mu.Lock()
	if p.cmd != nil && p.cmd.Process != nil {
		// ip netns exec execs bash in place, so the pid is the wrapper's.
		_ = p.cmd.Process.Signal(sigterm)
	}
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		p.t.Errorf("pipeline did not stop within 40 s\nstderr:\n%s", p.stderr.String())
	}
}

// Signal sends sig to the running wrapper, as systemctl reload does.
func (p *pipeline) Signal(sig os.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

func (p *pipeline) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// stagePID finds the pid of a running stage of this pipeline.
func (p *pipeline) stagePID(t *testing.T, stage string) int {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "pids", p.host.NS).Output()
	for _, f := range strings.Fields(string(out)) {
		cmdline, err := os.ReadFile("/proc/" + f + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if args[0] == filepath.Join(binDir, stage) {
			pid, _ := strconv.Atoi(f)
			return pid
		}
	}
	t.Fatalf("no %s process in %s", stage, p.host.NS)
	return 0
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond every 20 ms until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mailbox reads messages delivered by Postfix to a local mbox.
type mailbox string

// messages returns the messages whose Subject contains tag.
func (m mailbox) messages(tag string) []*mail.Message {
	data, err := os.ReadFile(string(m))
	if err != nil {
		return nil
	}
	var msgs []*mail.Message
	for _, raw := range splitMbox(data) {
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			continue
		}
		if strings.Contains(decodeHeader(msg.Header.Get("Subject")), tag) {
			msgs = append(msgs, msg)
		}
	}
	return msgs
}

func splitMbox(data []byte) [][]byte {
	var out [][]byte
	var cur []byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte("From ")) {
			if cur != nil {
				out = append(out, cur)
			}
			cur = []byte{}
			continue
		}
		if cur != nil {
			cur = append(append(cur, line...), '\n')
		}
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out
}

func decodeHeader(s string) string {
	d, err := new(mimeDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

func body(m *mail.Message) string {
	b := new(bytes.Buffer)
	_, _ = b.ReadFrom(m.Body)
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		return decodeQP(b.Bytes())
	}
	return b.String()
}

// requirePostfix checks that Postfix runs and will deliver to /var/mail/root.
func requirePostfix(t *testing.T) mailbox {
	t.Helper()
	hosttest.Require(t, "postfix", "postqueue", "/usr/sbin/sendmail")
	if err := exec.Command("postfix", "status").Run(); err != nil {
		hosttest.Missing(t, "postfix is not running")
	}
	return mailbox("/var/mail/root")
}
