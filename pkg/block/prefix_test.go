package block

import (
	"strings"
	"testing"
)

func TestIPv6PrefixFlag(t *testing.T) {
	for _, n := range []string{"47", "129", "-1"} {
		code, _, errOut := runBlock(t, testEnv(), strings.NewReader(""), "--backend", "dry-run", "--state", "", "--ipv6-prefix="+n)
		if code != 2 || !strings.HasPrefix(errOut, "block: --ipv6-prefix "+n+": want 48 to 128\n") {
			t.Errorf("--ipv6-prefix %s: exit %d, stderr %q", n, code, errOut)
		}
	}
}

// An IPv6 attacker on five addresses of one /64 is one ban of the /64 (the
// lab server's own address, 2001:db8::44, is outside 2001:db8:0:1::/64), in
// the decisions; --ipv6-prefix 128 bans each address.
func TestIPv6PrefixBan(t *testing.T) {
	var in strings.Builder
	for _, a := range []string{"2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1::3", "2001:db8:0:1::4", "2001:db8:0:1::5"} {
		in.WriteString(alertLine(a, 10, a))
	}
	code, out, errOut := runBlock(t, testEnv(), strings.NewReader(in.String()), "--backend", "dry-run", "--state", "", "--timeout", "1h")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if n := strings.Count(out, `"action":"add","ip":"2001:db8:0:1::/64"`); n != 1 || strings.Count(out, `"action":"extend","ip":"2001:db8:0:1::/64"`) != 4 {
		t.Fatalf("decisions:\n%s", out)
	}
	_, out, _ = runBlock(t, testEnv(), strings.NewReader(in.String()), "--backend", "dry-run", "--state", "", "--ipv6-prefix", "128")
	if strings.Count(out, `"action":"add","ip":"2001:db8:0:1::`) != 5 || strings.Contains(out, "/64") {
		t.Fatalf("--ipv6-prefix 128:\n%s", out)
	}
}
