//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// TestInstalledManual runs quietwatch as installed on a machine without
// systemd, as the installer's hint says (quietwatch-run with the settings
// file, by hand, as root), then uninstalls it while it runs: the run
// folder must let the stages in (mail is sent, not only bans placed), and
// uninstall must stop the pipeline and wait for block before lifting the
// bans, remove the /etc/hosts.deny it created, and stay behind for a later
// --purge.
func TestInstalledManual(t *testing.T) {
	hosttest.Require(t, "iptables", "ip6tables", "nft", "curl", "setpriv")
	mbox := requirePostfix(t)
	lab := hosttest.NewLab(t, "qwu")
	atk, srv := lab.Atk, lab.Srv
	srv.Serve(t, 8080)
	forwardSMTP(t, srv.NS)
	root := newStagingRoot(t)
	if out, err := root.command("", filepath.Join(repo, "scripts", "install"), "--no-start", "--no-build", binDir).CombinedOutput(); err != nil {
		t.Fatalf("scripts/install: %v\n%s", err, out)
	}
	// The installer chose the backend from the host's firewall
	// (scripts/detect-backend): here iptables is the nf_tables flavour, so
	// nftables; the rest of the test runs on whatever it chose.
	env, err := os.ReadFile(root.path("/etc/quietwatch/quietwatch.env"))
	if err != nil {
		t.Fatal(err)
	}
	backend := ""
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "QW_BLOCK_BACKENDS="); ok {
			backend = strings.Trim(v, `"`)
		}
	}
	iptV, _ := exec.Command("iptables", "-V").Output()
	if strings.Contains(string(iptV), "nf_tables") && backend != "nftables" {
		t.Errorf("the installer chose QW_BLOCK_BACKENDS=%q on a host whose iptables is %s; want nftables", backend, strings.TrimSpace(string(iptV)))
	}
	// ours reports whether what the backend creates exists on srv; holds
	// whether it bans ip.
	ours := func() bool {
		if backend == "nftables" {
			return srv.Command(t.Context(), "nft", "list", "table", "inet", "quietwatch").Run() == nil
		}
		return srv.Command(t.Context(), "iptables", "-S", "QUIETWATCH").Run() == nil
	}
	holds := func(ip netip.Addr) bool {
		if backend == "nftables" {
			out, _ := srv.Command(t.Context(), "nft", "list", "set", "inet", "quietwatch", "local-v4").Output()
			return strings.Contains(string(out), ip.String())
		}
		out, _ := srv.Command(t.Context(), "iptables", "-S", "QUIETWATCH").Output()
		return strings.Contains(string(out), ip.String()+"/")
	}
	tag := fmt.Sprintf("qwu-%d", time.Now().UnixNano()%1e9)
	editSettings(t, root.path("/etc/quietwatch/quietwatch.env"), map[string]string{
		"QW_HOSTNAME":       tag,
		"QW_NOTIFY_ARGS":    "--group-window 1s",
		"QW_FASTPARSE_ARGS": "--from-start",
	})
	fastlog := root.path("/var/log/suricata/fast.log")
	if err := os.MkdirAll(filepath.Dir(fastlog), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fastlog, nil, 0o640); err != nil {
		t.Fatal(err)
	}

	run := root.command(srv.NS, "/usr/local/lib/quietwatch/quietwatch-run", "/etc/quietwatch/quietwatch.env")
	var journal lockedBuffer
	run.Stdout, run.Stderr = &journal, &journal
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = run.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = run.Process.Kill()
		}
	})
	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	if !waitFor(20*time.Second, func() bool {
		return exited() || ours()
	}) || exited() {
		t.Fatalf("quietwatch-run is not up\n%s", journal.String())
	}
	appendLine(t, fastlog, fastLine(time.Now(), 2024364, "ET SCAN Possible Nmap User-Agent Observed", "Web Application Attack", 1,
		netip.AddrPortFrom(atk.IPv4, 40001), netip.AddrPortFrom(srv.IPv4, 8080)))
	if !waitFor(10*time.Second, func() bool { return holds(atk.IPv4) }) {
		t.Fatalf("no ban\n%s", journal.String())
	}
	if atk.CanConnect(netip.AddrPortFrom(srv.IPv4, 8080)) {
		t.Errorf("banned attacker still connects (%s backend)", backend)
	}
	if !waitFor(15*time.Second, func() bool { return len(mbox.messages(tag)) > 0 }) {
		t.Fatalf("no mail: the stages cannot reach the run folder?\n%s", journal.String())
	}

	// Uninstall while it runs: it stops the pipeline, lifts the ban.
	out, err := root.command(srv.NS, "/usr/local/lib/quietwatch/uninstall").CombinedOutput()
	if err != nil {
		t.Fatalf("uninstall: %v\n%s\njournal:\n%s", err, out, journal.String())
	}
	if !exited() {
		t.Error("uninstall left quietwatch-run running")
	}
	if ours() {
		t.Errorf("uninstall left %s's chain or table", backend)
	}
	if !atk.CanConnect(netip.AddrPortFrom(srv.IPv4, 8080)) {
		t.Error("after uninstall the attacker still cannot connect")
	}
	for _, gone := range []string{"/usr/local/bin/block", "/etc/hosts.deny", "/usr/local/lib/quietwatch/quietwatch-run"} {
		if _, err := os.Stat(root.path(gone)); err == nil {
			t.Errorf("uninstall left %s", gone)
		}
	}
	for _, kept := range []string{"/etc/quietwatch/quietwatch.env", "/var/lib/quietwatch/block.db", "/usr/local/lib/quietwatch/uninstall"} {
		if _, err := os.Stat(root.path(kept)); err != nil {
			t.Errorf("uninstall removed %s: %v", kept, err)
		}
	}
	out, err = root.command(srv.NS, "/usr/local/lib/quietwatch/uninstall", "--purge").CombinedOutput()
	if err != nil {
		t.Fatalf("uninstall --purge: %v\n%s", err, out)
	}
	for _, gone := range []string{"/etc/quietwatch", "/var/lib/quietwatch", "/var/log/quietwatch", "/usr/local/lib/quietwatch"} {
		if _, err := os.Stat(root.path(gone)); err == nil {
			t.Errorf("uninstall --purge left %s", gone)
		}
	}
	if passwd, _ := os.ReadFile(root.path("/etc/passwd")); strings.Contains(string(passwd), "\nquietwatch:") {
		t.Error("uninstall --purge left the quietwatch user")
	}
}

