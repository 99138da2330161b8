// Package hosttest gives tests the real things users have: programs such as
// iptables, ipset or postfix, and test hosts in network namespaces. Outside
// CI a missing piece skips the test with the reason; in CI (CI set in the
// environment) it fails it, so a broken install never passes quietly.
package hosttest

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// InCI reports whether the tests run under .ci/run.
func InCI() bool { return os.Getenv("CI") != "" }

// Missing skips t outside CI and fails it in CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI must provide it: see scripts/test-deps)", msg)
	}
	t.Skipf("%s: skipped (run scripts/test-deps as root to enable)", msg)
}

// Require checks that t runs as root and that every program is on PATH.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "not root")
	}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			Missing(t, "%s not installed", p)
		}
	}
}

// Host is a test host: a network namespace with one interface, eth0.
type Host struct {
	NS   string
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// Command returns cmd name args run inside the host's namespace.
func (h Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Run runs name args inside the host and returns its combined output.
func (h Host) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := h.Command(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s %s: %v\n%s", h.NS, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Lab is a small LAN of test hosts on a bridge in a namespace of its own:
// Srv (198.51.100.44, 2001:db8::44), Atk, an attacker (198.51.100.241,
// 2001:db8::241), and Adm, the allow-listed admin client (198.51.100.12,
// 2001:db8::12). Nothing is routed outside: the addresses exist only here.
type Lab struct {
	Srv, Atk, Adm Host
	lan           string
}

var labSeq atomic.Int32

// NewLab creates the namespaces and removes them, with every process left
// in them, when the test ends. prefix keeps concurrent test binaries apart.
func NewLab(t testing.TB, prefix string) *Lab {
	t.Helper()
	Require(t, "ip")
	id := prefix + strconv.Itoa(os.Getpid()%100000) + "-" + strconv.Itoa(int(labSeq.Add(1)))
	l := &Lab{
		Srv: Host{NS: id + "-srv", IPv4: netip.MustParseAddr("198.51.100.44"), IPv6: netip.MustParseAddr("2001:db8::44")},
		Atk: Host{NS: id + "-atk", IPv4: netip.MustParseAddr("198.51.100.241"), IPv6: netip.MustParseAddr("2001:db8::241")},
		Adm: Host{NS: id + "-adm", IPv4: netip.MustParseAddr("198.51.100.12"), IPv6: netip.MustParseAddr("2001:db8::12")},
		lan: id + "-lan",
	}
	t.Cleanup(func() { l.destroy() })
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", l.lan)
	ip("-n", l.lan, "link", "add", "br0", "type", "bridge")
	ip("-n", l.lan, "link", "set", "br0", "up")
	ip("-n", l.lan, "link", "set", "lo", "up")
	for i, h := range l.Hosts() {
		port := "p" + strconv.Itoa(i)
		ip("netns", "add", h.NS)
		ip("link", "add", "eth0", "netns", h.NS, "type", "veth", "peer", "name", port, "netns", l.lan)
		ip("-n", l.lan, "link", "set", port, "master", "br0")
		ip("-n", l.lan, "link", "set", port, "up")
		ip("-n", h.NS, "addr", "add", h.IPv4.String()+"/24", "dev", "eth0")
		ip("-n", h.NS, "addr", "add", h.IPv6.String()+"/64", "dev", "eth0", "nodad")
		ip("-n", h.NS, "link", "set", "lo", "up")
		ip("-n", h.NS, "link", "set", "eth0", "up")
	}
	return l
}

// Hosts returns the lab's hosts.
func (l *Lab) Hosts() []Host { return []Host{l.Srv, l.Atk, l.Adm} }

func (l *Lab) destroy() {
	for _, ns := range []string{l.Srv.NS, l.Atk.NS, l.Adm.NS, l.lan} {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Kill()
				}
			}
		}
	}
	time.Sleep(50 * time.Millisecond) // let killed processes leave the namespaces
	for _, ns := range []string{l.Srv.NS, l.Atk.NS, l.Adm.NS, l.lan} {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

// Serve starts a web server on port inside h (Debian's python3) and waits
// until it answers from inside h. It is stopped with the lab.
func (h Host) Serve(t testing.TB, port int) {
	t.Helper()
	Require(t, "/usr/bin/python3", "curl")
	cmd := h.Command(context.Background(), "/usr/bin/python3", "-m", "http.server", strconv.Itoa(port), "--bind", "::")
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start web server in %s: %v", h.NS, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for range 100 {
		if h.CanConnect(netip.AddrPortFrom(netip.MustParseAddr("::1"), uint16(port))) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("web server in %s did not come up on port %d", h.NS, port)
}

// CanConnect reports whether an HTTP GET from h to addr succeeds within a
// short connect timeout.
func (h Host) CanConnect(addr netip.AddrPort) bool { return h.CanConnectPath(addr, "/") }

// CanConnectPath is CanConnect for a given URL path; any HTTP answer (a 404
// too) counts as connected.
func (h Host) CanConnectPath(addr netip.AddrPort, path string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := h.Command(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
		"--connect-timeout", "0.5", "-m", "2", "http://"+addr.String()+path)
	var out bytes.Buffer
	cmd.Stdout = &out
	_ = cmd.Run()
	code := out.String()
	return code != "" && code != "000"
}
