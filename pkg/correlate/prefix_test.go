package correlate

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

func TestSourceKey(t *testing.T) {
	for _, c := range []struct {
		src    string
		bits   int
		key    string
		prefix string // "" for none
	}{
		{"198.51.100.7", 64, "198.51.100.7", ""},
		{"198.51.100.7", 48, "198.51.100.7", ""},
		{"2001:db8::a1", 64, "20010db800000000/64", "2001:db8::/64"},
		{"2001:db8::dead:beef:0:d4", 64, "20010db800000000/64", "2001:db8::/64"},
		{"2001:db8:0:5::a1", 48, "20010db80000/48", "2001:db8::/48"},
		{"2001:db8:0:5a5::a1", 56, "20010db8000005/56", "2001:db8:0:500::/56"},
		{"2001:db8:0:c5a5::a1", 50, "20010db80000c0/50", "2001:db8:0:c000::/50"},
		{"2001:db8:0:5:6:7:8:9", 96, "20010db8000000050006000700000000/96"[:24] + "/96", "2001:db8:0:5:6:7::/96"},
		{"2001:db8:0:5:6:7:8:9", 127, "20010db8000000050006000700080008/127", "2001:db8:0:5:6:7:8:8/127"},
		{"2001:db8::a1", 128, "20010db80000000000000000000000a1/128", ""},
		// as Suricata writes it (fastparse compresses it, another feed may not)
		{"2001:0db8:0000:0000:0000:0000:0000:00a1", 128, "20010db80000000000000000000000a1/128", ""},
		{"2001:0db8:0000:0000:0000:0000:0000:00a1", 64, "20010db800000000/64", "2001:db8::/64"},
		{"fe80::1%eth0", 64, "fe80000000000000/64", "fe80::/64"},
		{"::ffff:198.51.100.7", 64, "198.51.100.7", ""},
		{"::ffff:198.51.100.7", 128, "198.51.100.7", ""},
		{"::ffff:c633:6407", 64, "198.51.100.7", ""},
		{"::ffff:198.51.100.7%eth0", 64, "198.51.100.7", ""},
		// not an address: as written
		{"[2001:db8::1]", 64, "[2001:db8::1]", ""},
		{"2001:db8::zz", 64, "2001:db8::zz", ""},
		{"host.example", 64, "host.example", ""},
		{"", 64, "", ""},
	} {
		ev := &event{src: []byte(c.src)}
		ev.sourceKey(c.bits)
		prefix := ""
		if ev.net.IsValid() {
			prefix = ev.net.String()
		}
		if string(ev.srcKey) != c.key || prefix != c.prefix {
			t.Errorf("%q /%d: key %q prefix %q, want %q %q", c.src, c.bits, ev.srcKey, prefix, c.key, c.prefix)
		}
	}
	ev := &event{}
	ev.sourceKey(64)
	if ev.srcKey != nil {
		t.Errorf("no src_ip: key %q, want nil (no same-source key)", ev.srcKey)
	}
}

// The key of every address of a network is the same, and differs from
// that of every address outside it, whatever the length.
func TestSourceKeyGroupsNetworks(t *testing.T) {
	in, out := netip.MustParseAddr("2001:db8:1234:5678:9abc:def0:1234:5678"), netip.MustParseAddr("2001:db8:1234:5678:9abc:def0:1234:5679")
	for bits := MinIPv6Prefix; bits <= 128; bits++ {
		p := netip.PrefixFrom(in, bits).Masked()
		key := func(a netip.Addr) string {
			ev := &event{src: []byte(a.String())}
			ev.sourceKey(bits)
			return string(ev.srcKey)
		}
		base := key(p.Addr())
		// the last address of the network, and the first after it
		last := p.Addr().As16()
		for i := range last {
			if n := bits - 8*i; n < 8 {
				last[i] |= 0xff >> max(n, 0)
			}
		}
		end := netip.AddrFrom16(last)
		if got := key(end); got != base || key(in) != base {
			t.Errorf("/%d: %s and %s (%s, %s) in one network, keys differ", bits, p.Addr(), end, base, got)
		}
		if next := end.Next(); next.IsValid() && key(next) == base {
			t.Errorf("/%d: %s outside %s has its key %s", bits, next, p, base)
		}
		if bits < 128 && key(out) != base {
			t.Errorf("/%d: %s and %s keys differ", bits, in, out)
		}
	}
}

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

func BenchmarkSourceKey(b *testing.B) {
	for _, c := range []struct {
		name string
		src  string
		bits int
	}{
		{"ipv4", "198.51.100.7", 64},
		{"ipv6-64", "2001:db8:0:12:34:56:78:9a", 64},
		{"ipv6-128", "2001:db8:0:12:34:56:78:9a", 128},
		{"mapped", "::ffff:198.51.100.7", 64},
	} {
		b.Run(c.name, func(b *testing.B) {
			ev := &event{src: []byte(c.src)}
			for b.Loop() {
				ev.sourceKey(c.bits)
			}
		})
	}
}

// FuzzParse6 checks parse6 against netip.ParseAddr: what it accepts,
// ParseAddr accepts as the same address; what ParseAddr accepts written
// with hex digits and colons only, it accepts.
func FuzzParse6(f *testing.F) {
	for _, s := range []string{"2001:db8::1", "::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
		"1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "2001:DB8::A", ":1::", "1:", "::ffff:192.0.2.1", "fe80::1%eth0", "1:2:3:4:5:6:7::8", "0:0:0:0:0:0:0:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ip, ok := parse6([]byte(s))
		a, err := netip.ParseAddr(s)
		if ok {
			if err != nil || !a.Is6() || a.Zone() != "" || a.As16() != ip {
				t.Fatalf("parse6(%q) = %x; netip: %v %v", s, ip, a, err)
			}
			return
		}
		if err == nil && strings.Trim(s, "0123456789abcdefABCDEF:") == "" {
			t.Fatalf("parse6(%q) refused what netip takes (%v)", s, a)
		}
	})
}
