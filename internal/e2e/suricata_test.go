//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// TestSuricata is the how-to's scenario with every part real: Suricata
// with the project's test rules watches the server's interface, the
// attacker requests a suspicious URL and scans with nmap, the pipeline (as
// the unit starts it) mails the admin through Postfix and bans the
// attacker with iptables; the allow-listed admin keeps access; the ban is
// lifted after the timeout; a stage killed with -9 comes back and no alert
// line is lost.
func TestSuricata(t *testing.T) {
	hosttest.Require(t, "suricata", "nmap")
	lab := hosttest.NewLab(t, "qws")
	logDir := t.TempDir()
	suri := startSuricata(t, lab.Srv, logDir)
	_ = suri
	s := newScenarioOn(t, lab, filepath.Join(logDir, "fast.log"))
	atk, adm, srv := lab.Atk, lab.Adm, lab.Srv

	// The suspicious URL: the packet that starts it all.
	start := time.Now()
	if !atk.CanConnectPath(s.web(srv.IPv4), "/wp-login.php") {
		t.Fatal("attacker could not reach the server before any alert")
	}
	if !waitFor(10*time.Second, func() bool { return s.banned(t, atk.IPv4) }) {
		t.Fatalf("attacker not banned 10 s after the suspicious request\nfast.log:\n%s\npipeline stderr:\n%s",
			readFile(s.fastlog), s.pipe.stderr.String())
	}
	t.Logf("latency from the attack packet to the ban (Suricata -> fast.log -> pipeline -> iptables): %v", time.Since(start))

	// Scanning on: Suricata still sees the banned attacker's packets
	// (af-packet is before netfilter), so the alerts go on and escalate.
	atk.Run(t, "nmap", "-n", "-sS", "-p", "1-1000", "-T5", "--max-retries", "0", srv.IPv4.String())
	for range 4 {
		atk.Run(t, "nmap", "-n", "-sS", "-p", "23", "-T5", "--max-retries", "0", srv.IPv4.String())
	}
	if atk.CanConnect(s.web(srv.IPv4)) {
		t.Error("banned attacker still connects")
	}
	if !adm.CanConnect(s.web(srv.IPv4)) {
		t.Error("allow-listed admin cannot connect")
	}
	var esc string
	if !waitFor(20*time.Second, func() bool {
		for _, m := range s.mbox.messages(s.tag) {
			subj := decodeHeader(m.Header.Get("Subject"))
			if (strings.Contains(subj, "Level 11") || strings.Contains(subj, "Level 12")) &&
				strings.Contains(body(m), "Src IP: "+atk.IPv4.String()) {
				esc = subj
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no escalation mail for %s\nfast.log:\n%s\npipeline stderr:\n%s", atk.IPv4, readFile(s.fastlog), s.pipe.stderr.String())
	}
	t.Logf("escalation mail: %s", esc)

	// The ban ends on time after the last alert.
	if !waitFor(s.timeout+10*time.Second, func() bool { return !s.banned(t, atk.IPv4) }) {
		t.Fatal("ban not lifted after the timeout")
	}
	if !atk.CanConnect(s.web(srv.IPv4)) {
		t.Error("attacker still cannot connect after the ban expired")
	}

	// kill -9 one stage while the pipe is idle; the pipeline restarts and the
	// next attack, over IPv6, is handled like the first.
	before := s.pipe.Restarts()
	if err := syscallKill(s.pipe.stagePID(t, "block")); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool { return s.pipe.Restarts() > before }) {
		t.Fatalf("pipeline did not restart after kill -9 block\n%s", s.pipe.stderr.String())
	}
	time.Sleep(500 * time.Millisecond) // let the new pipeline open fast.log
	_ = atk.CanConnectPath(s.web(srv.IPv6), "/wp-login.php")
	if !waitFor(10*time.Second, func() bool { return s.banned(t, atk.IPv6) }) {
		t.Fatalf("attacker's IPv6 address not banned after the restart\nfast.log:\n%s\n%s", readFile(s.fastlog), s.pipe.stderr.String())
	}
	s.checkEveryLineOnce(t)
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// startSuricata runs Suricata on h's eth0 with the project's test rules,
// writing fast.log (and not eve.json, as the how-to sets it) into dir.
func startSuricata(t *testing.T, h hosttest.Host, dir string) *os.Process {
	t.Helper()
	return startSuricataOutputs(t, h, dir, "", true, false)
}
