//go:build linux

package block

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// These tests play another tool (or an unlucky admin) against a running
// block in the lab's server namespace: flushing its chain, INPUT or its
// set; starting it on an empty or damaged state while the kernel holds
// 20,000 bans of ours; and a second block process.

// waitStderr waits until block has written want on stderr.
func (p *proc) waitStderr(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stderr(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr lacks %q within 20s:\n%s", want, p.stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func count(s, sub string) int { return strings.Count(s, sub) }

// TestRepairAfterForeignFlush: another tool flushes block's chain, the
// INPUT chain (the jump) or its set; block notices within its check
// interval (or at the next extend), says so in one line, and the attacker
// is blocked again.
func TestRepairAfterForeignFlush(t *testing.T) {
	requireReal(t)
	lab := hosttest.NewLab(t, "qwh")
	lab.Srv.Serve(t, 8080)
	web := netip.AddrPortFrom(lab.Srv.IPv4, 8080)
	atk := lab.Atk.IPv4.String()
	for _, backend := range []string{"iptables", "ipset"} {
		t.Run(backend, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state.db")
			p := startBlock(t, lab.Srv, "--backend", backend, "--state", state, "--timeout", "1h")
			p.send(t, alertLine(atk, 10, "1"), alertLine("198.51.100.77", 10, "2"))
			p.waitFor(t, "add", atk)
			if lab.Atk.CanConnect(web) {
				t.Fatal("attacker connects while banned")
			}
			blocked := func(what string) {
				t.Helper()
				if lab.Atk.CanConnect(web) {
					t.Fatalf("attacker connects after %s was repaired", what)
				}
			}

			// 1. The chain flushed: repaired by the periodic check.
			lab.Srv.Run(t, "iptables", "-F", "QUIETWATCH")
			if !lab.Atk.CanConnect(web) {
				t.Fatal("lab: the flush did not lift the ban")
			}
			switch backend {
			case "iptables":
				p.waitStderr(t, "block: iptables: chain QUIETWATCH lost 2 rules: restored\n")
			case "ipset":
				p.waitStderr(t, "block: iptables: rule matching set quietwatch-v4 in chain QUIETWATCH was missing: restored\n")
			}
			blocked("the chain")

			// 2. INPUT flushed: the jump is put back.
			lab.Srv.Run(t, "iptables", "-F", "INPUT")
			p.waitStderr(t, "block: iptables: jump from INPUT to QUIETWATCH was missing: restored\n")
			blocked("the jump")

			// 3. The chain flushed again, and the attacker attacks again:
			// the extend puts its rule back at once (no wait for the
			// periodic check), and its decision claims a working backend.
			time.Sleep(1100 * time.Millisecond) // checks after alerts are at most one a second
			lab.Srv.Run(t, "iptables", "-F", "QUIETWATCH")
			p.send(t, alertLine(atk, 10, "3"))
			d := p.waitFor(t, "extend", atk)
			if fmt.Sprint(d.Ban.Backends) != "["+backend+"]" {
				t.Errorf("extend claims %v", d.Ban.Backends)
			}
			rules := lab.Srv.Run(t, "iptables", "-S", "QUIETWATCH")
			if backend == "iptables" && !strings.Contains(rules, "-s "+atk+"/32 -j DROP") ||
				backend == "ipset" && !strings.Contains(rules, "--match-set quietwatch-v4 src -j DROP") {
				t.Errorf("after the extend:\n%s", rules)
			}
			blocked("the chain at the extend")

			// 4. ipset: the set flushed (its members lost).
			if backend == "ipset" {
				lab.Srv.Run(t, "ipset", "flush", "quietwatch-v4")
				p.waitStderr(t, "block: ipset: set quietwatch-v4 lost 2 members: restored\n")
				blocked("the set")
				if got := lab.Srv.Run(t, "ipset", "list", "quietwatch-v4"); !strings.Contains(got, atk+" timeout ") {
					t.Errorf("set after repair:\n%s", got)
				}
			}
			// 5. A firewall script's reload wipes every chain (iptables -F;
			// iptables -X) just before a new alert: the add fails, the
			// check recreates the chain and the jumps, and the failed add
			// is retried at once.
			time.Sleep(1100 * time.Millisecond)
			lab.Srv.Run(t, "iptables", "-F")
			lab.Srv.Run(t, "iptables", "-X")
			p.send(t, alertLine("198.51.100.78", 10, "4"))
			p.waitFor(t, "add", "198.51.100.78")
			p.waitStderr(t, "block: iptables: chain QUIETWATCH was missing: created\n")
			blocked("everything")
			if backend == "iptables" {
				deadline := time.Now().Add(5 * time.Second)
				for !strings.Contains(lab.Srv.Run(t, "iptables", "-S", "QUIETWATCH"), "-s 198.51.100.78/32 -j DROP") {
					if time.Now().After(deadline) {
						t.Fatalf("the failed add was not retried:\n%s\nstderr:\n%s", lab.Srv.Run(t, "iptables", "-S"), p.stderr())
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, p.stderr())
			}
			// One line per fix (and the add that failed), nothing else.
			for _, l := range strings.Split(strings.TrimSpace(p.stderr()), "\n") {
				if !strings.HasSuffix(l, ": restored") && !strings.HasSuffix(l, ": created") && !strings.HasPrefix(l, "block: iptables: add: ") {
					t.Errorf("stderr line %q", l)
				}
			}
			flush(t, lab.Srv, backend, state)
			wantClean(t, lab.Srv)
		})
	}
}

// many is how many live bans the start-up tests leave in the kernel.
const many = 20000

// manyAddr is the i-th of them, in 2001:db8::/64.
func manyAddr(i int) string { return fmt.Sprintf("2001:db8::1:%x", i) }

// plant leaves what a block of the backend that crashed with many live
// bans would leave in h: chain, jumps, sets, set rule, and the bans.
func plant(t *testing.T, h hosttest.Host, backend string) {
	t.Helper()
	var v4, v6 strings.Builder
	for _, b := range []*strings.Builder{&v4, &v6} {
		b.WriteString("*filter\n:QUIETWATCH - [0:0]\n-I INPUT 1 -j QUIETWATCH\n-I FORWARD 1 -j QUIETWATCH\n")
	}
	switch backend {
	case "ipset":
		var set strings.Builder
		set.WriteString("create quietwatch-v4 hash:ip family inet hashsize 1024 maxelem 1048576 timeout 0\n")
		set.WriteString("create quietwatch-v6 hash:ip family inet6 hashsize 1024 maxelem 1048576 timeout 0\n")
		for i := range many {
			fmt.Fprintf(&set, "add quietwatch-v6 %s timeout 3600\n", manyAddr(i))
		}
		restore(t, h, "ipset", set.String(), "restore")
		v4.WriteString("-A QUIETWATCH -m set --match-set quietwatch-v4 src -j DROP\n")
		v6.WriteString("-A QUIETWATCH -m set --match-set quietwatch-v6 src -j DROP\n")
	case "iptables":
		for i := range many {
			fmt.Fprintf(&v6, "-A QUIETWATCH -s %s/128 -j DROP\n", manyAddr(i))
		}
	}
	v4.WriteString("COMMIT\n")
	v6.WriteString("COMMIT\n")
	restore(t, h, "iptables-restore", v4.String(), "--noflush")
	restore(t, h, "ip6tables-restore", v6.String(), "--noflush")
}

func restore(t *testing.T, h hosttest.Host, prog, in string, args ...string) {
	t.Helper()
	cmd := h.Command(context.Background(), prog, args...)
	cmd.Stdin = strings.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", prog, err, out)
	}
}

// held counts the bans of ours in h's kernel.
func held(t *testing.T, h hosttest.Host, backend string) int {
	t.Helper()
	if backend == "ipset" {
		return count(h.Run(t, "ipset", "list", "quietwatch-v6"), "\n2001:db8::1:")
	}
	return count(h.Run(t, "ip6tables", "-S", "QUIETWATCH"), "-j DROP")
}

// damagedState returns the bytes of a real state file with bans, cut to
// half (bbolt: "invalid freelist page", or a fault past the end of the
// file).
func damagedState(t *testing.T, h hosttest.Host) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "good.db")
	var in strings.Builder
	for i := range 300 {
		in.WriteString(alertLine(fmt.Sprintf("2001:db8::2:%x", i), 10, "x"))
	}
	cmd := h.Command(context.Background(), blockBinary(t), "--backend", "dry-run", "--state", path, "--timeout", "1h")
	cmd.Stdin = strings.NewReader(in.String())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Stdin = strings.NewReader(in.String())
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	// block waits for its bans to end: stop it once it has written them.
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	n := 0
	for count(string(buf[:n]), "\n") < 300 {
		k, err := out.Read(buf[n:])
		if err != nil {
			t.Fatalf("reading decisions: %v", err)
		}
		n += k
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[:len(b)/2]
}

