package block

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/banstate"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// A user's filter may change fields block does not use: an alert whose
// src_port is a string and whose alert is not an object still bans.
func TestForeignFieldTypes(t *testing.T) {
	in := `{"src_ip":"192.0.2.7","src_port":"80","alert":"weird","timestamp":5,"rule":{"id":"300011","level":10,"groups":"x","description":7},"id":"a.1"}` + "\n"
	code, out, errOut := runBlock(t, testEnv(), strings.NewReader(in), "--backend", "dry-run", "--state=", "--timeout", "1s")
	if code != 0 || !strings.Contains(out, `"action":"add","ip":"192.0.2.7"`) || !strings.Contains(out, `"alert_id":"a.1","rule_id":"300011"`) || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The fields block uses must still have their types.
	in = `{"src_ip":"192.0.2.8","rule":{"id":"300011","level":"high"},"id":"a.2"}` + "\n"
	code, out, errOut = runBlock(t, testEnv(), strings.NewReader(in), "--backend", "dry-run", "--state=", "--timeout", "1s")
	if code != 0 || out != "" || !strings.Contains(errOut, "block: stdin:1: not an alert, skipped") {
		t.Fatalf("bad level: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// A read error on stdin (not EOF) is a runtime failure: exit 1 after the
// alerts read so far are decided; their bans stay.
func TestStdinReadError(t *testing.T) {
	in := io.MultiReader(strings.NewReader(alertLine("192.0.2.9", 10, "a")), iotest.ErrReader(errors.New("input/output error")))
	code, out, errOut := runBlock(t, testEnv(), in, "--backend", "dry-run", "--state=", "--timeout", "1h")
	if code != 1 || !strings.Contains(out, `"action":"add","ip":"192.0.2.9"`) || strings.Contains(out, `"delete"`) || !strings.Contains(errOut, "block: stdin: input/output error\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// The running stage wakes to forget old offense counts even when no ban
// is live.
func TestForgetsOffensesWhileIdle(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.db")
	synctest.Test(t, func(t *testing.T) {
		fake := firewall.NewFake("fake")
		l := startLive(t, fake, "--state", state, "--timeout", "10s")
		l.send(t, alertLine("192.0.2.1", 10, "a"))
		l.next(t)
		l.next(t) // the delete, 10 s later
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		l.stop()
		<-l.done
		if n := offenseCount(t, state); n != 0 {
			t.Fatalf("%d counts a day after the ban ended", n)
		}
	})
}

func offenseCount(t *testing.T, path string) int {
	t.Helper()
	s, err := banstate.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, off, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return len(off)
}

// A backend whose add failed gets it again from the reaper, with no
// further alert, 5 s later.
func TestFailedAddRetriedByReaper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := firewall.NewFake("fake")
		failed := false
		fake.Fail = func(kind string) error {
			if kind == "add" && !failed {
				failed = true
				return errors.New("xtables lock")
			}
			return nil
		}
		l := startLive(t, fake, "--state=", "--timeout", "1m")
		l.send(t, alertLine("192.0.2.1", 10, "a"))
		if d, _ := l.next(t); !strings.Contains(d, `"action":"add"`) || !strings.Contains(d, `"pending":["fake"]`) || strings.Contains(d, `"backends"`) {
			t.Fatalf("add: %s", d)
		}
		synctest.Wait()
		if fake.Has(mustAddr("192.0.2.1")) {
			t.Fatal("banned although the add failed")
		}
		time.Sleep(ban.RetryDelay)
		synctest.Wait()
		if !fake.Has(mustAddr("192.0.2.1")) || fake.TTL(mustAddr("192.0.2.1")) != time.Minute-ban.RetryDelay {
			t.Fatalf("not retried: %q", fake.Calls())
		}
		l.stop()
		<-l.done
		if !strings.Contains(l.errb.String(), "block: fake: add: xtables lock\n") {
			t.Fatalf("stderr %q", l.errb)
		}
	})
}
