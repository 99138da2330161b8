//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// The fleet lab: three NATS servers (the real nats-server binary, built
// by scripts/test-deps into .tools/) clustered in a namespace of their
// own, three quietwatch servers web1..web3 each running share | block
// with real ipset sets in a namespace of its own, and a namespace for a
// hostile peer, all on one bridge. Addresses: web1..3 198.51.100.21-23,
// NATS 198.51.100.31-33, the hostile peer 198.51.100.29, the allow-listed
// admin 198.51.100.12.

const fleetAdmin = "198.51.100.12"

var (
	shareOnce sync.Once
	shareBin  string
	shareErr  error
)

// buildShare builds cmd/share once for the fleet tests.
func buildShare(t *testing.T) string {
	t.Helper()
	shareOnce.Do(func() {
		dir, err := os.MkdirTemp("", "qwe-share-")
		if err != nil {
			shareErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/share")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			shareErr = fmt.Errorf("build share: %v\n%s", err, out)
			return
		}
		shareBin = filepath.Join(dir, "share")
	})
	if shareErr != nil {
		t.Fatal(shareErr)
	}
	return shareBin
}

func natsServerBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(repo, ".tools", "nats-server")
	if _, err := os.Stat(p); err != nil {
		hosttest.Missing(t, "%s not built (scripts/test-deps builds it)", p)
	}
	return p
}

type fleetLab struct {
	t      *testing.T
	id     string
	dir    string
	nsList []string
	natsNS string
	nodes  []*natsNode
	urls   string
	webs   []*webHost
}

type natsNode struct {
	name, addr string
	cmd        *exec.Cmd
	done       chan struct{}
}

// webHost is one quietwatch server: share | block in its namespace; the
// test writes alerts to share's stdin and reads block's decisions.
type webHost struct {
	name, ns, addr, port string
	cmd                  *exec.Cmd
	in                   io.WriteCloser
	stderr               *lockedBuffer
	mu                   sync.Mutex
	added                map[string]time.Time // first "add" decision per address
	lines                []string
}

