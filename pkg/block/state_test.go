package block

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/banstate"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// A second block on the same chain (here with --state ”, which no state
// lock guards) refuses with exit 75 before touching any backend.
func TestInstanceLock(t *testing.T) {
	chain := fmt.Sprintf("QWT%d", os.Getpid()%1000000)
	e := testEnv()
	e.lock = lockAbstract
	touched := false
	e.backend = func(name string, cfg firewall.Config) (firewall.Backend, error) {
		f := firewall.NewFake(name)
		f.Fail = func(string) error { touched = true; return nil }
		return f, nil
	}
	release, err := lockAbstract(instancePrefix + chain)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--backend", "ipset", "--state", "", "--chain", chain},
		{"--state", "", "reap", "--backend", "iptables", "--chain", chain},
		{"--state", "", "flush", "--chain", chain},
	} {
		var out, errb bytes.Buffer
		code := command.Run(context.Background(), newApp(e), append([]string{"block"}, args...), strings.NewReader(""), &out, &errb)
		want := "block: another block is running on chain " + chain + " in this network namespace (it holds @quietwatch-block/" + chain + "): stop it first; nothing was changed"
		if code != exitcode.TempFail || !strings.HasPrefix(errb.String(), want) || strings.Count(errb.String(), "\n") != 1 || touched {
			t.Errorf("%v: exit %d, touched %v, stderr %q", args, code, touched, errb.String())
		}
	}
	// Released (as the kernel does when the holder dies) while the second
	// waits (uninstall stops block, then runs block flush): runs.
	e.stateWait = 5 * time.Second
	time.AfterFunc(100*time.Millisecond, release)
	var out, errb bytes.Buffer
	code := command.Run(context.Background(), newApp(e), []string{"block", "--state", "", "reap", "--chain", chain}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("after release: exit %d %q", code, errb.String())
	}
	// Another chain, another lock; hosts-deny files have their own.
	keys := instanceKeys(firewall.Config{Chain: "A", HostsDeny: "/etc/hosts.deny", Backends: []string{"ipset", "iptables", "hosts-deny", "dry-run"}})
	if len(keys) != 3 || keys[0] != "A" || keys[1] != "ipset/a-v4" || !strings.HasPrefix(keys[2], "hosts-deny/") {
		t.Errorf("keys %q", keys)
	}
}

// goodState returns a state file's bytes holding n bans and offenses.
func goodState(t testing.TB, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "good.db")
	s, err := banstate.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var bans []ban.Ban
	off := map[netip.Prefix]ban.Offense{}
	for i := range n {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		bans = append(bans, ban.Ban{Net: ban.Single(a), Until: time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC), Timeout: time.Hour, Offense: 1, Backends: []string{"fake"}})
		off[ban.Single(a)] = ban.Offense{Count: 1}
	}
	if err := s.Save(bans, nil, off); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A damaged state file (cut to half, a zeroed page) never crashes block:
// one line says what was found and where the file went, the bans the
// backend holds are adopted, and the stage runs (exit 0).
func TestDamagedStateStart(t *testing.T) {
	good := goodState(t, 200)
	zeroed := append([]byte(nil), good...)
	copy(zeroed[3*4096:4*4096], make([]byte, 4096))
	for name, data := range map[string][]byte{"half": good[:len(good)/2], "zeroed page": zeroed, "garbage": bytes.Repeat([]byte{0xff}, 20000)} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "block.db")
			os.WriteFile(state, data, 0o600)
			fake := firewall.NewFake("fake")
			fake.Add([]firewall.Entry{{Net: firewall.Single(netip.MustParseAddr("198.51.100.7")), TTL: time.Minute}})
			e := testEnv()
			e.backend = func(string, firewall.Config) (firewall.Backend, error) { return fake, nil }
			code, out, errOut := runBlock(t, e, strings.NewReader(alertLine("198.51.100.9", 10, "a")), "--backend", "dry-run", "--state", state, "--timeout", "1s")
			if code != 0 || !strings.Contains(out, `"action":"add","ip":"198.51.100.9"`) {
				t.Fatalf("exit %d, stdout %s, stderr %q", code, out, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if !strings.HasPrefix(lines[0], "block: state "+state+": damaged (") || !strings.Contains(lines[0], "moved to "+state+".damaged-") ||
				!strings.HasSuffix(lines[0], "; the rest is rebuilt from the firewall") {
				t.Errorf("stderr %q", errOut)
			}
			if !strings.Contains(out, `"ip":"198.51.100.7","until":"2000-01-01T00:00:59.000000+0000","timeout_s":59,"offense":1,"backends":["fake"],"reason":"adopted"`) {
				t.Errorf("not adopted:\n%s", out)
			}
			if m, _ := filepath.Glob(state + ".damaged-*"); len(m) != 1 {
				t.Errorf("aside: %v", m)
			}
		})
	}
}

