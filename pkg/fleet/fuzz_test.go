package fleet

import (
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// FuzzDecode feeds the wire decoder what a hostile peer could send: it
// must never panic, and what it accepts must come out of AppendMarked as
// one valid JSON line whose address is the subject's.
func FuzzDecode(f *testing.F) {
	f.Add("qw.ban.web2.198-51-100-90", "300", `{"src_ip":"198.51.100.90","rule":{"level":10},"id":"1"}`)
	f.Add("qw.ban.web2.2001:db8::_64", "5m0s", `{"src_ip":"2001:db8::/64","rule":{"level":10}}`)
	f.Add("qw.ban.web2.198-51-100-90", "-1", `{"src_ip":"198.51.100.90","rule":{"level":10},"fleet":{}}`)
	f.Add("qw.ban.w.1-2-3-4_8", "1", ` {"src_ip" : "1.0.0.0/8" , "rule":{"level":"x"}} `)
	f.Add("qw.ban.w.::1", "1", `{"src_ip":"::1","rule":{},"a":"\u0000\ud800"}`)
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, subj, ttl, body string) {
		p, err := Decode(subj, ttl, []byte(body))
		if err != nil {
			return
		}
		if p.TTL <= 0 || !ValidOrigin(p.Origin) {
			t.Fatalf("accepted %+v", p)
		}
		if _, q, err := ParseBanSubject(BanSubject(p.Origin, p.Prefix)); err != nil || q != p.Prefix {
			t.Fatalf("subject round trip of %s: %s, %v", p.Prefix, q, err)
		}
		out, err := AppendMarked(nil, p.Body, Mark{Origin: p.Origin, Received: now, Expires: now.Add(p.TTL)})
		if err != nil {
			t.Fatalf("AppendMarked: %v", err)
		}
		if !record.Valid(out) {
			t.Fatalf("not JSON: %s", out)
		}
		if _, ok := ParseLocal(out); ok {
			t.Fatalf("a marked record would be published again: %s", out)
		}
		if _, err := Decode(subj, ttl, out); err == nil {
			t.Fatalf("a marked record decodes as a ban: %s", out)
		}
		NewGuard(DefaultPolicy()).Admit(p.Origin, p.Prefix, now.Add(p.TTL), now)
	})
}
