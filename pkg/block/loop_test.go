package block

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quietwatch/quietwatch/pkg/allowlist"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/firewall"
	"github.com/quietwatch/quietwatch/pkg/record"
)

func alertLine(src string, level int, id string) string {
	return fmt.Sprintf(`{"src_ip":%q,"rule":{"id":"300011","level":%d},"id":%q}`+"\n", src, level, id)
}

// live runs block in a synctest bubble with a pipe as stdin; the test
// writes alerts at chosen (fake) times and reads decisions as they come.
type live struct {
	in    *io.PipeWriter
	out   *bufio.Reader
	done  chan int
	fake  *firewall.Fake
	errb  *bytes.Buffer
	stop  context.CancelFunc
	start time.Time
}

func startLive(t *testing.T, fake *firewall.Fake, args ...string) *live {
	e := testEnv()
	e.backend = func(name string, cfg firewall.Config) (firewall.Backend, error) { return fake, nil }
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	l := &live{in: inW, out: bufio.NewReader(outR), done: make(chan int, 1), fake: fake, errb: new(bytes.Buffer), stop: cancel, start: time.Now()}
	go func() {
		code := command.Run(ctx, newApp(e), append([]string{"block", "--backend", "dry-run"}, args...), inR, outW, l.errb)
		outW.Close()
		inR.Close()
		l.done <- code
	}()
	return l
}

func (l *live) send(t *testing.T, lines ...string) {
	t.Helper()
	if _, err := io.WriteString(l.in, strings.Join(lines, "")); err != nil {
		t.Fatal(err)
	}
}

// next returns the next decision line and how long after the start it came.
func (l *live) next(t *testing.T) (string, time.Duration) {
	t.Helper()
	s, err := l.out.ReadString('\n')
	if err != nil {
		t.Fatalf("reading decisions: %v (stderr %q)", err, l.errb.String())
	}
	return s, time.Since(l.start)
}

func TestReaperTimesAndExtend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := firewall.NewFake("fake")
		l := startLive(t, fake, "--state=", "--timeout", "10s")
		l.send(t, alertLine("192.0.2.1", 10, "a"))
		if d, at := l.next(t); !strings.Contains(d, `"action":"add"`) || at != 0 {
			t.Fatalf("%v: %s", at, d)
		}
		time.Sleep(6 * time.Second)
		l.send(t, alertLine("192.0.2.1", 10, "b"))
		if d, at := l.next(t); !strings.Contains(d, `"action":"extend"`) || at != 6*time.Second {
			t.Fatalf("%v: %s", at, d)
		}
		// Ends 10 s after the last alert, not after the first.
		if d, at := l.next(t); !strings.Contains(d, `"action":"delete"`) || at != 16*time.Second {
			t.Fatalf("%v: %s", at, d)
		}
		if fake.Has(mustAddr("192.0.2.1")) {
			t.Fatal("still banned")
		}
		l.in.Close()
		if code := <-l.done; code != 0 {
			t.Fatalf("exit %d: %s", code, l.errb)
		}
	})
}

func TestEOFWaitsForLastBan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := firewall.NewFake("fake")
		l := startLive(t, fake, "--state=", "--timeout", "1h")
		l.send(t, alertLine("192.0.2.1", 10, "a"))
		l.next(t)
		l.in.Close()
		if d, at := l.next(t); !strings.Contains(d, `"action":"delete"`) || at != time.Hour {
			t.Fatalf("%v: %s", at, d)
		}
		if code := <-l.done; code != 0 || time.Since(l.start) != time.Hour {
			t.Fatalf("exit %d after %v", code, time.Since(l.start))
		}
	})
}

