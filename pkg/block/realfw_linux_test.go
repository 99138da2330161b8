//go:build linux

package block

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// These tests run the real block binary inside the lab's server namespace
// (ip netns exec) against the real iptables, ip6tables and ipset, and
// check with real connections from the attacker and admin namespaces.
// Nothing here touches the root namespace's firewall.

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// blockBinary builds cmd/block once per test run.
func blockBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "qwb-bin")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "block")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/quietwatch/quietwatch/cmd/block").CombinedOutput()
		if err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("go build: %v\n%s", binErr, binPath)
	}
	return binPath
}

// proc is a block process in a namespace.
type proc struct {
	cmd   *exec.Cmd
	in    *os.File
	lines chan string
	mu    sync.Mutex
	errb  bytes.Buffer
	done  chan struct{}
}

type syncWriter struct{ p *proc }

func (w syncWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.errb.Write(b)
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errb.String()
}

func startBlock(t *testing.T, h hosttest.Host, args ...string) *proc {
	t.Helper()
	p := &proc{lines: make(chan string, 1000), done: make(chan struct{})}
	if !slices.Contains(args, "--socket") {
		// Never the default socket: tests and the service must not meet.
		args = append(args, "--socket", filepath.Join(t.TempDir(), "block.sock"))
	}
	p.cmd = h.Command(context.Background(), blockBinary(t), args...)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdin, p.in = inR, inW
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = syncWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.in.Close()
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) send(t *testing.T, lines ...string) {
	t.Helper()
	if _, err := p.in.WriteString(strings.Join(lines, "")); err != nil {
		t.Fatal(err)
	}
}

// waitFor returns the next decision with action for ip, skipping others.
func (p *proc) waitFor(t *testing.T, action, ip string) record.Decision {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("block ended before %s %s; stderr:\n%s", action, ip, p.stderr())
			}
			var d record.Decision
			if err := record.Unmarshal([]byte(l), &d); err != nil {
				t.Fatalf("bad decision %q: %v", l, err)
			}
			if d.Ban.Action == action && d.Ban.IP == ip {
				return d
			}
		case <-deadline:
			t.Fatalf("no %s %s within 20s; stderr:\n%s", action, ip, p.stderr())
		}
	}
}

// wait waits for the process to end and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("block did not exit; stderr:\n%s", p.stderr())
	}
	return p.cmd.ProcessState.ExitCode()
}

const pristine = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"

// wantClean checks that nothing of ours is left in h's firewall.
func wantClean(t *testing.T, h hosttest.Host) {
	t.Helper()
	for _, p := range []string{"iptables", "ip6tables"} {
		if got := h.Run(t, p, "-S"); got != pristine {
			t.Errorf("%s -S in %s:\n%s", p, h.NS, got)
		}
	}
	if got := h.Run(t, "ipset", "list"); got != "" {
		t.Errorf("ipset list in %s:\n%s", h.NS, got)
	}
}

func flush(t *testing.T, h hosttest.Host, backend, state string) {
	t.Helper()
	out, err := h.Command(context.Background(), blockBinary(t), "flush", "--backend", backend, "--state", state).CombinedOutput()
	if err != nil {
		t.Fatalf("block flush: %v\n%s", err, out)
	}
}

func requireReal(t *testing.T) {
	t.Helper()
	hosttest.Require(t, "ip", "iptables", "ip6tables", "iptables-restore", "ip6tables-restore", "ipset", "curl", "/usr/bin/python3", "go")
}

// TestRealFirewall is the reference scenario against the real thing, for
// each backend and IP family: the attacker reaches the web server; after an
// alert its connections fail while the allow-listed admin still connects;
// after the timeout they succeed again; block flush leaves nothing behind.
func TestRealFirewall(t *testing.T) {
	requireReal(t)
	lab := hosttest.NewLab(t, "qwb")
	lab.Srv.Serve(t, 8080)
	for _, backend := range []string{"iptables", "ipset"} {
		for _, v6 := range []bool{false, true} {
			name := backend + "/v4"
			srv, atk, adm := lab.Srv.IPv4, lab.Atk.IPv4, lab.Adm.IPv4
			if v6 {
				name = backend + "/v6"
				srv, atk, adm = lab.Srv.IPv6, lab.Atk.IPv6, lab.Adm.IPv6
			}
			t.Run(name, func(t *testing.T) {
				web := netip.AddrPortFrom(srv, 8080)
				if !lab.Atk.CanConnect(web) || !lab.Adm.CanConnect(web) {
					t.Fatal("lab: no connection before any ban")
				}
				state := filepath.Join(t.TempDir(), "state.db")
				p := startBlock(t, lab.Srv, "--backend", backend, "--state", state, "--timeout", "3s", "--allow", adm.String())
				p.send(t, alertLine(atk.String(), 10, "1.1"), alertLine(adm.String(), 10, "1.2"), alertLine(srv.String(), 10, "1.3"))
				add := p.waitFor(t, "add", atk.String())
				if lab.Atk.CanConnect(web) {
					t.Error("attacker connects while banned")
				}
				if !lab.Adm.CanConnect(web) {
					t.Error("allow-listed admin cannot connect")
				}
				del := p.waitFor(t, "delete", atk.String())
				if del.Ban.Reason != "expired" || del.Timestamp < add.Ban.Until {
					t.Errorf("delete %+v for add %+v", del.Ban, add.Ban)
				}
				// Lifted within a second of the end (the decision is
				// written after the backends were changed).
				until, _ := time.Parse(record.DecisionTimeLayout, del.Ban.Until)
				at, _ := time.Parse(record.DecisionTimeLayout, del.Timestamp)
				if late := at.Sub(until); late < 0 || late > time.Second {
					t.Errorf("ban lifted %v after its end", late)
				}
				if !lab.Atk.CanConnect(web) {
					t.Error("attacker still blocked after the ban ended")
				}
				p.in.Close()
				if code := p.wait(t); code != 0 {
					t.Fatalf("exit %d; stderr:\n%s", code, p.stderr())
				}
				if s := p.stderr(); s != "" {
					t.Errorf("stderr:\n%s", s)
				}
				flush(t, lab.Srv, backend, state)
				wantClean(t, lab.Srv)
			})
		}
	}
}