// TestRunRefusesHalfConnected starts quietwatch-run with an alert log its
// unprivileged stages cannot write: it must refuse to start, saying what
// to fix, rather than run a pipeline that bans but writes (or mails)
// nothing (GNU tee warns about an output it cannot open and runs on).
func TestRunRefusesHalfConnected(t *testing.T) {
	hosttest.Require(t, "setpriv")
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // t.TempDir is root's alone (0700)
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o700); err != nil { // root's alone
		t.Fatal(err)
	}
	fastlog := filepath.Join(dir, "fast.log")
	if err := os.WriteFile(fastlog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(dir, "quietwatch.env")
	settings{
		"QW_BIN":              binDir,
		"QW_FASTLOG":          fastlog,
		"QW_RULES":            filepath.Join(repo, "testdata", "rules", "local_rules.xml"),
		"QW_STATE_DIR":        filepath.Join(dir, "state"),
		"QW_RUN_DIR":          filepath.Join(dir, "run"),
		"QW_ALERT_LOG":        filepath.Join(logs, "alerts.jsonl"),
		"QW_USER":             "nobody",
		"QW_NOTIFY_TRANSPORT": "--sendmail /bin/true",
		"QW_BLOCK_BACKENDS":   "dry-run",
	}.write(t, env)
	cmd := exec.Command("bash", script("quietwatch-run"), env)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(err); code != 78 {
			t.Errorf("exit %d, want 78\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Signal(sigterm)
		<-done
		t.Fatalf("quietwatch-run ran on with an output its stages cannot open\n%s", stderr.String())
	}
	if want := "user nobody cannot write " + filepath.Join(logs, "alerts.jsonl"); !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
}
