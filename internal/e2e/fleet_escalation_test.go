//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFleetEscalation runs the README's cross-server escalation recipe:
// `share publish` on each of five servers, and one `share subscribe |
// correlate --no-builtin -r local_rules.xml` for the fleet (here through
// share's embedded server on loopback). One source probing each server
// twice at Priority 2 (ten events, two per destination) escalates there to
// "Several medium-severity Suricata alerts" (300003, level 9: a ban),
// which a correlate with the built-in rules does not reach: its
// first-time-seen rule (20100) takes each server's first probe.
func TestFleetEscalation(t *testing.T) {
	share := buildShare(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	rules := filepath.Join(repo, "testdata", "rules", "local_rules.xml")

	// The fleet's correlate, fed by share subscribe.
	alerts := filepath.Join(dir, "fleet-alerts.jsonl")
	sub := exec.Command("sh", "-c", fmt.Sprintf("exec %s subscribe --serve 127.0.0.1:%d --store %s --origin fleet | exec %s --no-builtin -r %s --state %s > %s",
		share, port, filepath.Join(dir, "nats"), filepath.Join(binDir, "correlate"), rules, filepath.Join(dir, "corr"), alerts))
	var subErr lockedBuffer
	sub.Stderr = &subErr
	sub.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-sub.Process.Pid, syscall.SIGKILL) }()
	if !waitFor(10*time.Second, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("embedded server not up\n%s", subErr.String())
	}
	time.Sleep(300 * time.Millisecond) // share subscribe's subscription

	// Five servers, two probes each from one source.
	var all []string
	for i := 1; i <= 5; i++ {
		var log strings.Builder
		for j := range 2 {
			fmt.Fprintf(&log, "05/14/2020-22:10:%02d.494373  [**] [1:2001219:20] ET SCAN Potential SSH Scan [**] [Classification: Attempted Information Leak] [Priority: 2] {TCP} 198.51.100.241:%d -> 198.51.100.2%d:22\n",
				10+2*i+j, 35100+10*i+j, i)
		}
		all = append(all, log.String())
		fast := filepath.Join(dir, "fast"+strconv.Itoa(i)+".log")
		if err := os.WriteFile(fast, []byte(log.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		pub := exec.Command("sh", "-c", fmt.Sprintf("TZ=UTC %s --tz UTC %s | %s publish --nats %s --origin web%d > /dev/null",
			filepath.Join(binDir, "fastparse"), fast, share, url, i))
		if out, err := pub.CombinedOutput(); err != nil || len(out) > 0 {
			t.Fatalf("web%d: %v\n%s", i, err, out)
		}
	}
	// The subscriber writes as events come; give the last ones a moment,
	// then stop it as systemd would (SIGTERM), which ends correlate's input.
	time.Sleep(500 * time.Millisecond)
	_ = syscall.Kill(-sub.Process.Pid, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- sub.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("subscriber did not stop\n%s", subErr.String())
	}
	got, err := os.ReadFile(alerts)
	if err != nil {
		t.Fatal(err)
	}
	ids := ruleIDs(string(got))
	t.Logf("fleet correlate (--no-builtin): %v", ids)
	if !strings.Contains(string(got), `"id":"300003","level":9`) {
		t.Errorf("no escalation to 300003 (level 9) across the fleet:\n%s\nstderr:\n%s", got, subErr.String())
	}

	// The same ten events through a correlate with the built-in rules.
	cmd := exec.Command("sh", "-c", fmt.Sprintf("TZ=UTC %s --tz UTC - | %s -r %s --state %s",
		filepath.Join(binDir, "fastparse"), filepath.Join(binDir, "correlate"), rules, filepath.Join(dir, "corr2")))
	cmd.Stdin = strings.NewReader(strings.Join(all, ""))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("correlate with built-ins: %v", err)
	}
	t.Logf("fleet correlate with the built-in rules: %v", ruleIDs(string(out)))
	if strings.Contains(string(out), `"id":"300003"`) {
		t.Logf("note: the built-in rules escalated too")
	}
}

func ruleIDs(jsonl string) []string {
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(jsonl), "\n") {
		if id := between(l, `"rule":{"id":"`, `"`); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}
