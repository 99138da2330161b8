//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// scenario is one run of the how-to's scenario on a lab: server, attacker
// and allow-listed admin, the pipeline as the unit starts it, Postfix and
// iptables for real.
type scenario struct {
	lab     *hosttest.Lab
	dir     string
	fastlog string
	alerts  string
	tag     string // the hostname in mail subjects: finds this run's mail
	timeout time.Duration
	mbox    mailbox
	pipe    *pipeline
}

func newScenario(t *testing.T, prefix string) *scenario {
	t.Helper()
	return newScenarioOn(t, hosttest.NewLab(t, prefix), "")
}

// newScenarioOn starts the pipeline on lab's server, following fastlog (a
// new empty file when "").
func newScenarioOn(t *testing.T, lab *hosttest.Lab, fastlog string) *scenario {
	t.Helper()
	hosttest.Require(t, "iptables", "ip6tables", "curl", "setpriv")
	mbox := requirePostfix(t)
	prefix := lab.Srv.NS[:3]
	lab.Srv.Serve(t, 8080)
	dir := t.TempDir()
	s := &scenario{
		lab: lab, dir: dir, fastlog: fastlog,
		alerts:  filepath.Join(dir, "alerts.jsonl"),
		tag:     fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e9),
		timeout: 6 * time.Second,
		mbox:    mbox,
	}
	if fastlog == "" {
		s.fastlog = filepath.Join(dir, "fast.log")
		if err := os.WriteFile(s.fastlog, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := filepath.Join(dir, "quietwatch.env")
	settings{
		"QW_BIN":       binDir,
		"QW_FASTLOG":   s.fastlog,
		"QW_RULES":     filepath.Join(repo, "testdata", "rules", "local_rules.xml"),
		"QW_STATE_DIR": filepath.Join(dir, "state"),
		"QW_RUN_DIR":   filepath.Join(dir, "run"),
		"QW_ALERT_LOG": s.alerts,
		// As the unit runs it: every stage but block as an unprivileged
		// user (nobody here), block as root.
		"QW_USER":             "nobody",
		"QW_HOSTNAME":         s.tag,
		"QW_MAIL_TO":          "root",
		"QW_MAIL_LEVEL":       "9",
		"QW_MAX_PER_HOUR":     "0",
		"QW_NOTIFY_TRANSPORT": "--sendmail /usr/sbin/sendmail",
		"QW_NOTIFY_ARGS":      "--group-window 1s",
		"QW_BLOCK_LEVEL":      "9",
		"QW_BLOCK_TIMEOUT":    s.timeout.String(),
		"QW_BLOCK_BACKENDS":   "iptables",
		"QW_ALLOW":            lab.Adm.IPv4.String() + " " + lab.Adm.IPv6.String(),
		"QW_AR_LOG":           filepath.Join(dir, "active-responses.log"),
		"QW_FASTPARSE_ARGS":   "--from-start",
	}.write(t, env)
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	// t.TempDir is root's alone (0700): let the unprivileged stages in, as
	// /var/lib/quietwatch and /run/quietwatch let them in on a server.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.pipe = startPipeline(t, lab.Srv, env)
	// Ready when block has set up its chain in both families.
	if !waitFor(20*time.Second, func() bool {
		return lab.Srv.Command(t.Context(), "iptables", "-S", "QUIETWATCH").Run() == nil &&
			lab.Srv.Command(t.Context(), "ip6tables", "-S", "QUIETWATCH").Run() == nil
	}) {
		t.Fatalf("pipeline not ready after 20 s\n%s", s.pipe.stderr.String())
	}
	return s
}

// banned reports whether ip appears in the server's QUIETWATCH chain.
func (s *scenario) banned(t *testing.T, ip netip.Addr) bool {
	prog := "iptables"
	if ip.Is6() {
		prog = "ip6tables"
	}
	out, err := s.lab.Srv.Command(t.Context(), prog, "-S", "QUIETWATCH").CombinedOutput()
	return err == nil && strings.Contains(string(out), ip.String()+"/")
}

func (s *scenario) web(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 8080) }

// alertLogs returns the full_log of every alert the pipeline wrote.
func (s *scenario) alertLogs(t *testing.T) []string {
	data, err := os.ReadFile(s.alerts)
	if err != nil {
		return nil
	}
	var logs []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var a record.Alert
		if err := record.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("alert log: %v: %s", err, line)
		}
		logs = append(logs, a.FullLog)
	}
	return logs
}

// checkEveryLineOnce proves that each line of fast.log became exactly one
// alert: nothing lost, nothing repeated.
func (s *scenario) checkEveryLineOnce(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(s.fastlog)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(data)), "\n")
	var got []string
	if !waitFor(10*time.Second, func() bool { got = s.alertLogs(t); return len(got) >= len(want) }) {
		t.Errorf("alert log has %d lines, fast.log %d", len(got), len(want))
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("alerts do not match fast.log one to one: %d alerts for %d lines", len(got), len(want))
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("lost: %s", w)
			}
		}
	}
	t.Logf("%d fast.log lines, %d alerts, each exactly once", len(want), len(got))
}

// fastLine is a Suricata fast.log line as Suricata writes it, with the
// sensor's local time.
func fastLine(now time.Time, sid int, msg, class string, prio int, src netip.AddrPort, dst netip.AddrPort) string {
	ip := func(a netip.Addr) string {
		if a.Is6() {
			return expand6(a)
		}
		return a.String()
	}
	return fmt.Sprintf("%s  [**] [1:%d:1] %s [**] [Classification: %s] [Priority: %d] {TCP} %s:%d -> %s:%d",
		now.Format("01/02/2006-15:04:05.000000"), sid, msg, class, prio, ip(src.Addr()), src.Port(), ip(dst.Addr()), dst.Port())
}

