package fleet

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
)

func TestSubjects(t *testing.T) {
	for _, tc := range []struct{ addr, subj string }{
		{"198.51.100.241/32", "qw.ban.web1.198-51-100-241"},
		{"2001:db8::241/128", "qw.ban.web1.2001:db8::241"},
		{"2001:db8::/64", "qw.ban.web1.2001:db8::_64"},
		{"198.51.100.0/24", "qw.ban.web1.198-51-100-0_24"},
	} {
		p := netip.MustParsePrefix(tc.addr)
		if got := BanSubject("web1", p); got != tc.subj {
			t.Errorf("BanSubject(%s) = %s, want %s", p, got, tc.subj)
		}
		o, q, err := ParseBanSubject(tc.subj)
		if err != nil || o != "web1" || q != p {
			t.Errorf("ParseBanSubject(%s) = %s, %s, %v", tc.subj, o, q, err)
		}
	}
	for _, bad := range []string{"qw.ban.web1", "qw.ban.web1.", "qw.ban..1-2-3-4", "qw.ban.w*.1-2-3-4", "qw.ban.web1.1-2-3-4.x",
		"qw.ban.web1.1-2-3-4_33", "qw.ban.web1.1-2-3-4_24", "qw.ban.web1.1-2-3-4_08", "qw.ban.web1.fe80::1%eth0", "qw.ban.web1.::ffff:1.2.3.4",
		"qw.event.web1.1-2-3-4", "qw.ban.web1.1-2-3"} {
		if _, _, err := ParseBanSubject(bad); err == nil {
			t.Errorf("ParseBanSubject(%q): no error", bad)
		}
	}
}

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{"web1.example.net": "web1", "web 1": "web_1", "": "quietwatch", "Ωmega": "__mega"} {
		if got := OriginFromHost(in); got != want || !ValidOrigin(got) {
			t.Errorf("OriginFromHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"300": 5 * time.Minute, "5m0s": 5 * time.Minute, "1.5s": 1500 * time.Millisecond} {
		if got, err := ParseTTL(in); err != nil || got != want {
			t.Errorf("ParseTTL(%q) = %s, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "never", "0", "-1", "-1s", "1e9", "9999999999999999999"} {
		if _, err := ParseTTL(bad); err == nil {
			t.Errorf("ParseTTL(%q): no error", bad)
		}
	}
}

func TestParseLocal(t *testing.T) {
	for line, want := range map[string]string{
		`{"src_ip":"198.51.100.241","rule":{"level":10}}`:                "198.51.100.241/32 10",
		`{"src_ip":"2001:0db8::0241","rule":{"level":9}}`:                "2001:db8::241/128 9",
		`{"src_ip":"::ffff:198.51.100.1","rule":{"level":9}}`:            "198.51.100.1/32 9",
		`{"src_ip":"198.51.100.241","rule":{"level":10},"fleet":{}}`:     "",
		`{"src_ip":"198.51.100.241","rule":{"level":10},"fleet":null}`:   "",
		`{"src_ip":"198.51.100.241","rule":{"level":10},"x":"fleet"}`:    "198.51.100.241/32 10",
		`{"src_ip":"198.51.100.0/24","rule":{"level":10}}`:               "",
		`{"src_ip":"fe80::1%eth0","rule":{"level":10}}`:                  "",
		`{"src_ip":"198.51.100.241","level":10}`:                         "",
		`{"src_ip":198,"rule":{"level":10}}`:                             "",
		`{"src_ip":"198.51.100.241","rule":{"level":10}`:                 "",
		`{"full_log":"\"level\"","src_ip":"198.51.100.241","rule":null}`: "",
	} {
		got := ""
		if l, ok := ParseLocal([]byte(line)); ok {
			got = l.Prefix.String() + " " + itoa(l.Level)
		}
		if got != want {
			t.Errorf("ParseLocal(%s) = %q, want %q", line, got, want)
		}
	}
}

func itoa(n int) string {
	return strings.TrimSpace(time.Duration(n).String()[:len(time.Duration(n).String())-2])
}

func TestAppendMarked(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	got, err := AppendMarked([]byte("prefix:"), []byte(` {"src_ip":"198.51.100.1", "a" : [1] } `), Mark{Origin: "web2", Received: now, Expires: now.Add(90 * time.Second)})
	want := `prefix: {"src_ip":"198.51.100.1", "a" : [1] ,"fleet":{"origin":"web2","received":"2026-12-02T00:00:00.000000+0000","expires":"2026-12-02T00:01:30.000000+0000","ttl_s":90}}`
	if err != nil || string(got) != want {
		t.Fatalf("AppendMarked = %s, %v\nwant %s", got, err, want)
	}
	if _, err := AppendMarked(nil, []byte(`[1]`), Mark{}); err == nil {
		t.Fatal("AppendMarked of an array: no error")
	}
}

func TestGuard(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	p := DefaultPolicy()
	p.MaxTTL = time.Hour
	p.Quorum = 2
	p.Rate, p.Burst = 1, 2
	g := NewGuard(p)
	a := netip.MustParsePrefix("198.51.100.7/32")
	if _, r := g.Admit("web1", a, now.Add(time.Minute), now); r != ReasonQuorum {
		t.Fatalf("one origin of a quorum of 2: %q", r)
	}
	if _, r := g.Admit("web1", a, now.Add(time.Minute), now); r != ReasonQuorum {
		t.Fatalf("the same origin again: %q", r)
	}
	// The third from web1 is over its burst of 2.
	if _, r := g.Admit("web1", a, now.Add(time.Minute), now); r != ReasonRate {
		t.Fatalf("over the burst: %q", r)
	}
	exp, r := g.Admit("web2", a, now.Add(48*time.Hour), now)
	if r != "" || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("second origin: %s %q, want the TTL clamped to an hour", exp, r)
	}
	// A second later web1 has a token again.
	if _, r := g.Admit("web1", a, now.Add(time.Minute), now.Add(time.Second)); r != "" {
		t.Fatalf("refilled: %q", r)
	}
	// web1's vote ends after its minute: web3 alone is not a quorum.
	b := netip.MustParsePrefix("198.51.100.8/32")
	g.Admit("web1", b, now.Add(time.Minute), now.Add(2*time.Second))
	if _, r := g.Admit("web3", b, now.Add(time.Hour), now.Add(2*time.Minute)); r != ReasonQuorum {
		t.Fatalf("stale vote counted: %q", r)
	}
	if _, r := g.Admit("web3", b, now.Add(time.Minute), now.Add(2*time.Minute)); r != ReasonExpired {
		t.Fatalf("an expired ban: %q", r)
	}
}

func TestGuardCap(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	p := DefaultPolicy()
	p.Rate, p.MaxBans = 0, 3
	g := NewGuard(p)
	for i := range 3 {
		if _, r := g.Admit("web1", netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 32), now.Add(time.Minute), now); r != "" {
			t.Fatal(r)
		}
	}
	over := netip.MustParsePrefix("198.51.100.9/32")
	if _, r := g.Admit("web1", over, now.Add(time.Minute), now); r != ReasonCap {
		t.Fatalf("over the cap: %q", r)
	}
	// Once the bans have ended there is room again.
	if _, r := g.Admit("web1", over, now.Add(2*time.Minute), now.Add(61*time.Second)); r != "" {
		t.Fatalf("after the bans ended: %q", r)
	}
	if g.Live() != 1 {
		t.Fatalf("live = %d, want 1", g.Live())
	}
}

func TestDecode(t *testing.T) {
	body := `{"src_ip":"2001:db8::1","rule":{"level":10},"id":"1"}`
	p, err := Decode("qw.ban.web2.2001:db8::1", "60", []byte(body))
	if err != nil || p.Origin != "web2" || p.TTL != time.Minute || p.Level != 10 || p.Prefix != netip.MustParsePrefix("2001:db8::1/128") {
		t.Fatalf("Decode = %+v, %v", p, err)
	}
	big := `{"src_ip":"2001:db8::1","rule":{"level":10},"pad":"` + strings.Repeat("x", MaxBody) + `"}`
	if _, err := Decode("qw.ban.web2.2001:db8::1", "60", []byte(big)); err == nil {
		t.Fatal("an over-long body: no error")
	}
	if _, err := Decode("qw.ban.web2.2001:db8::1", "60", []byte("{\"src_ip\":\"2001:db8::1\",\n\"rule\":{\"level\":10}}")); err == nil {
		t.Fatal("a body of two lines: no error")
	}
	if !record.Valid([]byte(body)) {
		t.Fatal("record.Valid")
	}
}
