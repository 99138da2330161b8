package rule

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/pkg/record"
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
		ev := &Input{src: []byte(c.src)}
		ev.sourceKey(c.bits)
		prefix := ""
		if ev.net.IsValid() {
			prefix = ev.net.String()
		}
		if string(ev.srcKey) != c.key || prefix != c.prefix {
			t.Errorf("%q /%d: key %q prefix %q, want %q %q", c.src, c.bits, ev.srcKey, prefix, c.key, c.prefix)
		}
	}
	ev := &Input{}
	ev.sourceKey(64)
	if ev.srcKey != nil {
		t.Errorf("no src_ip: key %q, want nil (no same-source key)", ev.srcKey)
	}
}

// The key of every address of a network is the same, and differs from
// that of every address outside it, whatever the length.
func TestSourceKeyGroupsNetworks(t *testing.T) {
	in, out := netip.MustParseAddr("2001:db8:1234:5678:9abc:def0:1234:5678"), netip.MustParseAddr("2001:db8:1234:5678:9abc:def0:1234:5679")
	// (48: correlate's shortest --ipv6-prefix)
	for bits := 48; bits <= 128; bits++ {
		p := netip.PrefixFrom(in, bits).Masked()
		key := func(a netip.Addr) string {
			ev := &Input{src: []byte(a.String())}
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
			ev := &Input{src: []byte(c.src)}
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

func TestStripStampAndFormatTime(t *testing.T) {
	for in, want := range map[string]string{
		"05/14/2020-22:10:17.391373  [**] x": "[**] x",
		"05/14-22:10:17.391373  [**] x":      "[**] x",
		"01/17-11:01:04.443657 [**] x":       "[**] x",
		"not a stamp [**]":                   "not a stamp [**]",
		"05/14/2020-22:10:17.391373[**]":     "05/14/2020-22:10:17.391373[**]",
	} {
		if got := string(stripStamp([]byte(in))); got != want {
			t.Errorf("stripStamp(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"2020-05-14T22:10:17.391373+0000":  "2020-05-14T22:10:17.391373Z",
		"2020-05-14T22:10:17.391373-0400":  "2020-05-15T02:10:17.391373Z",
		"2020-05-14T22:10:17Z":             "2020-05-14T22:10:17.000000Z",
		"2020-05-14T22:10:17.5+02:00":      "2020-05-14T20:10:17.500000Z",
		"2020-05-14T22:10:17.123456789Z":   "2020-05-14T22:10:17.123456Z",
		"2020-05-14T22:10:17.391373+00:00": "2020-05-14T22:10:17.391373Z",
	} {
		us, ok := record.ParseTime([]byte(in))
		if got := FormatTime(us); !ok || got != want {
			t.Errorf("parseTime(%q) = %s %v, want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2020-13-14T22:10:17Z", "2020-05-14T22:10:17"} {
		if _, ok := record.ParseTime([]byte(bad)); ok {
			t.Errorf("parseTime(%q) accepted", bad)
		}
	}
}
