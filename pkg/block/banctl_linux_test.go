//go:build linux

package block

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/quietwatch/quietwatch/internal/hosttest"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// blockCmd runs the block binary with args inside h as a process of its
// own and returns its exit code, stdout and stderr.
func blockCmd(t *testing.T, h hosttest.Host, args ...string) (int, string, string) {
	t.Helper()
	cmd := h.Command(context.Background(), blockBinary(t), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("block %s: %v", strings.Join(args, " "), err)
		}
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// banned returns the addresses h's firewall drops for backend, read back
// with iptables -S / ip6tables -S or ipset list.
func banned(t *testing.T, h hosttest.Host, backend string) string {
	t.Helper()
	var got []string
	switch backend {
	case "iptables":
		for _, p := range []string{"iptables", "ip6tables"} {
			for _, l := range strings.Split(h.Run(t, p, "-S", "QUIETWATCH"), "\n") {
				if f := strings.Fields(l); len(f) == 6 && f[0] == "-A" && f[2] == "-s" && f[4] == "-j" && f[5] == "DROP" {
					got = append(got, strings.TrimSuffix(strings.TrimSuffix(f[3], "/32"), "/128"))
				}
			}
		}
	case "ipset":
		for _, set := range []string{"quietwatch-v4", "quietwatch-v6"} {
			members := false
			for _, l := range strings.Split(h.Run(t, "ipset", "list", set), "\n") {
				if members && strings.TrimSpace(l) != "" {
					got = append(got, strings.Fields(l)[0])
				}
				members = members || l == "Members:"
			}
		}
	}
	return strings.Join(got, " ")
}

// TestRealBanControl runs block as a process in the lab's server namespace,
// reading a pipe, and block list, ban and unban as separate processes
// against it through its socket, reading the firewall back after each;
// then, block stopped, ban and unban on the state file with the settings
// it was started with.
func TestRealBanControl(t *testing.T) {
	requireReal(t)
	lab := hosttest.NewLab(t, "qwc")
	lab.Srv.Serve(t, 8080)
	atk4, atk6, adm := lab.Atk.IPv4.String(), lab.Atk.IPv6.String(), lab.Adm.IPv4.String()
	web4 := netip.AddrPortFrom(lab.Srv.IPv4, 8080)
	web6 := netip.AddrPortFrom(lab.Srv.IPv6, 8080)
	for _, backend := range []string{"iptables", "ipset"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "run", "block.sock")
			state := filepath.Join(dir, "state.db")
			arLog := filepath.Join(dir, "ar.log")
			p := startBlock(t, lab.Srv, "--backend", backend, "--state", state, "--socket", sock, "--timeout", "1h",
				"--allow", adm, "--ar-log", arLog)
			p.send(t, alertLine(atk4, 10, "1.1"))
			p.waitFor(t, "add", atk4)
			if got := banned(t, lab.Srv, backend); got != atk4 {
				t.Fatalf("after the alert: %q", got)
			}
			fi, err := os.Stat(sock)
			if err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
				t.Fatalf("socket: %v %v", fi, err)
			}

			code, out, errOut := blockCmd(t, lab.Srv, "list", "--socket", sock)
			if code != 0 || errOut != "" || !strings.Contains(out, "\n"+atk4+" ") || !strings.Contains(out, " 300011 ") {
				t.Fatalf("list: %d %q %q", code, out, errOut)
			}

			code, out, errOut = blockCmd(t, lab.Srv, "--socket", sock, "ban", atk6, "--timeout", "1h")
			var d record.Decision
			if code != 0 || errOut != "" || record.Unmarshal([]byte(out), &d) != nil || d.Ban.Action != "add" || d.Ban.Reason != "manual" {
				t.Fatalf("ban: %d %q %q", code, out, errOut)
			}
			if got := p.waitFor(t, "add", atk6); got.Ban.Reason != "manual" || got.Ban.Until != d.Ban.Until {
				t.Errorf("block's decision %+v, the caller's %+v", got.Ban, d.Ban)
			}
			if got := banned(t, lab.Srv, backend); got != atk4+" "+atk6 {
				t.Fatalf("after ban: %q", got)
			}
			if lab.Atk.CanConnect(web6) {
				t.Error("attacker connects over IPv6 after block ban")
			}

			code, out, errOut = blockCmd(t, lab.Srv, "--socket", sock, "unban", atk4)
			if code != 0 || errOut != "" || !strings.Contains(out, `"action":"delete","ip":"`+atk4+`"`) {
				t.Fatalf("unban: %d %q %q", code, out, errOut)
			}
			p.waitFor(t, "delete", atk4)
			if got := banned(t, lab.Srv, backend); got != atk6 {
				t.Fatalf("after unban: %q", got)
			}
			if !lab.Atk.CanConnect(web4) {
				t.Error("attacker cannot connect over IPv4 after block unban")
			}

			for _, c := range []struct {
				args   []string
				code   int
				stderr string
			}{
				{[]string{"ban", adm}, 1, "block: ban " + adm + ": refused: allowlisted (--allow, --allow-file)\n"},
				{[]string{"ban", lab.Srv.IPv6.String()}, 1, "block: ban " + lab.Srv.IPv6.String() + ": refused: own-address (an address of this host)\n"},
				{[]string{"unban", "198.51.100.99"}, 1, "block: unban 198.51.100.99: not banned\n"},
			} {
				code, out, errOut := blockCmd(t, lab.Srv, append([]string{"--socket", sock}, c.args...)...)
				if code != c.code || out != "" || errOut != c.stderr {
					t.Errorf("%q: %d %q %q", c.args, code, out, errOut)
				}
			}
			if got := banned(t, lab.Srv, backend); got != atk6 {
				t.Fatalf("after the refusals: %q", got)
			}

			// Stopped: no socket; the subcommands use the state, with the
			// backends and --ar-log block was started with.
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit %d: %s", code, p.stderr())
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Fatalf("socket left: %v", err)
			}
			code, out, errOut = blockCmd(t, lab.Srv, "--state", state, "--socket", sock, "list", "--json")
			if code != 0 || errOut != "" || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"ip":"`+atk6+`"`) {
				t.Fatalf("list, no block: %d %q %q", code, out, errOut)
			}
			code, _, errOut = blockCmd(t, lab.Srv, "--state", state, "--socket", sock, "ban", atk4, "--timeout", "1h")
			if code != 0 || errOut != "" {
				t.Fatalf("ban, no block: %d %q", code, errOut)
			}
			if got := banned(t, lab.Srv, backend); got != atk4+" "+atk6 {
				t.Fatalf("after ban with no block: %q", got)
			}
			code, _, errOut = blockCmd(t, lab.Srv, "--state", state, "--socket", sock, "unban", atk6)
			if code != 0 || errOut != "" {
				t.Fatalf("unban, no block: %d %q", code, errOut)
			}
			if got := banned(t, lab.Srv, backend); got != atk4 {
				t.Fatalf("after unban with no block: %q", got)
			}
			ar, _ := os.ReadFile(arLog)
			var acts []string
			for _, l := range strings.Split(strings.TrimSpace(string(ar)), "\n") {
				f := strings.Fields(l)
				acts = append(acts, strings.Join(f[len(f)-5:], " "))
			}
			want := "add - " + atk4 + " 1.1 300011|add - " + atk6 + " - -|delete - " + atk4 + " 1.1 300011|add - " + atk4 + " - -|delete - " + atk6 + " - -"
			if got := strings.Join(acts, "|"); got != want {
				t.Errorf("ar-log:\n%s\nwant %s", ar, want)
			}
			flush(t, lab.Srv, backend, state)
			wantClean(t, lab.Srv)
		})
	}
}
