//go:build linux

package block

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// TestRealNFTables runs block --backend nftables in the lab's server
// namespace, next to another tool's table that accepts the attacker at the
// usual filter priority: our drop at priority -10 wins. It checks IPv4 and
// IPv6 bans and the allow list with real connections, reads the sets back
// with nft -j, has another tool flush the whole ruleset (block puts its
// table back at its next check), kills block with live bans and restarts
// it (the bans stay enforced), and block flush removes our table only.
func TestRealNFTables(t *testing.T) {
	requireReal(t)
	hosttest.Require(t, "nft")
	lab := hosttest.NewLab(t, "qwn")
	lab.Srv.Serve(t, 8080)
	srv := lab.Srv
	other := func() {
		srv.Run(t, "nft", "add table inet other")
		srv.Run(t, "nft", "add chain inet other input { type filter hook input priority 0; policy accept; }")
		srv.Run(t, "nft", "add rule inet other input ip saddr 198.51.100.241 accept")
	}
	other()
	otherTable := srv.Run(t, "nft", "list table inet other")
	web4 := netip.AddrPortFrom(srv.IPv4, 8080)
	web6 := netip.AddrPortFrom(srv.IPv6, 8080)
	if !lab.Atk.CanConnect(web4) || !lab.Atk.CanConnect(web6) {
		t.Fatal("lab: no connection before any ban")
	}
	state := filepath.Join(t.TempDir(), "state.db")
	args := []string{"--backend", "nftables", "--state", state, "--allow", lab.Adm.IPv4.String(), "--allow", lab.Adm.IPv6.String()}
	p := startBlock(t, srv, append(args, "--timeout", "1h")...)
	p.send(t, alertLine(lab.Atk.IPv4.String(), 10, "1.1"), alertLine(lab.Atk.IPv6.String(), 10, "1.2"),
		alertLine(lab.Adm.IPv4.String(), 10, "1.3"), alertLine(lab.Adm.IPv6.String(), 10, "1.4"))
	p.waitFor(t, "add", lab.Atk.IPv4.String())
	p.waitFor(t, "add", lab.Atk.IPv6.String())
	wantBanned := func(when string) {
		t.Helper()
		if lab.Atk.CanConnect(web4) || lab.Atk.CanConnect(web6) {
			t.Errorf("%s: attacker connects while banned", when)
		}
		if !lab.Adm.CanConnect(web4) || !lab.Adm.CanConnect(web6) {
			t.Errorf("%s: allow-listed admin cannot connect", when)
		}
	}
	wantBanned("first ban")
	js := srv.Run(t, "nft", "-j", "list", "set", "inet", "quietwatch", "local-v4")
	if !strings.Contains(js, `"val": "198.51.100.241", "timeout": 3601`) || strings.Contains(js, "198.51.100.12") {
		t.Errorf("nft -j list set local-v4:\n%s", js)
	}
	if js := srv.Run(t, "nft", "-j", "list", "set", "inet", "quietwatch", "local-v6"); !strings.Contains(js, `"val": "2001:db8::241"`) {
		t.Errorf("nft -j list set local-v6:\n%s", js)
	}

	// Another tool flushes the whole ruleset: block's next check (every
	// 5 s) puts our table and its bans back.
	srv.Run(t, "nft", "flush ruleset")
	other()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.stderr(), "table inet quietwatch was missing: created") {
		if time.Now().After(deadline) {
			t.Fatalf("table not repaired; stderr:\n%s", p.stderr())
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantBanned("after repair")

	// Killed with live bans and started again: the bans stay enforced.
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t)
	wantBanned("after kill -9")
	p2 := startBlock(t, srv, append(args, "--timeout", "2s")...)
	p2.send(t, alertLine("198.51.100.78", 10, "2.1")) // its add says the start is done
	p2.waitFor(t, "add", "198.51.100.78")
	wantBanned("after restart")
	p2.cmd.Process.Signal(syscall.SIGTERM)
	if code := p2.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p2.stderr())
	}

	// A short ban is lifted on time by the reaper.
	p3 := startBlock(t, srv, append(args, "--timeout", "1s")...)
	p3.send(t, alertLine("198.51.100.77", 10, "3.1"))
	p3.waitFor(t, "add", "198.51.100.77")
	p3.waitFor(t, "delete", "198.51.100.77")
	if js := srv.Run(t, "nft", "-j", "list", "set", "inet", "quietwatch", "local-v4"); strings.Contains(js, "198.51.100.77") {
		t.Errorf("expired ban still in the set:\n%s", js)
	}
	p3.cmd.Process.Signal(syscall.SIGTERM)
	p3.wait(t)

	flush(t, srv, "nftables", state)
	if !lab.Atk.CanConnect(web4) || !lab.Atk.CanConnect(web6) {
		t.Error("attacker blocked after block flush")
	}
	if out, err := srv.Command(t.Context(), "nft", "list", "table", "inet", "quietwatch").CombinedOutput(); err == nil {
		t.Errorf("table left after block flush:\n%s", out)
	}
	if got := srv.Run(t, "nft", "list table inet other"); got != otherTable {
		t.Errorf("other table changed:\n%s\nwas:\n%s", got, otherTable)
	}
	wantClean(t, srv)
}

