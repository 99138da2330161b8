//go:build linux

package block

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// connectFrom reports whether an HTTP GET from h, sent from its address
// src, reaches web.
func connectFrom(h hosttest.Host, src netip.Addr, web netip.AddrPort) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := h.Command(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", src.String(),
		"--connect-timeout", "0.5", "-m", "2", "http://"+web.String()+"/")
	var out bytes.Buffer
	cmd.Stdout = &out
	_ = cmd.Run()
	return out.String() != "" && out.String() != "000"
}

// TestRealPrefixBan: an IPv6 attacker alerting from five addresses of one
// network is banned as that network, so a sixth address of it cannot
// connect, on iptables, ipset and nftables; with an allow-listed address
// inside the network, only the five /128s are banned and the admin at that
// address connects. The lab may use 2001:db8::/64 only, and the server's own
// address is in it (a /64 ban would be vetoed as own-address), so the
// network here is a /112 (--ipv6-prefix 112): 2001:db8::1:0/112.
func TestRealPrefixBan(t *testing.T) {
	requireReal(t)
	hosttest.Require(t, "nft")
	lab := hosttest.NewLab(t, "qwp")
	lab.Srv.Serve(t, 8080)
	web := netip.AddrPortFrom(lab.Srv.IPv6, 8080)
	atk := func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8::1:%d", i)) }
	for i := 1; i <= 6; i++ {
		lab.Atk.Run(t, "ip", "addr", "add", atk(i).String()+"/64", "dev", "eth0", "nodad")
	}
	inside := netip.MustParseAddr("2001:db8::1:12") // the admin's second address, inside the network
	lab.Adm.Run(t, "ip", "addr", "add", inside.String()+"/64", "dev", "eth0", "nodad")
	for i := 1; i <= 6; i++ {
		if !connectFrom(lab.Atk, atk(i), web) {
			t.Fatalf("lab: %s cannot connect before any ban", atk(i))
		}
	}
	var alerts []string
	for i := 1; i <= 5; i++ {
		alerts = append(alerts, alertLine(atk(i).String(), 10, fmt.Sprint(i)))
	}
	for _, backend := range []string{"iptables", "ipset", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state.db")
			args := []string{"--backend", backend, "--state", state, "--timeout", "1h", "--ipv6-prefix", "112", "--allow", lab.Adm.IPv6.String()}
			p := startBlock(t, lab.Srv, args...)
			p.send(t, alerts...)
			add := p.waitFor(t, "add", "2001:db8::1:0/112")
			for range 4 {
				p.waitFor(t, "extend", "2001:db8::1:0/112")
			}
			if add.Ban.Offense != 1 || add.Ban.Reason != "" {
				t.Errorf("add: %+v", add.Ban)
			}
			if connectFrom(lab.Atk, atk(6), web) || connectFrom(lab.Atk, atk(1), web) {
				t.Error("an address of the banned network connects")
			}
			if !connectFrom(lab.Atk, lab.Atk.IPv6, web) || !connectFrom(lab.Adm, lab.Adm.IPv6, web) {
				t.Error("an address outside the banned network cannot connect")
			}
			if got, want := holds(t, lab.Srv, backend); !strings.Contains(got, want) {
				t.Errorf("%s holds:\n%s\nwant %s", backend, got, want)
			}
			p.stop(t)
			flush(t, lab.Srv, backend, state)
			wantClean(t, lab.Srv)

			// The allow list holds an address inside the network: veto.
			state = filepath.Join(t.TempDir(), "state.db")
			p = startBlock(t, lab.Srv, append(args, "--allow", inside.String())...)
			p.send(t, alerts...)
			for i := 1; i <= 5; i++ {
				d := p.waitFor(t, "add", atk(i).String())
				if d.Ban.Reason != "prefix-allowlisted" {
					t.Errorf("veto: %+v", d.Ban)
				}
			}
			for i := 1; i <= 5; i++ {
				if connectFrom(lab.Atk, atk(i), web) {
					t.Errorf("%s connects while banned", atk(i))
				}
			}
			if !connectFrom(lab.Atk, atk(6), web) {
				t.Error("the network was banned whole despite the allow list")
			}
			if !connectFrom(lab.Adm, inside, web) {
				t.Error("the allow-listed admin inside the network cannot connect")
			}
			if got, want := holds(t, lab.Srv, backend); strings.Contains(got, want) || !strings.Contains(got, "2001:db8::1:5") {
				t.Errorf("%s holds after the veto:\n%s", backend, got)
			}
			p.stop(t)
			flush(t, lab.Srv, backend, state)
			wantClean(t, lab.Srv)
		})
	}
}

// stop ends block with SIGTERM (its bans stay in place).
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr())
	}
}

// holds returns what backend holds of ours for IPv6 in h, as an admin
// would look, and the text that shows the network 2001:db8::1:0/112.
func holds(t *testing.T, h hosttest.Host, backend string) (string, string) {
	t.Helper()
	switch backend {
	case "iptables":
		return h.Run(t, "ip6tables", "-S", "QUIETWATCH"), "-A QUIETWATCH -s 2001:db8::1:0/112 -j DROP"
	case "ipset":
		return h.Run(t, "ipset", "list", "quietwatch-v6"), "2001:db8::1:0/112 timeout"
	}
	return h.Run(t, "nft", "-j", "list", "set", "inet", "quietwatch", "local-v6"), `{"prefix": {"addr": "2001:db8::1:0", "len": 112}}`
}