// SIGTERM (the context) ends block at once; live bans stay in the
// firewall and in the state, and the next start takes them up.
func TestTermKeepsBans(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.db")
	synctest.Test(t, func(t *testing.T) {
		fake := firewall.NewFake("fake")
		l := startLive(t, fake, "--state", state, "--timeout", "10s")
		l.send(t, alertLine("192.0.2.1", 10, "a"))
		l.next(t)
		time.Sleep(3 * time.Second)
		l.send(t, alertLine("2001:db8::1", 10, "b"))
		l.next(t)
		l.stop()
		if code := <-l.done; code != 0 {
			t.Fatalf("exit %d: %s", code, l.errb)
		}
		if !fake.Has(mustAddr("192.0.2.1")) || !fake.Has(mustAddr("2001:db8::1")) {
			t.Fatal("bans lifted on SIGTERM")
		}
		// 11 s later, the first ban is over, the second is not.
		time.Sleep(8 * time.Second)
		fake2 := firewall.NewFake("fake")
		l = startLive(t, fake2, "--state", state, "--timeout", "10s")
		if d, at := l.next(t); !strings.Contains(d, `"action":"delete","ip":"192.0.2.1"`) || at != 0 || !strings.Contains(d, `"reason":"expired"`) {
			t.Fatalf("%v: %s", at, d)
		}
		if fake2.Has(mustAddr("192.0.2.1")) || !fake2.Has(mustAddr("2001:db8::1")) || fake2.TTL(mustAddr("2001:db8::1")) != 2*time.Second {
			t.Fatalf("after restart: %q", fake2.Calls())
		}
		l.in.Close()
		if d, at := l.next(t); !strings.Contains(d, `"action":"delete","ip":"2001:db8::1"`) || at != 2*time.Second {
			t.Fatalf("%v: %s", at, d)
		}
		if code := <-l.done; code != 0 {
			t.Fatalf("exit %d: %s", code, l.errb)
		}
	})
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	allow := filepath.Join(dir, "allow")
	os.WriteFile(allow, []byte("# admins\n203.0.113.0/24\n10.0.0.1 # vpn\nnot-a-net\n2001:db8::/129\n"), 0o644)
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--allow", "10.0.0.0/33", "--allow", "x"}, exitcode.Config, "block: --allow \"10.0.0.0/33\": not a CIDR\nblock: --allow \"x\": not an address or CIDR\n"},
		{[]string{"--allow-file", allow}, exitcode.Config, "block: " + allow + ":4: \"not-a-net\": not an address or CIDR\nblock: " + allow + ":5: \"2001:db8::/129\": not a CIDR\n"},
		{[]string{"--allow-file", filepath.Join(dir, "nope")}, exitcode.Config, "no such file"},
		{[]string{"--timeout", "0s"}, exitcode.Config, "--timeout 0s: want a positive duration"},
		{[]string{"--repeat-timeouts", "30m,soon"}, exitcode.Config, `"soon" is not a positive duration`},
		{[]string{"--backend", "pf"}, exitcode.Config, `--backend "pf": unknown`},
		{[]string{"--backend", "iptables", "--chain", "INPUT"}, exitcode.Config, `chain "INPUT": a built-in chain`},
		{[]string{"--nope"}, exitcode.Usage, "flag provided but not defined"},
		{[]string{"stray"}, exitcode.Usage, `unknown command "stray"`},
		{[]string{"unban"}, exitcode.Usage, "want 1 argument"},
		{[]string{"unban", "--backend", "dry-run", "--state=", "1.2.3.4;"}, exitcode.Usage, `"1.2.3.4;" is not an IP address`},
	}
	for _, c := range cases {
		code, out, errOut := runBlock(t, testEnv(), strings.NewReader(""), c.args...)
		if code != c.code || !strings.Contains(errOut, c.stderr) || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q", c.args, code, out, errOut, c.code, c.stderr)
		}
	}
}

func TestUnavailable(t *testing.T) {
	e := testEnv()
	e.backend = func(name string, cfg firewall.Config) (firewall.Backend, error) {
		return nil, &firewall.UnavailableError{Backend: name, Err: fmt.Errorf("iptables not found")}
	}
	code, _, errOut := runBlock(t, e, strings.NewReader(""), "--backend", "iptables", "--state=")
	if code != exitcode.Unavailable || errOut != "block: iptables: iptables not found\n" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// Subcommands read the flags written before or after their name.
func TestSubcommands(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	hd := filepath.Join(dir, "hosts.deny")
	e := testEnv()
	in := alertLine("192.0.2.1", 10, "a") + alertLine("2001:db8::1", 10, "b")
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var out bytes.Buffer
		done := make(chan int)
		go func() {
			done <- command.Run(ctx, newApp(e), []string{"block", "--backend", "hosts-deny", "--hosts-deny", hd, "--state", state, "--timeout", "1h"},
				strings.NewReader(in), &out, io.Discard)
		}()
		time.Sleep(time.Minute)
		cancel()
		if code := <-done; code != 0 || strings.Count(out.String(), `"add"`) != 2 {
			t.Fatalf("exit %d: %s", code, out.String())
		}
	})
	data, _ := os.ReadFile(hd)
	if !strings.Contains(string(data), "ALL: 192.0.2.1\nALL: [2001:db8::1]\n") {
		t.Fatalf("hosts.deny:\n%s", data)
	}
	code, out, errOut := runBlock(t, e, nil, "--state", state, "list", "--json")
	if code != 0 || strings.Count(out, `{"ip":"`) != 2 || !strings.Contains(out, `"remaining_s":3600,"timeout_s":3600,"offense":1,"rule_id":"300011","alert_id":"a","backends":["hosts-deny"]}`) || errOut != "" {
		t.Fatalf("list: %d %q %q", code, out, errOut)
	}
	code, out, _ = runBlock(t, e, nil, "list", "--state", state)
	if code != 0 || !strings.HasPrefix(out, "IP ") || !strings.Contains(out, "192.0.2.1 ") || !strings.Contains(out, " 1h0m0s ") {
		t.Fatalf("list table: %d\n%s", code, out)
	}
	code, out, errOut = runBlock(t, e, nil, "--backend", "hosts-deny", "--hosts-deny", hd, "unban", "--state", state, "192.0.2.1")
	if code != 0 || !strings.Contains(out, `"action":"delete","ip":"192.0.2.1"`) || !strings.Contains(out, `"reason":"unban"`) {
		t.Fatalf("unban: %d %q %q", code, out, errOut)
	}
	code, _, errOut = runBlock(t, e, nil, "--backend", "hosts-deny", "--hosts-deny", hd, "unban", "--state", state, "192.0.2.1")
	if code != 1 || errOut != "block: unban 192.0.2.1: not banned\n" {
		t.Fatalf("second unban: %d %q", code, errOut)
	}
	code, out, _ = runBlock(t, e, nil, "flush", "--backend", "hosts-deny", "--hosts-deny", hd, "--state", state)
	if code != 0 || !strings.Contains(out, `"ip":"2001:db8::1"`) || !strings.Contains(out, `"reason":"flush"`) {
		t.Fatalf("flush: %d %q", code, out)
	}
	if data, _ := os.ReadFile(hd); len(data) != 0 {
		t.Fatalf("hosts.deny after flush:\n%s", data)
	}
	code, out, _ = runBlock(t, e, nil, "list", "--state", state, "--json")
	if code != 0 || out != "" {
		t.Fatalf("list after flush: %d %q", code, out)
	}
}