func (lab *fleetLab) ip(args ...string) {
	lab.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		lab.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newFleetLab(t *testing.T) *fleetLab {
	t.Helper()
	lab := &fleetLab{t: t, id: "qwf" + strconv.Itoa(os.Getpid()%100000), dir: t.TempDir()}
	lan := lab.id + "-lan"
	lab.natsNS = lab.id + "-nats"
	t.Cleanup(lab.destroy)
	lab.nsList = []string{lan}
	lab.ip("netns", "add", lan)
	lab.ip("-n", lan, "link", "add", "br0", "type", "bridge")
	lab.ip("-n", lan, "link", "set", "br0", "up")
	n := 0
	host := func(ns string, addrs ...string) string {
		port := "p" + strconv.Itoa(n)
		n++
		lab.nsList = append(lab.nsList, ns)
		lab.ip("netns", "add", ns)
		lab.ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", lan)
		lab.ip("-n", lan, "link", "set", port, "master", "br0")
		lab.ip("-n", lan, "link", "set", port, "up")
		for _, a := range addrs {
			lab.ip("-n", ns, "addr", "add", a+"/24", "dev", "eth0")
		}
		lab.ip("-n", ns, "link", "set", "lo", "up")
		lab.ip("-n", ns, "link", "set", "eth0", "up")
		return port
	}
	host(lab.natsNS, "198.51.100.31", "198.51.100.32", "198.51.100.33")
	for i := 1; i <= 3; i++ {
		w := &webHost{name: "web" + strconv.Itoa(i), ns: lab.id + "-web" + strconv.Itoa(i), addr: "198.51.100.2" + strconv.Itoa(i),
			stderr: &lockedBuffer{}, added: map[string]time.Time{}}
		w.port = host(w.ns, w.addr)
		lab.webs = append(lab.webs, w)
	}
	host(lab.id+"-peer", "198.51.100.29")
	var urls []string
	for i := 1; i <= 3; i++ {
		node := &natsNode{name: "n" + strconv.Itoa(i), addr: "198.51.100.3" + strconv.Itoa(i)}
		lab.nodes = append(lab.nodes, node)
		urls = append(urls, "nats://"+node.addr+":4222")
	}
	lab.urls = strings.Join(urls, ",")
	return lab
}

func (lab *fleetLab) destroy() {
	for _, w := range lab.webs {
		if w.in != nil {
			w.in.Close()
		}
	}
	for _, ns := range lab.nsList {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, ns := range lab.nsList {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

// startNode starts (or restarts) a NATS node with its store kept in the
// lab's folder.
func (lab *fleetLab) startNode(bin string, node *natsNode) {
	lab.t.Helper()
	var routes []string
	for _, o := range lab.nodes {
		routes = append(routes, "nats://"+o.addr+":6222")
	}
	cmd := exec.Command("ip", "netns", "exec", lab.natsNS, bin,
		"-a", node.addr, "-p", "4222", "-m", "8222", "-js", "-sd", filepath.Join(lab.dir, node.name),
		"--server_name", node.name, "--cluster_name", "qwf", "--cluster", "nats://"+node.addr+":6222",
		"--routes", strings.Join(routes, ","))
	log, err := os.OpenFile(filepath.Join(lab.dir, node.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		lab.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		lab.t.Fatalf("start %s: %v", node.name, err)
	}
	node.cmd, node.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(node.done) }()
}

func (lab *fleetLab) killNode(node *natsNode) {
	_ = node.cmd.Process.Kill() // ip netns exec execs the server in place
	<-node.done
}

// jsz asks a node's monitoring port (from inside the NATS namespace) for
// the ban stream's cluster leader and message count.
func (lab *fleetLab) streamLeader(node *natsNode) (leader string, msgs int) {
	out, err := exec.Command("ip", "netns", "exec", lab.natsNS, "curl", "-s", "-m", "2",
		"http://"+node.addr+":8222/jsz?streams=true&accounts=true").Output()
	if err != nil {
		return "", 0
	}
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name    string                 `json:"name"`
				State   struct{ Messages int } `json:"state"`
				Cluster struct {
					Leader string `json:"leader"`
				} `json:"cluster"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if json.Unmarshal(out, &jsz) != nil {
		return "", 0
	}
	for _, a := range jsz.Accounts {
		for _, s := range a.Streams {
			if s.Name == "QW_BANS" {
				return s.Cluster.Leader, s.State.Messages
			}
		}
	}
	return "", 0
}

func (lab *fleetLab) leader() string {
	for _, n := range lab.nodes {
		select {
		case <-n.done:
			continue
		default:
		}
		if l, _ := lab.streamLeader(n); l != "" {
			return l
		}
	}
	return ""
}

// startWeb starts share | block on w.
func (lab *fleetLab) startWeb(w *webHost, share string, shareArgs ...string) {
	lab.t.Helper()
	block := filepath.Join(binDir, "block")
	q := func(args []string) string {
		var b strings.Builder
		for _, a := range args {
			b.WriteString(" '" + a + "'")
		}
		return b.String()
	}
	sargs := append([]string{"--nats", lab.urls, "--origin", w.name, "--allow", fleetAdmin}, shareArgs...)
	// --ipv6-prefix 128: the attackers here are many addresses of the one
	// test /64 (2001:db8::/64), each meant as a ban of its own; block's
	// default would ban them all as the /64 at the first.
	bargs := []string{"--backend", "ipset", "--chain", "QWF", "--state", "", "--allow", fleetAdmin, "--timeout", "5m", "--ipv6-prefix", "128"}
	cmd := exec.Command("ip", "netns", "exec", w.ns, "sh", "-c", "exec "+share+q(sargs)+" | exec "+block+q(bargs))
	in, err := cmd.StdinPipe()
	if err != nil {
		lab.t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		lab.t.Fatal(err)
	}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		lab.t.Fatal(err)
	}
	w.cmd, w.in = cmd, in
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			now := time.Now()
			l := sc.Text()
			w.mu.Lock()
			w.lines = append(w.lines, l)
			if strings.Contains(l, `"action":"add"`) {
				if ip := between(l, `"ip":"`, `"`); ip != "" {
					if _, ok := w.added[ip]; !ok {
						w.added[ip] = now
					}
				}
			}
			w.mu.Unlock()
		}
	}()
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, b)
	return v
}

func (w *webHost) alert(t *testing.T, ip string) {
	t.Helper()
	line := fmt.Sprintf(`{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"%s","dest_ip":"%s","proto":"TCP","rule":{"id":"300011","level":10,"description":"Suricata level 1 alert"},"id":"%d.1"}`+"\n", ip, w.addr, time.Now().UnixNano())
	if _, err := io.WriteString(w.in, line); err != nil {
		t.Fatalf("%s: write: %v\nstderr:\n%s", w.name, err, w.stderr.String())
	}
}

func (w *webHost) addedAt(ip string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.added[ip]
	return at, ok
}

func (w *webHost) countAdded(prefix string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for ip := range w.added {
		if strings.HasPrefix(ip, prefix) {
			n++
		}
	}
	return n
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// TestFleet runs the fleet over a real 3-node NATS cluster: an attack on
// web1 is dropped on web2 and web3 (web1's decision to web3's set, p50 and
// p99); the node leading the stream is killed mid-run and no ban is lost
// or late by more than 2 s; web3 is cut off while 100 bans happen and has
// the live ones within 2 s of coming back, never the expired ones; a peer
// flooding 100,000 bans is held by the guards and the allow-listed admin
// is never banned.
func TestFleet(t *testing.T) {
	hosttest.Require(t, "ip", "ipset", "iptables", "curl")
	natsBin, share := natsServerBin(t), buildShare(t)
	lab := newFleetLab(t)
	for _, n := range lab.nodes {
		lab.startNode(natsBin, n)
	}
	web1, web2, web3 := lab.webs[0], lab.webs[1], lab.webs[2]
	// web1's bans live 3 s in the fleet (block keeps its own 5 min), web2's
	// 10 min: the outage below sees both end and live ones.
	lab.startWeb(web1, share, "--ttl", "3s")
	lab.startWeb(web2, share, "--ttl", "10m")
	lab.startWeb(web3, share)
	t0 := time.Now()
	if !waitFor(30*time.Second, func() bool { return lab.leader() != "" }) {
		t.Fatalf("no stream leader after 30 s\nweb1:\n%s", web1.stderr.String())
	}
	// A first ban shows every server is joined.
	web1.alert(t, "198.51.100.150")
	if !waitFor(15*time.Second, func() bool {
		_, a := web2.addedAt("198.51.100.150")
		_, b := web3.addedAt("198.51.100.150")
		return a && b
	}) {
		t.Fatalf("the first ban did not reach web2 and web3\nweb2:\n%s\nweb3:\n%s", web2.stderr.String(), web3.stderr.String())
	}
	t.Logf("cluster and fleet up in %s (stream leader %s)", time.Since(t0).Round(time.Millisecond), lab.leader())

	t.Run("latency", func(t *testing.T) {
		var lat []time.Duration
		for i := range 25 {
			ip := "198.51.100." + strconv.Itoa(160+i)
			web1.alert(t, ip)
			if !waitFor(3*time.Second, func() bool {
				_, a := web1.addedAt(ip)
				_, b := web3.addedAt(ip)
				return a && b
			}) {
				t.Fatalf("%s not banned on web1 and web3 within 3 s", ip)
			}
			a, _ := web1.addedAt(ip)
			b, _ := web3.addedAt(ip)
			lat = append(lat, b.Sub(a)) // below zero when web3's block was first
			time.Sleep(20 * time.Millisecond)
		}
		p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
		t.Logf("web1's decision to web3's ipset entry over %d bans: p50 %s, p99 %s (target p99 50ms)", len(lat), p50, p99)
		out, err := exec.Command("ip", "netns", "exec", web3.ns, "ipset", "test", "qwf-v4", "198.51.100.184").CombinedOutput()
		if err != nil {
			t.Fatalf("198.51.100.184 not in web3's set: %v\n%s", err, out)
		}
		if p99 > time.Second {
			t.Errorf("p99 %s: over a second", p99)
		}
	})

	t.Run("leader-killed", func(t *testing.T) {
		leader := lab.leader()
		var node *natsNode
		for _, n := range lab.nodes {
			if n.name == leader {
				node = n
			}
		}
		if node == nil {
			t.Fatalf("stream leader %q not found", leader)
		}
		var ips []string
		for i := range 40 {
			ip := "2001:db8::a:" + strconv.Itoa(i+1)
			ips = append(ips, ip)
			web1.alert(t, ip)
			if i == 10 {
				lab.killNode(node)
				t.Logf("killed %s, the stream leader", leader)
			}
			time.Sleep(50 * time.Millisecond)
		}
		waitFor(5*time.Second, func() bool {
			for _, ip := range ips {
				_, a := web2.addedAt(ip)
				_, b := web3.addedAt(ip)
				if !a || !b {
					return false
				}
			}
			return true
		})
		var worst time.Duration
		for _, ip := range ips {
			a, ok := web1.addedAt(ip)
			if !ok {
				t.Fatalf("web1 did not ban %s", ip)
			}
			for _, w := range []*webHost{web2, web3} {
				b, ok := w.addedAt(ip)
				if !ok {
					t.Errorf("%s never got %s (ban lost)\nstderr:\n%s", w.name, ip, w.stderr.String())
					continue
				}
				worst = max(worst, b.Sub(a))
			}
		}
		t.Logf("with the leader killed: every ban on web2 and web3, the slowest %s after web1's decision", worst)
		// Target 2 s (2-514 ms measured); fails past twice that, as above.
		if worst > 4*time.Second {
			t.Errorf("slowest ban %s: over 4 s (target 2 s)", worst)
		}
		killed := time.Now()
		if waitFor(15*time.Second, func() bool { l := lab.leader(); return l != "" && l != leader }) {
			t.Logf("new stream leader %s, %s after the bans were all in", lab.leader(), time.Since(killed).Round(10*time.Millisecond))
		}
		lab.startNode(natsBin, node) // back for what follows
	})

	t.Run("offline", func(t *testing.T) {
		lab.ip("-n", lab.id+"-lan", "link", "set", web3.port, "down")
		for i := range 50 {
			web1.alert(t, "2001:db8::b:"+strconv.Itoa(i+1)) // lives 3 s in the fleet
			web2.alert(t, "2001:db8::c:"+strconv.Itoa(i+1)) // lives 10 min
		}
		if !waitFor(5*time.Second, func() bool { return web2.countAdded("2001:db8::b:") == 50 }) {
			t.Fatal("web2 did not get web1's bans during web3's outage")
		}
		time.Sleep(4 * time.Second) // web1's bans end meanwhile
		lab.ip("-n", lab.id+"-lan", "link", "set", web3.port, "up")
		back := time.Now()
		if !waitFor(10*time.Second, func() bool { return web3.countAdded("2001:db8::c:") == 50 }) {
			t.Fatalf("web3 has %d of the 50 live bans 10 s after coming back\nstderr:\n%s", web3.countAdded("2001:db8::c:"), web3.stderr.String())
		}
		took := time.Since(back)
		time.Sleep(time.Second)
		t.Logf("web3 back: the 50 live bans in place %s after its link came up; %d of the 50 expired ones applied", took.Round(time.Millisecond), web3.countAdded("2001:db8::b:"))
		if n := web3.countAdded("2001:db8::b:"); n != 0 {
			t.Errorf("web3 applied %d expired bans", n)
		}
		// The target is 2 s (0.2-1.1 s measured on a quiet machine); a
		// loaded 2-core machine has taken 2.9 s (TCP retransmission and
		// reconnect timing), so the test fails only past twice the target
		// and logs the time for the README.
		if took > 4*time.Second {
			t.Errorf("live bans in place %s after coming back: over 4 s (target 2 s)", took)
		}
	})

	t.Run("flood", func(t *testing.T) {
		start := time.Now()
		cmd := exec.Command("ip", "netns", "exec", lab.id+"-peer", os.Args[0], "-test.run", "^TestFleetFloodHelper$", "-test.count", "1")
		cmd.Env = append(os.Environ(), "QW_FLEET_FLOOD="+lab.urls)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "flooded 100000") {
			t.Fatalf("flood helper: %v\n%s", err, out)
		}
		sent := time.Since(start)
		time.Sleep(2 * time.Second)
		// After the flood web1's bans still get through.
		web1.alert(t, "198.51.100.151")
		if !waitFor(5*time.Second, func() bool { _, ok := web3.addedAt("198.51.100.151"); return ok }) {
			t.Errorf("web1's ban after the flood did not reach web3\nstderr:\n%s", web3.stderr.String())
		}
		elapsed := time.Since(start).Seconds()
		for _, w := range []*webHost{web2, web3} {
			n := w.countAdded("2001:db8::f:")
			// The per-peer burst (200) and rate (20/s) of the defaults.
			if limit := 200 + int(20*elapsed) + 20; n > limit {
				t.Errorf("%s applied %d of the flood's bans in %.1f s: over the guard's %d", w.name, n, elapsed, limit)
			}
			if _, ok := w.addedAt(fleetAdmin); ok {
				t.Errorf("%s banned the allow-listed admin", w.name)
			}
			if out, err := exec.Command("ip", "netns", "exec", w.ns, "ipset", "test", "qwf-v4", fleetAdmin).CombinedOutput(); err == nil {
				t.Errorf("%s: admin in the set: %s", w.name, out)
			}
			t.Logf("%s: %d of the 100,000 flooded bans applied (sent in %s); admin not banned", w.name, n, sent.Round(time.Millisecond))
			if !strings.Contains(w.stderr.String(), "peer web9: ban of "+fleetAdmin+" refused: allowlisted") {
				t.Errorf("%s did not report the admin refused\nstderr:\n%s", w.name, w.stderr.String())
			}
		}
	})
}

// TestFleetFloodHelper is the hostile peer of TestFleet, run by it inside
// the peer's namespace: 100,000 bans from origin web9, the allow-listed
// admin among the first.
func TestFleetFloodHelper(t *testing.T) {
	urls := os.Getenv("QW_FLEET_FLOOD")
	if urls == "" {
		t.Skip("run by TestFleet")
	}
	nc, err := nats.Connect(urls, nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	exp := strconv.FormatInt(time.Now().Add(5*time.Minute).UnixMilli(), 10)
	send := func(subj, ip string, i int) {
		m := &nats.Msg{Subject: subj, Header: nats.Header{}, Data: fmt.Appendf(nil, `{"src_ip":"%s","rule":{"id":"300011","level":10},"id":"flood.%d"}`, ip, i)}
		m.Header.Set("Nats-TTL", "300")
		m.Header.Set("Qw-Expires", exp)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	send("qw.ban.web9.198-51-100-12", fleetAdmin, 0)
	for i := 1; i < 100000; i++ {
		ip := fmt.Sprintf("2001:db8::f:%x", i)
		send("qw.ban.web9."+ip, ip, i)
	}
	if err := nc.FlushTimeout(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	fmt.Println("flooded 100000")
}
