//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
	"github.com/quietwatch/quietwatch/pkg/metrics/metricstest"
)

// TestInstalled runs quietwatch as installed: the README's scripts/install
// into a staging root (the machine's own files under a private writable
// layer), the admin's few edits, then the installed unit as systemd would
// run it (systemd_test.go: its directories with their owners and modes,
// EnvironmentFile=, ExecStartPre=, the bounding set, NoNewPrivileges=,
// ProtectSystem=strict and the rest of the sandbox, the system call filter,
// UMask=) inside a lab's server namespace. Then the attack: alerts logged,
// mail delivered to the real Postfix, bans placed in iptables and ipset and
// lifted, a reload reaching every stage, a clean stop, a second start (the
// directories reset again) that resumes without a repeat.
func TestInstalled(t *testing.T) {
	hosttest.Require(t, "iptables", "ip6tables", "ipset", "curl", "setpriv")
	mbox := requirePostfix(t)
	lab := hosttest.NewLab(t, "qwi")
	atk, adm, srv := lab.Atk, lab.Adm, lab.Srv
	srv.Serve(t, 8080)
	forwardSMTP(t, srv.NS) // the unit mails to 127.0.0.1:25, as on a server
	root := newStagingRoot(t)

	out, err := root.command("", filepath.Join(repo, "scripts", "install"), "--no-start", "--no-build", binDir).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/install: %v\n%s", err, out)
	}
	uid := lookupUID(t, root.path("/etc/passwd"), "quietwatch")

	// The admin's edits: the admin's own addresses in the allow list, a
	// short ban to see it lifted, mail grouped for a second, and a host
	// name that finds this run's mail.
	tag := fmt.Sprintf("qwi-%d", time.Now().UnixNano()%1e9)
	editSettings(t, root.path("/etc/quietwatch/quietwatch.env"), map[string]string{
		"QW_HOSTNAME":       tag,
		"QW_BLOCK_TIMEOUT":  "4s",
		"QW_BLOCK_BACKENDS": "iptables ipset",
		"QW_NOTIFY_ARGS":    "--group-window 1s",
		"QW_FASTPARSE_ARGS": "--from-start",
		"QW_METRICS_DIR":    "/var/lib/quietwatch/metrics",
	})
	f, err := os.OpenFile(root.path("/etc/quietwatch/allow.list"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s\n%s\n", adm.IPv4, adm.IPv6)
	f.Close()
	// fast.log as Suricata leaves it: root's, 0640.
	fastlog := root.path("/var/log/suricata/fast.log")
	if err := os.MkdirAll(filepath.Dir(fastlog), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fastlog, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	alerts := root.path("/var/log/quietwatch/alerts.jsonl")

	sd := newSystemd(t, root, srv.NS, "quietwatch.service")
	svc := sd.start()
	ready := func(svc *service) {
		t.Helper()
		if !waitFor(20*time.Second, func() bool {
			return svc.exited() || srv.Command(t.Context(), "iptables", "-S", "QUIETWATCH").Run() == nil &&
				srv.Command(t.Context(), "ip6tables", "-S", "QUIETWATCH").Run() == nil &&
				srv.Command(t.Context(), "ipset", "list", "-n", "quietwatch-v6").Run() == nil
		}) || svc.exited() {
			t.Fatalf("the service is not up (exited: %v)\njournal:\n%s", svc.exited(), svc.stderr.String())
		}
	}
	ready(svc)

	port := uint16(40000)
	nmap := func(src netip.Addr) string {
		port++
		return fastLine(time.Now(), 2024364, "ET SCAN Possible Nmap User-Agent Observed", "Web Application Attack", 1,
			netip.AddrPortFrom(src, port), netip.AddrPortFrom(srv.IPv4, 8080))
	}
	appendLine(t, fastlog, nmap(adm.IPv4))
	if !waitFor(15*time.Second, func() bool { return len(fullLogs(t, alerts)) == 1 || svc.exited() }) || svc.exited() {
		t.Fatalf("the admin's alert did not reach the alert log\njournal:\n%s", svc.stderr.String())
	}

	// Who runs as whom, and who owns what.
	stages := map[string]string{"fastparse": "/usr/local/bin/fastparse", "correlate": "/usr/local/bin/correlate",
		"tee": "tee", "notify": "/usr/local/bin/notify", "block": "/usr/local/bin/block"}
	pids := map[string]int{}
	for name, argv0 := range stages {
		pid := svc.stage(argv0)
		if pid == 0 {
			t.Fatalf("no %s in the unit\njournal:\n%s", name, svc.stderr.String())
		}
		pids[name] = pid
		want := uid
		if name == "block" {
			want = "0"
		}
		if got := procUID(t, pid); got != want {
			t.Errorf("%s runs as uid %s, want %s", name, got, want)
		}
		// The sandbox is on: the system call filter and no new privileges.
		if f, n := procField(t, pid, "Seccomp"), procField(t, pid, "NoNewPrivs"); f != "2" || n != "1" {
			t.Errorf("%s: Seccomp %s, NoNewPrivs %s: want 2 and 1", name, f, n)
		}
	}
	for path, want := range map[string]string{
		"/var/lib/quietwatch":              "0 0711",
		"/var/lib/quietwatch/fastparse":    uid + " 0700",
		"/var/lib/quietwatch/correlate":    uid + " 0700",
		"/var/lib/quietwatch/spool":        uid + " 0700",
		"/var/lib/quietwatch/block.db":     "0 0600",
		"/run/quietwatch":                  "0 0711",
		"/run/quietwatch/notify.fifo":      "0 0660",
		"/var/log/quietwatch":              "0 0711",
		"/var/log/quietwatch/alerts.jsonl": uid + " 0600",
	} {
		if got := ownerMode(t, root.path(path)); got != want {
			t.Errorf("%s: owner and mode %s, want %s", path, got, want)
		}
	}

	// The attack: five high-severity alerts, a ban at the first.
	first := time.Now()
	for i := range 5 {
		appendLine(t, fastlog, nmap(atk.IPv4))
		if i == 0 {
			if !waitFor(5*time.Second, func() bool { return banned(t, srv, atk.IPv4) }) {
				t.Fatalf("attacker not banned 5 s after the first alert\njournal:\n%s", svc.stderr.String())
			}
			t.Logf("ban latency (fast.log line -> iptables and ipset): %v", time.Since(first))
		}
	}
	if atk.CanConnect(netip.AddrPortFrom(srv.IPv4, 8080)) {
		t.Error("banned attacker still connects")
	}
	if !adm.CanConnect(netip.AddrPortFrom(srv.IPv4, 8080)) || banned(t, srv, adm.IPv4) {
		t.Error("the allow-listed admin was banned")
	}
	if !waitFor(15*time.Second, func() bool {
		for _, m := range mbox.messages(tag) {
			if strings.Contains(decodeHeader(m.Header.Get("Subject")), "Level 11") && strings.Contains(body(m), "Src IP: "+atk.IPv4.String()) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no escalation mail for %s in %s\njournal:\n%s", atk.IPv4, mbox, svc.stderr.String())
	}
	if !waitFor(10*time.Second, func() bool { return !banned(t, srv, atk.IPv4) }) {
		t.Fatalf("ban not lifted after its 4 s\njournal:\n%s", svc.stderr.String())
	}

	// Live ban control, as the admin runs it while protection runs: block
	// list, ban and unban through the running block's socket, the firewall
	// read back after each.
	blockCmd := func(args ...string) (string, int) {
		t.Helper()
		cmd := root.command(srv.NS, append([]string{"/usr/local/bin/block"}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		return string(out), code
	}
	if out, code := blockCmd("ban", atk.IPv4.String(), "--timeout", "1m"); code != 0 {
		t.Fatalf("block ban: exit %d\n%s\njournal:\n%s", code, out, svc.stderr.String())
	}
	if !banned(t, srv, atk.IPv4) || atk.CanConnect(netip.AddrPortFrom(srv.IPv4, 8080)) {
		t.Error("block ban: the attacker is not dropped")
	}
	if out, code := blockCmd("list", "--json"); code != 0 || !strings.Contains(out, `"ip":"`+atk.IPv4.String()+`"`) {
		t.Errorf("block list --json: exit %d, no %s in\n%s", code, atk.IPv4, out)
	}
	if out, code := blockCmd("ban", adm.IPv4.String()); code == 0 || banned(t, srv, adm.IPv4) {
		t.Errorf("block ban of the allow-listed admin: exit %d, banned %v\n%s", code, banned(t, srv, adm.IPv4), out)
	}
	if out, code := blockCmd("unban", atk.IPv4.String()); code != 0 {
		t.Fatalf("block unban: exit %d\n%s", code, out)
	}
	if banned(t, srv, atk.IPv4) || !atk.CanConnect(netip.AddrPortFrom(srv.IPv4, 8080)) {
		t.Error("block unban: the attacker is still dropped")
	}
	if out, code := blockCmd("list"); code != 0 || strings.Contains(out, atk.IPv4.String()) {
		t.Errorf("block list after unban: exit %d\n%s", code, out)
	}
	if ar, err := os.ReadFile(root.path("/var/log/quietwatch/active-responses.log")); err != nil ||
		!strings.Contains(string(ar), "delete - "+atk.IPv4.String()) {
		t.Errorf("active-responses.log has no delete for %s (%v):\n%s", atk.IPv4, err, ar)
	}

	// systemctl reload reaches every stage but tee (which would die of it):
	// each is stopped, so the SIGHUP stays pending where /proc shows it.
	for name, pid := range pids {
		if name != "tee" {
			_ = syscall.Kill(pid, syscall.SIGSTOP)
		}
	}
	svc.reload()
	for name, pid := range pids {
		if name == "tee" {
			continue
		}
		if !waitFor(5*time.Second, func() bool { return sigPending(pid, syscall.SIGHUP) }) {
			t.Errorf("reload: SIGHUP did not reach %s", name)
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	if !waitFor(5*time.Second, func() bool { return strings.Contains(svc.stderr.String(), "rules reloaded") }) {
		t.Errorf("correlate did not reload its rules\njournal:\n%s", svc.stderr.String())
	}
	time.Sleep(100 * time.Millisecond)
	if svc.exited() {
		t.Fatalf("the service ended on reload\njournal:\n%s", svc.stderr.String())
	}

	stop := func(svc *service) {
		t.Helper()
		took, left := svc.stop()
		t.Logf("stop: the main process ended %v after SIGTERM", took)
		if len(left) > 0 {
			t.Errorf("stop: %d processes of the unit outlived its main process (SIGKILLed)", len(left))
		}
		if took > 2*time.Second {
			t.Errorf("stop took %v, want about a second", took)
		}
		if strings.Contains(svc.stderr.String(), "exited with status") || svc.cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("unclean stop (exit %d)\njournal:\n%s", svc.cmd.ProcessState.ExitCode(), svc.stderr.String())
		}
		// The journal holds records and these lines only: no stage or
		// helper complained on the way (a denied signal, a read-only path).
		for _, line := range strings.Split(strings.TrimSpace(svc.stderr.String()), "\n") {
			if strings.HasPrefix(line, "{") || strings.HasPrefix(line, "quietwatch-run: started: ") ||
				line == "quietwatch-run: stopping" || strings.HasPrefix(line, "correlate: rules reloaded") {
				continue
			}
			t.Errorf("journal: %s", line)
		}
	}
	stop(svc)
	if ownerMode(t, root.path("/var/lib/quietwatch/fastparse/position")) == "" {
		t.Error("fastparse saved no position")
	}
	// Every stage wrote its metrics (at exit at the latest), readable by
	// node_exporter's user, where the settings file says.
	for _, stage := range []string{"fastparse", "correlate", "notify", "block"} {
		path := root.path("/var/lib/quietwatch/metrics/quietwatch_" + stage + ".prom")
		if got := ownerMode(t, path); !strings.HasSuffix(got, " 0644") {
			t.Errorf("%s: owner and mode %q, want a file of mode 0644", path, got)
			continue
		}
		fs := metricstest.Read(t, path)
		if stage == "block" {
			// The attacker's ban, and the manual one through the socket.
			metricstest.Want(t, fs, 1, "quietwatch_block_bans_placed_total", "origin", "alert")
			metricstest.Want(t, fs, 1, "quietwatch_block_bans_placed_total", "origin", "manual")
		}
	}

	// A second start: the directories reset again, everything resumes; the
	// admin has also joined the fleet, with share serving NATS itself.
	natsAddr := "127.0.0.1:14222"
	editSettings(t, root.path("/etc/quietwatch/quietwatch.env"), map[string]string{"QW_NATS_SERVE": natsAddr})
	svc = sd.start()
	ready(svc)
	var sharePid int
	waitFor(5*time.Second, func() bool { sharePid = svc.stage("/usr/local/bin/share"); return sharePid != 0 })
	if pid := sharePid; pid == 0 {
		t.Fatalf("no share in the unit with QW_NATS_SERVE set\njournal:\n%s", svc.stderr.String())
	} else if got := procUID(t, pid); got != uid {
		t.Errorf("share runs as uid %s, want %s", got, uid)
	}
	// A peer's ban reaches this server's firewall through the unit's share.
	peerBan := fmt.Sprintf(`{"timestamp":%q,"event_type":"alert","src_ip":%q,"dest_ip":%q,"rule":{"id":"300011","level":10,"description":"peer"},"id":"1.1"}`+"\n",
		time.Now().UTC().Format("2006-01-02T15:04:05.000000-0700"), atk.IPv4, srv.IPv4)
	var peer *exec.Cmd
	if !waitFor(10*time.Second, func() bool {
		peer = root.command(srv.NS, "/usr/local/bin/share", "--nats", "nats://"+natsAddr, "--origin", "peer1")
		peer.Stdin = strings.NewReader(peerBan)
		out, err := peer.CombinedOutput()
		return err == nil && !strings.Contains(string(out), "share:")
	}) {
		t.Errorf("a peer could not publish to the unit's NATS server on %s", natsAddr)
	}
	if !waitFor(10*time.Second, func() bool { return banned(t, srv, atk.IPv4) }) {
		t.Errorf("a peer's ban of %s did not reach this server's firewall\njournal:\n%s", atk.IPv4, svc.stderr.String())
	}
	for range 3 {
		appendLine(t, fastlog, nmap(atk.IPv6))
	}
	if !waitFor(10*time.Second, func() bool { return banned(t, srv, atk.IPv6) }) {
		t.Fatalf("attacker's IPv6 address not banned after the second start\njournal:\n%s", svc.stderr.String())
	}
	data, err := os.ReadFile(fastlog)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(data)), "\n")
	var got []string
	waitFor(10*time.Second, func() bool { got = fullLogs(t, alerts); return len(got) >= len(want) })
	time.Sleep(200 * time.Millisecond) // a repeat would come with the rest
	got = fullLogs(t, alerts)
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("alert log does not match fast.log one to one: %d alerts for %d lines\njournal:\n%s", len(got), len(want), svc.stderr.String())
	}
	stop(svc)
}

// banned reports whether ip is banned on h in both iptables and ipset.
func banned(t *testing.T, h hosttest.Host, ip netip.Addr) bool {
	ipt, set := "iptables", "quietwatch-v4"
	if ip.Is6() {
		ipt, set = "ip6tables", "quietwatch-v6"
	}
	chain, err := h.Command(t.Context(), ipt, "-S", "QUIETWATCH").CombinedOutput()
	if err != nil || !strings.Contains(string(chain), ip.String()+"/") {
		return false
	}
	list, err := h.Command(t.Context(), "ipset", "list", set).CombinedOutput()
	return err == nil && strings.Contains(string(list), "\n"+ip.String()+" ")
}

// fullLogs returns the full_log of every alert in an alert log.
func fullLogs(t *testing.T, path string) []string {
	s := &scenario{alerts: path}
	return s.alertLogs(t)
}

// editSettings sets keys in a settings file as an admin's editor would.
func editSettings(t *testing.T, path string, set map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for k, v := range set {
		line := k + "=" + strconv.Quote(v)
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, k+"=") })
		if i < 0 {
			lines = append(lines, line)
		} else {
			lines[i] = line
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
}

// lookupUID finds user's uid in a passwd file.
func lookupUID(t *testing.T, passwd, user string) string {
	t.Helper()
	data, err := os.ReadFile(passwd)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Split(line, ":"); len(f) > 3 && f[0] == user {
			return f[2]
		}
	}
	t.Fatalf("the installer did not create the user %s", user)
	return ""
}

// ownerMode is "UID MODE" of path ("" if it does not exist).
func ownerMode(t *testing.T, path string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d %04o", st.Uid, st.Mode&0o7777)
}

// TestUnitExposure keeps the unit's systemd-analyze security score (the
// README states it) at 2.5 or lower; TestInstalled proves the settings
// behind it leave the service working.
func TestUnitExposure(t *testing.T) {
	hosttest.Require(t, "systemd-analyze")
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", script("systemd/quietwatch.service")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	_, after, ok := strings.Cut(string(out), "Overall exposure level for quietwatch.service: ")
	score, err := strconv.ParseFloat(strings.Fields(after + " x")[0], 64)
	if !ok || err != nil {
		t.Fatalf("no score in:\n%s", out)
	}
	t.Logf("exposure %.1f", score)
	if score > 2.5 {
		t.Errorf("exposure %.1f, want 2.5 or lower\n%s", score, out)
	}
}

// procField returns a field of /proc/PID/status.
func procField(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