// FuzzStateOpen feeds state files, damaged at random, to block's start-up
// (open, load, reconcile with a backend holding bans, a save): no panic,
// no fault, no error exit.
func FuzzStateOpen(f *testing.F) {
	good := goodState(f, 40)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:4096*2])
	zeroed := append([]byte(nil), good...)
	copy(zeroed[2*4096:3*4096], make([]byte, 4096))
	f.Add(zeroed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		state := filepath.Join(dir, "block.db")
		if err := os.WriteFile(state, data, 0o600); err != nil {
			t.Fatal(err)
		}
		e := testEnv()
		var errb bytes.Buffer
		st, err := openState(state, e, diagTo(&errb))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer st.close()
		fake := firewall.NewFake("fake")
		fake.Add([]firewall.Entry{{Net: firewall.Single(netip.MustParseAddr("198.51.100.7")), TTL: time.Minute}})
		m := ban.NewManager(ban.Policy{MinLevel: 9, Timeout: time.Minute}, []firewall.Backend{fake}, st.store)
		e.manage(m, st, diagTo(&errb))
		now := time.Date(2000, 1, 1, 0, 30, 0, 0, time.UTC)
		if _, err := m.Reconcile(now); err != nil && !strings.Contains(err.Error(), "state: ") {
			t.Fatalf("reconcile: %v", err)
		}
		if !fake.Has(netip.MustParseAddr("198.51.100.7")) && m.Len() == 0 {
			t.Fatalf("the backend's ban was neither kept nor known")
		}
		if err := st.store.Save([]ban.Ban{{Net: ban.Single(netip.MustParseAddr("198.51.100.8")), Until: now.Add(time.Minute), Offense: 1}}, nil, nil); err != nil {
			t.Fatalf("save after start: %v", err)
		}
		if strings.Count(errb.String(), "\n") > 2 {
			t.Fatalf("stderr %q", errb.String())
		}
	})
}

// Whether bans found in the firewall are adopted is decided by each run
// for its own state file: an env used for a run on a new state file and
// then for one on a state that knows its bans does not adopt in the
// second (it did while the decision lived in env).
func TestAdoptIsPerRun(t *testing.T) {
	state := filepath.Join(t.TempDir(), "block.db")
	fake := firewall.NewFake("fake")
	e := testEnv()
	e.backend = func(string, firewall.Config) (firewall.Backend, error) { return fake, nil }
	if code, out, errOut := ctl(t, e, "--state", state, "--socket", "", "ban", "198.51.100.7", "--backend", "dry-run"); code != 0 {
		t.Fatalf("ban on a new state: %d %q %q", code, out, errOut)
	}
	foreign := netip.MustParseAddr("198.51.100.8")
	fake.Add([]firewall.Entry{{Net: firewall.Single(foreign), TTL: time.Minute}})
	code, out, errOut := ctl(t, e, "--state", state, "--socket", "", "reap", "--backend", "dry-run")
	if code != 0 || strings.Contains(out, `"reason":"adopted"`) || fake.Has(foreign) || !fake.Has(netip.MustParseAddr("198.51.100.7")) {
		t.Fatalf("reap: exit %d, foreign ban kept %v, stdout %s, stderr %q", code, fake.Has(foreign), out, errOut)
	}
}
