package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// startSuricataOutputs is startSuricata with the outputs chosen: fast.log,
// eve.json (the stock eve-log: alerts, flows, dns, stats, ...), or both.
func startSuricataOutputs(t *testing.T, h hosttest.Host, dir string, fast, eve bool) {
	t.Helper()
	yes := map[bool]string{true: "yes", false: "no"}
	cmd := h.Command(context.Background(), "suricata",
		"-c", "/etc/suricata/suricata.yaml",
		"-S", filepath.Join(repo, "testdata", "suricata", "quietwatch-test.rules"),
		"-l", dir, "--af-packet=eth0", "-k", "none",
		"--set", "vars.address-groups.HOME_NET=[198.51.100.0/24,2001:db8::/64]",
		"--set", "outputs.0.fast.enabled="+yes[fast],
		"--set", "outputs.1.eve-log.enabled="+yes[eve])
	out, err := os.Create(filepath.Join(dir, "suricata.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start suricata: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(sigterm)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		out.Close()
	})
	if !waitFor(30*time.Second, func() bool {
		return strings.Contains(readFile(filepath.Join(dir, "suricata.out")), "Engine started") ||
			strings.Contains(readFile(filepath.Join(dir, "suricata.log")), "Engine started")
	}) {
		t.Fatalf("suricata did not start:\n%s", readFile(filepath.Join(dir, "suricata.out")))
	}
	for name, want := range map[string]bool{"fast.log": fast, "eve.json": eve} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Fatalf("suricata writes %s: %v, want %v", name, err == nil, want)
		}
	}
}

// alertKey is what an alert must have the same from fast.log and eve.json.
type alertKey struct {
	RuleID  string
	Level   int
	SrcIP   string
	SID     int
	FullLog string
	Time    string
}

// correlated runs fastparse ARGS | correlate on the how-to's rules and
// returns the alerts.
func correlated(t *testing.T, args ...string) []alertKey {
	t.Helper()
	sh := fmt.Sprintf("%q %s | %q -r %q", filepath.Join(binDir, "fastparse"), strings.Join(args, " "),
		filepath.Join(binDir, "correlate"), filepath.Join(repo, "testdata", "rules", "local_rules.xml"))
	cmd := exec.Command("sh", "-c", sh)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", sh, err, stderr.String())
	}
	var keys []alertKey
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var a record.Alert
		if err := record.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		k := alertKey{SrcIP: a.SrcIP, FullLog: a.FullLog, Time: a.Timestamp}
		if a.Rule != nil {
			k.RuleID, k.Level = a.Rule.ID, a.Rule.Level
		}
		if a.Alert != nil {
			k.SID = a.Alert.SignatureID
		}
		keys = append(keys, k)
	}
	return keys
}

// TestSuricataEVESameAlerts: the same traffic, seen by a real Suricata
// writing fast.log and eve.json at once, gives the same alerts from both
// (rule id, level, source, signature, and full_log byte for byte: the
// rules' <match> on "[Priority: 1]" works on eve.json's alerts too).
func TestSuricataEVESameAlerts(t *testing.T) {
	hosttest.Require(t, "suricata", "nmap", "curl")
	lab := hosttest.NewLab(t, "qwv")
	lab.Srv.Serve(t, 8080)
	dir := t.TempDir()
	startSuricataOutputs(t, lab.Srv, dir, true, true)
	atk, srv := lab.Atk, lab.Srv
	for _, path := range []string{"/wp-login.php", "/robots.txt", "/wp-login.php?x=1"} {
		atk.CanConnectPath(netip.AddrPortFrom(srv.IPv4, 8080), path)
	}
	atk.CanConnectPath(netip.AddrPortFrom(srv.IPv6, 8080), "/wp-login.php")
	atk.Run(t, "nmap", "-n", "-sS", "-p", "1-200", "-T5", "--max-retries", "0", srv.IPv4.String())
	atk.Run(t, "nmap", "-n", "-sS", "-p", "23", "-T5", "--max-retries", "0", srv.IPv4.String())
	fast, eve := filepath.Join(dir, "fast.log"), filepath.Join(dir, "eve.json")
	// Suricata writes both outputs from one alert logger; wait until both
	// hold the same number of alerts, and no more come.
	count := func() (int, int) {
		return strings.Count(readFile(fast), "\n"), strings.Count(readFile(eve), `"event_type":"alert"`)
	}
	last := -1
	if !waitFor(30*time.Second, func() bool {
		f, e := count()
		stable := f == e && f == last && f >= 4
		last = f
		if !stable {
			time.Sleep(500 * time.Millisecond)
		}
		return stable
	}) {
		f, e := count()
		t.Fatalf("fast.log has %d alerts, eve.json %d\nfast.log:\n%s", f, e, readFile(fast))
	}
	fromFast := correlated(t, fast)
	fromEVE := correlated(t, "--format", "eve", eve)
	if len(fromFast) == 0 {
		t.Fatal("no alerts")
	}
	if !slices.Equal(fromFast, fromEVE) {
		t.Errorf("alerts differ\nfrom fast.log:\n%v\nfrom eve.json:\n%v", fromFast, fromEVE)
	}
	t.Logf("%d alerts, the same from both outputs; first: %+v", len(fromFast), fromFast[0])
}