func expand6(a netip.Addr) string {
	b := a.As16()
	var parts []string
	for i := 0; i < 16; i += 2 {
		parts = append(parts, fmt.Sprintf("%02x%02x", b[i], b[i+1]))
	}
	return strings.Join(parts, ":")
}

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

// TestReplay is the deterministic variant of the end-to-end test: instead
// of Suricata, a replayer appends real-looking fast.log lines at a steady
// pace. Everything downstream is real.
func TestReplay(t *testing.T) {
	s := newScenario(t, "qwr")
	atk, adm, srv := s.lab.Atk, s.lab.Adm, s.lab.Srv
	if !atk.CanConnect(s.web(srv.IPv4)) || !adm.CanConnect(s.web(srv.IPv4)) {
		t.Fatal("hosts cannot reach the web server before any alert")
	}

	// Five high-severity alerts from the attacker within a second (rule
	// 300011, then 300012 at the fifth), and one from the admin.
	port := uint16(40000)
	nmap := func(src netip.Addr) string {
		port++
		return fastLine(time.Now(), 2024364, "ET SCAN Possible Nmap User-Agent Observed", "Web Application Attack", 1,
			netip.AddrPortFrom(src, port), s.web(srv.IPv4))
	}
	// The admin's alert first: once it is in the alert log, the pipeline is
	// up, and the attacker's ban latency is measured on a running pipeline.
	appendLine(t, s.fastlog, nmap(adm.IPv4))
	if !waitFor(15*time.Second, func() bool { return len(s.alertLogs(t)) == 1 }) {
		t.Fatalf("the admin's alert did not come through\npipeline stderr:\n%s", s.pipe.stderr.String())
	}
	// Least privilege: only block runs as root.
	for stage, wantRoot := range map[string]bool{"fastparse": false, "correlate": false, "notify": false, "block": true} {
		if root := procUID(t, s.pipe.stagePID(t, stage)) == "0"; root != wantRoot {
			t.Errorf("%s runs as root: %v, want %v", stage, root, wantRoot)
		}
	}
	var first time.Time
	for i := range 5 {
		if i == 0 {
			first = time.Now()
		}
		appendLine(t, s.fastlog, nmap(atk.IPv4))
		if i == 0 {
			if !waitFor(5*time.Second, func() bool { return s.banned(t, atk.IPv4) }) {
				t.Fatalf("attacker not banned 5 s after the first alert\npipeline stderr:\n%s", s.pipe.stderr.String())
			}
			t.Logf("ban latency (fast.log line written -> iptables rule in place): %v", time.Since(first))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if atk.CanConnect(s.web(srv.IPv4)) {
		t.Error("banned attacker still connects")
	}
	if !adm.CanConnect(s.web(srv.IPv4)) {
		t.Error("allow-listed admin cannot connect")
	}
	if s.banned(t, adm.IPv4) {
		t.Error("allow-listed admin was banned")
	}

	// The escalation mail for the attacker, and the admin's own alert mail.
	var esc string
	ok := waitFor(15*time.Second, func() bool {
		for _, m := range s.mbox.messages(s.tag) {
			subj := decodeHeader(m.Header.Get("Subject"))
			b := body(m)
			if strings.Contains(subj, "Level 11") && strings.Contains(b, "Src IP: "+atk.IPv4.String()) {
				esc = subj
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no escalation mail (Level 11) for %s in %s\npipeline stderr:\n%s", atk.IPv4, s.mbox, s.pipe.stderr.String())
	}
	t.Logf("escalation mail: %s", esc)

	// The reaper lifts the ban on time.
	if !waitFor(s.timeout+5*time.Second, func() bool { return !s.banned(t, atk.IPv4) }) {
		t.Fatalf("ban not lifted %v after the timeout", 5*time.Second)
	}
	if !atk.CanConnect(s.web(srv.IPv4)) {
		t.Error("attacker still cannot connect after the ban expired")
	}

	// systemctl reload (SIGHUP to the wrapper) reloads the stages and does
	// not restart the pipeline.
	before := s.pipe.Restarts()
	s.pipe.Signal(syscall.SIGHUP)
	time.Sleep(time.Second) // a restart would come within RestartSec
	if s.pipe.Restarts() != before || strings.Contains(s.pipe.stderr.String(), "exited with status") {
		t.Fatalf("SIGHUP restarted the pipeline\n%s", s.pipe.stderr.String())
	}

	// kill -9 a stage while the pipe is idle: the pipeline restarts and
	// resumes; the next alerts still come through, none lost or repeated.
	pid := s.pipe.stagePID(t, "correlate")
	if err := syscallKill(pid); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool { return s.pipe.Restarts() > before }) {
		t.Fatalf("pipeline did not restart after kill -9 correlate\n%s", s.pipe.stderr.String())
	}
	for range 3 {
		appendLine(t, s.fastlog, nmap(atk.IPv6))
	}
	if !waitFor(10*time.Second, func() bool { return s.banned(t, atk.IPv6) }) {
		t.Fatalf("attacker's IPv6 address not banned after the restart\n%s", s.pipe.stderr.String())
	}
	s.checkEveryLineOnce(t)
}

// procUID returns the real uid of pid, as /proc shows it.
func procUID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return ""
}
