package fleet

import (
	"strings"
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

// FuzzParseLocal checks the one-pass scanner against a full decode on
// every well-formed record (share publishes only those).
func FuzzParseLocal(f *testing.F) {
	f.Add(string(benchLine))
	f.Add(`{"src_ip":"198.51.100.1","rule":{"level":10},"fleet":null}`)
	f.Add(`{"src_ip":"198.51.100.1","rule":{"level":-1,"x":[{"level":3}]},"src_ip":"2001:db8::1"}`)
	f.Add(`{"a":"\\\"","src_ip":"198.51.100.1","rule":{"level":1.5}}`)
	f.Fuzz(func(t *testing.T, line string) {
		got, gok := ParseLocal([]byte(line))
		if !record.Valid([]byte(line)) || strings.Contains(line, `\u`) {
			return
		}
		want, wok := parseLocalDecoded([]byte(line))
		if gok != wok || got != want {
			t.Fatalf("ParseLocal(%s) = %v %v, decoded: %v %v", line, got, gok, want, wok)
		}
	})
}
