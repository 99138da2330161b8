package share

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/fleet"
)

// newServer starts an in-process NATS server with JetStream.
func newServer(t testing.TB) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func testEnv(ns *server.Server) *env {
	e := defaultEnv(command.Hooks{Now: time.Now})
	e.ownAddrs = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("198.51.100.44")}, nil }
	e.hostname = func() (string, error) { return "testhost.example.net", nil }
	if ns != nil {
		e.natsOpts = []nats.Option{nats.InProcessServer(ns)}
	}
	e.drain = 2 * time.Second
	return e
}

var startMu sync.Mutex

// proc is one share run: its stdin, its stdout line by line, and its end.
type proc struct {
	in     *io.PipeWriter
	lines  chan string
	stderr *syncBuf
	code   chan int
	cancel context.CancelFunc
	synced chan struct{} // closed after the first catch-up
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t testing.TB, e *env, args ...string) *proc {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{in: inW, lines: make(chan string, 1<<16), stderr: &syncBuf{}, code: make(chan int, 1), cancel: cancel}
	// urfave/cli's flag parsing writes globals: one app parses at a time.
	startMu.Lock()
	var once sync.Once
	subscribed := make(chan struct{})
	unlock := func() { once.Do(func() { startMu.Unlock(); close(subscribed) }) }
	e.ready = unlock
	var syncOnce sync.Once
	p.synced = make(chan struct{})
	e.synced = func() { syncOnce.Do(func() { close(p.synced) }) }
	go func() {
		code := command.Run(ctx, newApp(e), append([]string{"share"}, args...), inR, outW, p.stderr)
		unlock()
		outW.Close()
		p.code <- code
	}()
	go func() {
		br := bufio.NewReader(outR)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				close(p.lines)
				return
			}
			p.lines <- strings.TrimSuffix(l, "\n")
		}
	}()
	t.Cleanup(func() { cancel(); inW.Close() })
	<-subscribed // wait until this one is subscribed
	return p
}

func (p *proc) write(t testing.TB, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(p.in, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// waitSynced waits for the first catch-up to end.
func (p *proc) waitSynced(t testing.TB) {
	t.Helper()
	select {
	case <-p.synced:
	case <-time.After(10 * time.Second):
		t.Fatalf("no catch-up; stderr:\n%s", p.stderr.String())
	}
}

func (p *proc) writeRaw(t testing.TB, s string) {
	t.Helper()
	if _, err := io.WriteString(p.in, s); err != nil {
		t.Fatal(err)
	}
}

// next returns the next output line, failing after d.
func (p *proc) next(t testing.TB, d time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("output ended; stderr:\n%s", p.stderr.String())
		}
		return l
	case <-time.After(d):
		t.Fatalf("no output line within %s; stderr:\n%s", d, p.stderr.String())
	}
	return ""
}

// none checks that no line comes out within d.
func (p *proc) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if ok {
			t.Fatalf("unexpected output line: %s", l)
		}
	case <-time.After(d):
	}
}

// end closes stdin and returns the exit code.
func (p *proc) end(t testing.TB) int {
	t.Helper()
	p.in.Close()
	select {
	case c := <-p.code:
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("share did not end; stderr:\n%s", p.stderr.String())
	}
	return -1
}

func alert(ip string, level int) string {
	return `{"timestamp":"2020-05-14T22:10:17.391373+0000","src_ip":"` + ip + `","dest_ip":"198.51.100.44","rule":{"id":"300011","level":` +
		itoa(level) + `,"description":"Suricata level 1 alert"},"id":"1589494217.` + ip + `"}`
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(n)) }

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	if neg {
		b = append([]byte{'-'}, b...)
	}
	return string(b)
}

// waitStream waits until the ban stream exists (a publish before that is
// retried after its acknowledgement times out).
func waitStream(t testing.TB, ns *server.Server) {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var err2 error
	for range 1500 {
		if _, err2 = js.Stream(context.Background(), fleet.Stream); err2 == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no stream after 15 s: %v", err2)
}

func TestLiveAndCatchUp(t *testing.T) {
	ns := newServer(t)
	web2 := start(t, testEnv(ns), "--nats", "x", "--origin", "web2")
	waitStream(t, ns)
	web1 := start(t, testEnv(ns), "--nats", "x", "--origin", "web1")
	a := alert("198.51.100.241", 10)
	t0 := time.Now()
	web1.write(t, a)
	if got := web1.next(t, time.Second); got != a {
		t.Fatalf("web1 wrote %s, want its input", got)
	}
	got := web2.next(t, 5*time.Second)
	t.Logf("web1 -> web2 in %s", time.Since(t0))
	if !strings.HasPrefix(got, a[:len(a)-1]+`,"fleet":{"origin":"web1","received":"`) {
		t.Fatalf("web2 wrote %s", got)
	}
	web3 := start(t, testEnv(ns), "--nats", "x", "--origin", "web3")
	got = web3.next(t, 5*time.Second)
	if !strings.Contains(got, `"fleet":{"origin":"web1"`) {
		t.Fatalf("web3 caught up with %s", got)
	}
	web1.none(t, 200*time.Millisecond)
	for _, p := range []*proc{web1, web2, web3} {
		if c := p.end(t); c != 0 {
			t.Fatalf("exit %d; stderr:\n%s", c, p.stderr.String())
		}
		if s := p.stderr.String(); s != "" {
			t.Errorf("stderr: %s", s)
		}
	}
}

func mustPrefix(ip string) netip.Prefix {
	a := netip.MustParseAddr(ip)
	return netip.PrefixFrom(a, a.BitLen())
}
