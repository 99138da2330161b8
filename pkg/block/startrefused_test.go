package block

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/banstate"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// A ban kept in the state on an address that is refused now (the admin
// allow-listed it, or it became this host's own, and restarted block
// rather than reloading it) is lifted at start, as SIGHUP lifts it: not
// put back for the rest of its (perhaps escalated) length.
func TestStartLiftsRefusedBan(t *testing.T) {
	state := filepath.Join(t.TempDir(), "block.db")
	s, err := banstate.Open(state, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC) // the bubble starts on 2000-01-01
	var bans []ban.Ban
	for _, a := range []string{"203.0.113.12", "198.51.100.44", "192.0.2.1"} {
		bans = append(bans, ban.Ban{Net: ban.Single(netip.MustParseAddr(a)), Until: until, Timeout: 24 * time.Hour, Offense: 3, Backends: []string{"fake"}})
	}
	if err := s.Save(bans, nil, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	fake := firewall.NewFake("fake")
	e := testEnv()
	e.backend = func(string, firewall.Config) (firewall.Backend, error) { return fake, nil }
	code, out, errOut := runBlock(t, e, strings.NewReader(""), "--state", state, "--allow", "203.0.113.0/24")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		`{"timestamp":"2000-01-01T00:00:00.000000+0000","ban":{"action":"delete","ip":"203.0.113.12",`,
		`{"timestamp":"2000-01-01T00:00:00.000000+0000","ban":{"action":"delete","ip":"198.51.100.44",`,
		`{"timestamp":"2000-01-02T00:00:00.000000+0000","ban":{"action":"delete","ip":"192.0.2.1",`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no line starting %s in\n%s", want, out)
		}
	}
	if !strings.Contains(out, `"reason":"allowlisted"`) || !strings.Contains(out, `"reason":"own-address"`) {
		t.Errorf("reasons:\n%s", out)
	}
}