// TestNFTablesAdoptAndRepair: block is killed with 2,000 live bans in
// the kernel and starts again on a new state: it adopts them, each for
// the time its element's kernel timeout had left, and lifts none. Then
// another tool flushes our set and our input chain: block puts both back
// at its next check, one line each.
func TestNFTablesAdoptAndRepair(t *testing.T) {
	requireReal(t)
	hosttest.Require(t, "nft")
	lab := hosttest.NewLab(t, "qwa")
	lab.Srv.Serve(t, 8080)
	srv := lab.Srv
	web := netip.AddrPortFrom(srv.IPv6, 8080)
	dir := t.TempDir()
	const n = 2000
	p1 := startBlock(t, srv, "--backend", "nftables", "--state", filepath.Join(dir, "old.db"), "--timeout", "1h")
	var in strings.Builder
	for i := range n {
		in.WriteString(alertLine(fmt.Sprintf("2001:db8::1:%x", i), 10, "1"))
	}
	p1.send(t, in.String())
	p1.waitFor(t, "add", fmt.Sprintf("2001:db8::1:%x", n-1))
	p1.cmd.Process.Signal(syscall.SIGKILL)
	p1.wait(t)

	p := startBlock(t, srv, "--backend", "nftables", "--state", filepath.Join(dir, "new.db"), "--timeout", "30m")
	p.waitStderr(t, fmt.Sprintf("block: adopted %d bans found in the firewall, as ", n))
	p.waitStderr(t, "(each for the time its kernel timeout had left)\n")
	if got := count(srv.Run(t, "nft", "-j", "list", "set", "inet", "quietwatch", "local-v6"), `"val": "2001:db8::1:`); got != n {
		t.Fatalf("the kernel holds %d bans after the restart, want %d", got, n)
	}
	p.send(t, alertLine(lab.Atk.IPv6.String(), 10, "2"))
	p.waitFor(t, "add", lab.Atk.IPv6.String())
	if lab.Atk.CanConnect(web) {
		t.Fatal("attacker connects while banned")
	}

	srv.Run(t, "nft", "flush set inet quietwatch local-v6")
	p.waitStderr(t, fmt.Sprintf("block: nftables: table inet quietwatch: set local-v6 lost %d members: restored\n", n+1))
	if lab.Atk.CanConnect(web) {
		t.Error("attacker connects after the set was repaired")
	}
	srv.Run(t, "nft", "flush chain inet quietwatch input")
	p.waitStderr(t, "block: nftables: table inet quietwatch: chain input lost 4 rules: restored\n")
	if lab.Atk.CanConnect(web) {
		t.Error("attacker connects after the chain was repaired")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr())
	}
	flush(t, srv, "nftables", filepath.Join(dir, "new.db"))
}