// TestStartWithManyBans starts block on a state that cannot account for
// the 20,000 bans the kernel holds (new, empty, damaged): it adopts them
// (with their kernel timeouts from ipset; for --timeout from iptables),
// says so in one line, lifts none, and goes on banning. A second block
// (even with --state ”) refuses to touch them while the first runs.
func TestStartWithManyBans(t *testing.T) {
	requireReal(t)
	if testing.Short() {
		t.Skip("20,000 bans: not with -short")
	}
	lab := hosttest.NewLab(t, "qwm")
	lab.Srv.Serve(t, 8080)
	web := netip.AddrPortFrom(lab.Srv.IPv4, 8080)
	for _, c := range []struct{ backend, state string }{
		{"ipset", "empty"}, {"ipset", "damaged"}, {"iptables", "new"}, {"iptables", "damaged"},
	} {
		t.Run(c.backend+"/"+c.state, func(t *testing.T) {
			t.Cleanup(func() {
				lab.Srv.Command(context.Background(), blockBinary(t), "flush", "--backend", "ipset", "--backend", "iptables", "--state", "").Run()
			})
			plant(t, lab.Srv, c.backend)
			if n := held(t, lab.Srv, c.backend); n != many {
				t.Fatalf("planted %d bans", n)
			}
			state := filepath.Join(t.TempDir(), "block.db")
			switch c.state {
			case "empty":
				os.WriteFile(state, nil, 0o600)
			case "damaged":
				os.WriteFile(state, damagedState(t, lab.Srv), 0o600)
			}
			start := time.Now()
			p := startBlock(t, lab.Srv, "--backend", c.backend, "--state", state, "--timeout", "30m")
			adopted := 0
			deadline := time.After(60 * time.Second)
			for adopted < many {
				select {
				case l, ok := <-p.lines:
					if !ok {
						t.Fatalf("block ended after %d adoptions; stderr:\n%s", adopted, p.stderr())
					}
					if strings.Contains(l, `"action":"add"`) && strings.Contains(l, `"reason":"adopted"`) {
						adopted++
					} else {
						t.Fatalf("decision %s", l)
					}
				case <-deadline:
					t.Fatalf("%d adoptions in 60s; stderr:\n%s", adopted, p.stderr())
				}
			}
			t.Logf("%s, %s state: started with %d bans adopted in %v", c.backend, c.state, many, time.Since(start).Round(time.Millisecond))
			want := fmt.Sprintf("block: adopted %d bans found in the firewall, as ", many)
			p.waitStderr(t, want)
			switch c.backend {
			case "ipset":
				p.waitStderr(t, "(each for the time its kernel timeout had left)\n")
			case "iptables":
				p.waitStderr(t, "(they have no timeout of their own: each for 30m0s)\n")
			}
			if c.state == "damaged" {
				p.waitStderr(t, "block: state "+state+": damaged (")
				p.waitStderr(t, "moved to "+state+".damaged-")
			} else if !strings.Contains(p.stderr(), "the state file "+state+" is new or empty") {
				t.Errorf("stderr:\n%s", p.stderr())
			}
			if n := count(p.stderr(), "\n"); n > 2 {
				t.Errorf("stderr has %d lines:\n%s", n, p.stderr())
			}
			if n := held(t, lab.Srv, c.backend); n != many {
				t.Errorf("the kernel holds %d bans after start, want %d", n, many)
			}
			// Still protecting.
			p.send(t, alertLine(lab.Atk.IPv4.String(), 10, "1"))
			p.waitFor(t, "add", lab.Atk.IPv4.String())
			if lab.Atk.CanConnect(web) {
				t.Error("attacker connects")
			}

			// A second block, with no state of its own: refused, nothing
			// touched.
			second := lab.Srv.Command(context.Background(), blockBinary(t), "--state", "", "reap", "--backend", c.backend)
			out, err := second.CombinedOutput()
			if code := second.ProcessState.ExitCode(); code != 75 || !strings.Contains(string(out), "block: another block is running on chain QUIETWATCH in this network namespace") {
				t.Errorf("second block: exit %d (%v):\n%s", code, err, out)
			}
			if n := held(t, lab.Srv, c.backend); n != many {
				t.Errorf("the kernel holds %d bans after the second block, want %d", n, many)
			}
			// The state holds them: a restart adopts nothing and lifts
			// nothing.
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, p.stderr())
			}
			p2 := startBlock(t, lab.Srv, "--backend", c.backend, "--state", state, "--timeout", "30m")
			p2.send(t, alertLine(lab.Atk.IPv4.String(), 10, "2"))
			p2.waitFor(t, "extend", lab.Atk.IPv4.String())
			if s := p2.stderr(); s != "" {
				t.Errorf("restart: stderr:\n%s", s)
			}
			if n := held(t, lab.Srv, c.backend); n != many {
				t.Errorf("the kernel holds %d bans after a restart, want %d", n, many)
			}
			p2.cmd.Process.Signal(syscall.SIGTERM)
			p2.wait(t)
			flush(t, lab.Srv, c.backend, state)
			wantClean(t, lab.Srv)
		})
	}
}