func TestStateLocked(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.db")
	e := testEnv()
	synctest.Test(t, func(t *testing.T) {
		fake := firewall.NewFake("fake")
		l := startLive(t, fake, "--state", state)
		l.send(t, alertLine("192.0.2.1", 10, "a"))
		l.next(t)
		var out, errb bytes.Buffer
		code := command.Run(context.Background(), newApp(e), []string{"block", "--backend", "dry-run", "--state", state, "list"}, nil, &out, &errb)
		if code != exitcode.TempFail || !strings.Contains(errb.String(), "in use by another block process") {
			t.Errorf("list while running: %d %q", code, errb.String())
		}
		l.stop()
		<-l.done
	})
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// SIGHUP re-reads this host's addresses and the allow file.
func TestHUP(t *testing.T) {
	dir := t.TempDir()
	allow := filepath.Join(dir, "allow")
	os.WriteFile(allow, []byte("203.0.113.0/24\n"), 0o644)
	synctest.Test(t, func(t *testing.T) {
		own := []netip.Addr{mustAddr("198.51.100.44")}
		e := testEnv()
		e.ownAddrs = func() ([]netip.Addr, error) { return own, nil }
		hup := make(chan os.Signal, 1)
		e.Hup = hup
		inR, inW := io.Pipe()
		var out bytes.Buffer
		done := make(chan int)
		go func() {
			done <- command.Run(context.Background(), newApp(e), []string{"block", "--backend", "dry-run", "--state=", "--timeout", "1s", "--allow-file", allow, "--log-skips"}, inR, &out, io.Discard)
		}()
		io.WriteString(inW, alertLine("198.51.100.45", 10, "a")+alertLine("203.0.113.9", 10, "b"))
		synctest.Wait()
		own = []netip.Addr{mustAddr("198.51.100.45")}
		os.WriteFile(allow, []byte("# nobody\n"), 0o644)
		hup <- syscall.SIGHUP
		synctest.Wait()
		io.WriteString(inW, alertLine("198.51.100.45", 10, "c")+alertLine("203.0.113.9", 10, "d"))
		inW.Close()
		<-done
		got := out.String()
		for _, want := range []string{
			`"action":"add","ip":"198.51.100.45"`, `"ip":"203.0.113.9","alert_id":"b","rule_id":"300011","reason":"allowlisted"`,
			`"ip":"198.51.100.45","alert_id":"c","rule_id":"300011","reason":"own-address"`, `"action":"add","ip":"203.0.113.9"`,
		} {
			if !strings.Contains(got, want) {
				t.Errorf("output lacks %s:\n%s", want, got)
			}
		}
	})
}

func FuzzParseAllow(f *testing.F) {
	for _, s := range []string{"203.0.113.0/24", "10.0.0.1", "::ffff:10.0.0.0/104", "2001:db8::/129", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := allowlist.Parse(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("%q: %v", s, p)
		}
	})
}

// gather takes the first item's alert and those already waiting, up to
// maxBatch in all; it says when it found the end of input and passes on
// the read error that ended it.
func TestGather(t *testing.T) {
	a := &record.Alert{ID: "a"}
	items := make(chan item, maxBatch+2)
	for range maxBatch + 1 {
		items <- item{alert: a}
	}
	batch, closed, err := gather(item{alert: a}, items, nil)
	if len(batch) != maxBatch || closed || err != nil || len(items) != 2 {
		t.Fatalf("full: %d alerts, closed %v, err %v, %d left", len(batch), closed, err, len(items))
	}
	readErr := errors.New("input/output error")
	items <- item{err: readErr}
	close(items)
	batch, closed, err = gather(item{alert: a}, items, batch[:0])
	if len(batch) != 3 || !closed || err != readErr {
		t.Fatalf("end: %d alerts, closed %v, err %v", len(batch), closed, err)
	}
	if batch, closed, err := gather(item{err: readErr}, make(chan item), nil); len(batch) != 0 || closed || err != readErr {
		t.Fatalf("error first: %d alerts, closed %v, err %v", len(batch), closed, err)
	}
}
