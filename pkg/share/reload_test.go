package share

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/quietwatch/quietwatch/pkg/fleet"
)

// TestReloadAllowFile: SIGHUP re-reads --allow-file; a bad file keeps the
// old list. Before SIGHUP was handled it ended share (its default action).
func TestReloadAllowFile(t *testing.T) {
	ns := newServer(t)
	allow := filepath.Join(t.TempDir(), "allow.list")
	if err := os.WriteFile(allow, []byte("198.51.100.60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := testEnv(ns)
	sighup := make(chan os.Signal, 1)
	e.Hup = sighup
	reloaded := make(chan struct{}, 1)
	e.reloaded = func() { reloaded <- struct{}{} }
	p := start(t, e, "--nats", "x", "--origin", "web3", "--allow-file", allow)
	p.waitSynced(t)
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ban := func(origin, ip string) {
		m := &nats.Msg{Subject: fleet.BanSubject(origin, mustPrefix(ip)), Header: nats.Header{}, Data: []byte(`{"src_ip":"` + ip + `","rule":{"level":10}}`)}
		m.Header.Set(fleet.TTLHeader, "60")
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	hup := func() {
		sighup <- syscall.SIGHUP
		select {
		case <-reloaded:
		case <-time.After(5 * time.Second):
			t.Fatal("no reload")
		}
	}
	ban("web1", "198.51.100.61")
	if got := p.next(t, 5*time.Second); !strings.Contains(got, `"198.51.100.61"`) {
		t.Fatalf("got %s", got)
	}
	if err := os.WriteFile(allow, []byte("198.51.100.61\n198.51.100.62\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup()
	ban("web2", "198.51.100.62")
	ban("web2", "198.51.100.60") // no longer allow-listed
	if got := p.next(t, 5*time.Second); !strings.Contains(got, `"198.51.100.60"`) {
		t.Fatalf("after the reload: %s", got)
	}
	if err := os.WriteFile(allow, []byte("not an address\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup()
	ban("web1", "198.51.100.62") // still refused: the old list is kept
	ban("web1", "198.51.100.63")
	if got := p.next(t, 5*time.Second); !strings.Contains(got, `"198.51.100.63"`) {
		t.Fatalf("after a bad reload: %s", got)
	}
	if c := p.end(t); c != 0 {
		t.Fatalf("exit %d", c)
	}
	for _, want := range []string{"peer web2: ban of 198.51.100.62 refused: allowlisted", `"not an address": not an address or CIDR (allow list kept)`} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, p.stderr.String())
		}
	}
}
