package block

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// A rule level written as any integral number, or as a string holding
// one, bans; a level that is not an integer is reported in words, with no
// library internals.
func TestLevelForms(t *testing.T) {
	in := `{"src_ip":"192.0.2.1","rule":{"id":"1","level":10.0},"id":"a"}
{"src_ip":"192.0.2.2","rule":{"id":"1","level":1e1},"id":"b"}
{"src_ip":"192.0.2.3","rule":{"id":"1","level":"10"},"id":"c"}
{"src_ip":"192.0.2.4","rule":{"id":"1","level":9.5},"id":"d"}
`
	code, out, errOut := runBlock(t, testEnv(), strings.NewReader(in), "--backend", "dry-run", "--state=", "--timeout", "1s")
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		if !strings.Contains(out, `"action":"add","ip":"`+ip+`"`) {
			t.Errorf("no add for %s:\n%s", ip, out)
		}
	}
	if code != 0 || errOut != "block: stdin:4: not an alert, skipped: rule.level: want an integer, got 9.5\n" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// A zoned address is refused as invalid-ip, as its bracketed form is.
func TestZonedSource(t *testing.T) {
	in := alertLine("fe80::1%eth0", 10, "a") + alertLine("[fe80::1]", 10, "b") + alertLine("2001:db8::9%1", 10, "c")
	code, out, errOut := runBlock(t, testEnv(), strings.NewReader(in), "--backend", "dry-run", "--state=", "--timeout", "1s", "--log-skips")
	if code != 0 || errOut != "" || strings.Count(out, `"reason":"invalid-ip"`) != 3 || strings.Contains(out, `"add"`) {
		t.Fatalf("exit %d, stdout %s, stderr %q", code, out, errOut)
	}
}

// SIGHUP: a ban already placed on an address that has become this host's
// own is lifted at once (delete, reason own-address), not at its end.
func TestHUPLiftsOwnAddressBan(t *testing.T) {
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
			done <- command.Run(context.Background(), newApp(e), []string{"block", "--backend", "dry-run", "--state=", "--timeout", "1h"}, inR, &out, io.Discard)
		}()
		io.WriteString(inW, alertLine("198.51.100.45", 10, "a")+alertLine("198.51.100.46", 10, "b"))
		synctest.Wait()
		start := time.Now()
		time.Sleep(time.Minute)
		own = []netip.Addr{mustAddr("198.51.100.45")}
		hup <- syscall.SIGHUP
		synctest.Wait()
		got := out.String()
		want := `{"timestamp":"` + start.Add(time.Minute).UTC().Format("2006-01-02T15:04:05.000000+0000") + `","ban":{"action":"delete","ip":"198.51.100.45"`
		if !strings.Contains(got, want) || !strings.Contains(got, `"reason":"own-address"}}`) || strings.Contains(got, `"delete","ip":"198.51.100.46"`) {
			t.Errorf("after SIGHUP:\n%s\nwant a line starting %s", got, want)
		}
		inW.Close()
		<-done
	})
}

// The running stage checks its backends every verifyEvery while bans are
// live and puts back what another tool removed, in one line on stderr.
func TestPeriodicCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := firewall.NewFake("fake")
		e := testEnv()
		e.verifyEvery = 5 * time.Second
		e.backend = func(string, firewall.Config) (firewall.Backend, error) { return fake, nil }
		inR, inW := io.Pipe()
		var out bytes.Buffer
		errb := &lockedWriter{w: new(bytes.Buffer)}
		done := make(chan int)
		go func() {
			done <- command.Run(context.Background(), newApp(e), []string{"block", "--backend", "dry-run", "--state=", "--timeout", "1h"}, inR, &out, errb)
		}()
		io.WriteString(inW, alertLine("192.0.2.1", 10, "a"))
		synctest.Wait()
		fake.Lose(mustAddr("192.0.2.1"))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if !fake.Has(mustAddr("192.0.2.1")) {
			t.Error("not restored by the periodic check")
		}
		errb.mu.Lock()
		got := errb.w.(*bytes.Buffer).String()
		errb.mu.Unlock()
		if got != "block: fake: lost 1 bans: restored\n" {
			t.Errorf("stderr %q", got)
		}
		inW.Close()
		time.Sleep(2 * time.Hour)
		<-done
	})
}
