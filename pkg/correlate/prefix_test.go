package correlate

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestIPv6PrefixFlag(t *testing.T) {
	for _, v := range []string{"0", "47", "129", "-64", "64x"} {
		_, _, stderr, code := correlate(t, []string{"-r", howto, "--ipv6-prefix", v})
		if code != 2 || !strings.Contains(stderr, "--ipv6-prefix") && !strings.Contains(stderr, "ipv6-prefix") {
			t.Errorf("--ipv6-prefix %s: exit %d, stderr %q; want 2 naming the flag", v, code, stderr)
		}
		if v != "64x" && !strings.Contains(stderr, "48..128") {
			t.Errorf("--ipv6-prefix %s: stderr %q does not name the range", v, stderr)
		}
	}
	for _, v := range []string{"48", "64", "128"} {
		if _, _, stderr, code := correlate(t, []string{"-t", "-r", howto, "--ipv6-prefix", v}); code != 0 || stderr != "" {
			t.Errorf("--ipv6-prefix %s: exit %d, stderr %q", v, code, stderr)
		}
	}
}

// An attacker hopping across its /64 takes one key of --max-keys, not one
// per address: with a single key it still escalates.
func TestMaxKeysCountsPrefixes(t *testing.T) {
	var lines []string
	for i := range 5 {
		lines = append(lines, ev(float64(i), "2001:db8::"+string(rune('1'+i)), 1))
	}
	ids, alerts, _, _ := correlate(t, []string{"-r", howto, "--max-keys", "1"}, lines...)
	if want := "300011 300011 300011 300011 300012"; strings.Join(ids, " ") != want {
		t.Fatalf("ids %v, want %s", ids, want)
	}
	if alerts[4].SrcPrefix != "2001:db8::/64" || alerts[3].SrcPrefix != "" {
		t.Errorf("src_prefix %q (300012), %q (300011)", alerts[4].SrcPrefix, alerts[3].SrcPrefix)
	}
}

// First-time-seen keys hold the source's network, in --state too: a new
// address of a /64 seen before is no first sighting after a restart.
func TestFirstTimeSeenByPrefixPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ids, alerts, _, _ := correlate(t, []string{"-r", howto, "--state", dir}, ev(0, "2001:db8::1", 2))
	if strings.Join(ids, " ") != "20100" || alerts[0].SrcPrefix != "2001:db8::/64" {
		t.Fatalf("first run %v %+v", ids, alerts)
	}
	ids, _, _, _ = correlate(t, []string{"-r", howto, "--state", dir}, ev(10, "2001:db8::2", 2), ev(11, "2001:db8:0:1::1", 2))
	if strings.Join(ids, " ") != "300001 20100" {
		t.Errorf("second run %v, want 300001 20100", ids)
	}
	ids, _, _, _ = correlate(t, []string{"-r", howto, "--state", dir, "--ipv6-prefix", "128"}, ev(20, "2001:db8::2", 2), ev(21, "2001:db8::2", 2))
	if strings.Join(ids, " ") != "20100 300001" {
		t.Errorf("--ipv6-prefix 128: %v, want 20100 300001 (keyed by address)", ids)
	}
}

func TestExplainSaysPrefix(t *testing.T) {
	_, _, stderr, _ := correlate(t, []string{"-r", howto, "--explain"}, ev(0, "2001:db8::1", 1), ev(1, "2001:db8::2", 1))
	if !strings.Contains(stderr, "rule 300012 (level 11) no: 2 of 5 events from this source (2001:db8::/64) within 120s") {
		t.Errorf("explain:\n%s", stderr)
	}
	_, _, stderr, _ = correlate(t, []string{"-r", howto, "--explain"}, ev(0, "192.0.2.1", 1))
	if !strings.Contains(stderr, "no: 1 of 5 events from this source within 120s") {
		t.Errorf("explain (IPv4):\n%s", stderr)
	}
}
