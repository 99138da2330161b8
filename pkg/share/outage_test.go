package share

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// listening starts a NATS server with JetStream on a loopback port.
func listening(t testing.TB, port int, store string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: store, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return ns
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestOutage: while the NATS server is down the local pipeline goes on at
// once; bans made meanwhile go out when it is back, if still live; the
// expired one never reaches a peer.
func TestOutage(t *testing.T) {
	port, store := freePort(t), t.TempDir()
	ns := listening(t, port, store)
	url := "nats://127.0.0.1:" + itoa(port)
	web2 := start(t, testEnv(nil), "--nats", url, "--origin", "web2")
	web1 := start(t, testEnv(nil), "--nats", url, "--origin", "web1")
	web1s := start(t, testEnv(nil), "--nats", url, "--origin", "web1s", "--ttl", "1s")

	ns.Shutdown()
	ns.WaitForShutdown()
	live, short := alert("198.51.100.31", 10), alert("198.51.100.32", 10)
	t0 := time.Now()
	web1.write(t, live)
	if got := web1.next(t, time.Second); got != live {
		t.Fatalf("web1 wrote %s", got)
	}
	web1s.write(t, short)
	if got := web1s.next(t, time.Second); got != short {
		t.Fatalf("web1s wrote %s", got)
	}
	t.Logf("local records out during the outage in %s", time.Since(t0))
	time.Sleep(1500 * time.Millisecond) // the short ban ends while NATS is away
	ns = listening(t, port, store)
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()

	got := web2.next(t, 5*time.Second)
	if !strings.Contains(got, `"src_ip":"198.51.100.31"`) || !strings.Contains(got, `"origin":"web1"`) {
		t.Fatalf("web2 after the outage: %s", got)
	}
	web2.none(t, 500*time.Millisecond)
	// A server that was never there catches up with the live ban only.
	web3 := start(t, testEnv(nil), "--nats", url, "--origin", "web3")
	got = web3.next(t, 5*time.Second)
	if !strings.Contains(got, `"src_ip":"198.51.100.31"`) {
		t.Fatalf("web3's catch-up: %s", got)
	}
	web3.none(t, 500*time.Millisecond)
	for _, p := range []*proc{web1, web1s, web2, web3} {
		if c := p.end(t); c != 0 {
			t.Fatalf("exit %d; stderr:\n%s", c, p.stderr.String())
		}
	}
	t.Logf("web1's stderr:\n%s", web1.stderr.String())
}

// TestCatchUpExpired: a server that was away gets the bans still live in
// the fleet and not those that ended meanwhile.
func TestCatchUpExpired(t *testing.T) {
	ns := newServer(t)
	web1 := start(t, testEnv(ns), "--nats", "x", "--origin", "web1", "--ttl", "1s")
	waitStream(t, ns)
	web1b := start(t, testEnv(ns), "--nats", "x", "--origin", "web1b", "--ttl", "1m")
	for i := range 50 {
		web1.write(t, alert("198.51.100."+itoa(100+i), 10))
		web1b.write(t, alert("2001:db8::"+itoa(100+i), 10))
	}
	for range 50 {
		web1.next(t, time.Second)
		web1b.next(t, time.Second)
	}
	time.Sleep(2 * time.Second)
	web3 := start(t, testEnv(ns), "--nats", "x", "--origin", "web3")
	for range 50 {
		if got := web3.next(t, 5*time.Second); !strings.Contains(got, `"src_ip":"2001:db8::`) {
			t.Fatalf("web3 caught up with %s", got)
		}
	}
	web3.none(t, 500*time.Millisecond)
}