// TestCrash kills block with -9 while bans are live, lets one of them
// expire, plants a rule and a set member by hand, and starts block again:
// the expired ban is gone, the live ones are enforced once each, and the
// planted ones are removed.
func TestCrash(t *testing.T) {
	requireReal(t)
	lab := hosttest.NewLab(t, "qwb")
	lab.Srv.Serve(t, 8080)
	for _, backend := range []string{"iptables", "ipset"} {
		t.Run(backend, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state.db")
			web4 := netip.AddrPortFrom(lab.Srv.IPv4, 8080)
			web6 := netip.AddrPortFrom(lab.Srv.IPv6, 8080)
			other := "198.51.100.77"

			// A short ban for the attacker's IPv6 address.
			p1 := startBlock(t, lab.Srv, "--backend", backend, "--state", state, "--timeout", "2s")
			p1.send(t, alertLine(lab.Atk.IPv6.String(), 10, "1.1"))
			short := p1.waitFor(t, "add", lab.Atk.IPv6.String())
			p1.cmd.Process.Signal(syscall.SIGKILL)
			p1.wait(t)

			// Long bans for the attacker's IPv4 address and another host.
			p2 := startBlock(t, lab.Srv, "--backend", backend, "--state", state, "--timeout", "1h")
			p2.send(t, alertLine(lab.Atk.IPv4.String(), 10, "2.1"), alertLine(other, 10, "2.2"))
			p2.waitFor(t, "add", lab.Atk.IPv4.String())
			p2.waitFor(t, "add", other)
			p2.cmd.Process.Signal(syscall.SIGKILL)
			p2.wait(t)
			if lab.Atk.CanConnect(web4) {
				t.Fatal("attacker connects after kill -9: the ban must stay")
			}
			lab.Srv.Run(t, "iptables", "-A", "QUIETWATCH", "-s", "198.51.100.99/32", "-j", "DROP")
			lab.Srv.Run(t, "iptables", "-A", "QUIETWATCH", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
			if backend == "ipset" {
				lab.Srv.Run(t, "ipset", "add", "quietwatch-v4", "198.51.100.98")
			}

			// Past the short ban's end.
			end, _ := time.Parse(record.DecisionTimeLayout, short.Ban.Until)
			for time.Now().Before(end.Add(100 * time.Millisecond)) {
				time.Sleep(50 * time.Millisecond)
			}

			p3 := startBlock(t, lab.Srv, "--backend", backend, "--state", state, "--timeout", "1h")
			d := p3.waitFor(t, "delete", lab.Atk.IPv6.String())
			if d.Ban.Reason != "expired" {
				t.Errorf("restart: %+v", d.Ban)
			}
			// The planted ban is removed, and said so (the state holds bans:
			// nothing is adopted).
			p3.waitStderr(t, "block: removed 1 bans of ours that the state does not know (left by a block that stopped before saving them, or added by hand)\n")
			rules := lab.Srv.Run(t, "iptables", "-S", "QUIETWATCH")
			switch backend {
			case "iptables":
				want := "-N QUIETWATCH\n-A QUIETWATCH -s 198.51.100.77/32 -j DROP\n-A QUIETWATCH -s 198.51.100.241/32 -j DROP\n"
				if rules != want {
					t.Errorf("iptables -S QUIETWATCH after restart:\n%s\nwant:\n%s", rules, want)
				}
				if got := lab.Srv.Run(t, "ip6tables", "-S", "QUIETWATCH"); got != "-N QUIETWATCH\n" {
					t.Errorf("ip6tables -S QUIETWATCH after restart:\n%s", got)
				}
			case "ipset":
				want := "-N QUIETWATCH\n-A QUIETWATCH -m set --match-set quietwatch-v4 src -j DROP\n"
				if rules != want {
					t.Errorf("iptables -S QUIETWATCH after restart:\n%s\nwant:\n%s", rules, want)
				}
				members := lab.Srv.Run(t, "ipset", "list", "quietwatch-v4")
				if !strings.Contains(members, "198.51.100.241 timeout") || !strings.Contains(members, "198.51.100.77 timeout") ||
					strings.Contains(members, "198.51.100.98") || !strings.Contains(members, "Number of entries: 2") {
					t.Errorf("ipset list quietwatch-v4 after restart:\n%s", members)
				}
				if got := lab.Srv.Run(t, "ipset", "list", "quietwatch-v6"); !strings.Contains(got, "Number of entries: 0") {
					t.Errorf("ipset list quietwatch-v6 after restart:\n%s", got)
				}
			}
			if lab.Atk.CanConnect(web4) {
				t.Error("live ban not enforced after restart")
			}
			if !lab.Atk.CanConnect(web6) {
				t.Error("expired ban still enforced after restart")
			}
			// SIGTERM: exit at once, bans stay.
			p3.cmd.Process.Signal(syscall.SIGTERM)
			if code := p3.wait(t); code != 0 {
				t.Errorf("exit %d after SIGTERM; stderr:\n%s", code, p3.stderr())
			}
			if got := lab.Srv.Run(t, "iptables", "-S", "QUIETWATCH"); got != rules {
				t.Errorf("rules changed on SIGTERM:\n%s", got)
			}
			flush(t, lab.Srv, backend, state)
			wantClean(t, lab.Srv)
		})
	}
}
