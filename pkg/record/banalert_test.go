package record

import (
	"strings"
	"testing"
)

func TestDecodeBanAlert(t *testing.T) {
	for _, c := range []struct {
		in    string
		level int
		id    string
		err   string
	}{
		{in: `{"src_ip":"192.0.2.1","id":"a","rule":{"id":"300011","level":10}}`, level: 10, id: "300011"},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":"1","level":10.0}}`, level: 10, id: "1"},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":"1","level":1e1}}`, level: 10, id: "1"},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":"1","level":"10"}}`, level: 10, id: "1"},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":300011,"level":" 12 "}}`, level: 12, id: "300011"},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":"1","level":-1}}`, level: -1, id: "1"},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":"1","level":10.5}}`, err: "rule.level: want an integer, got 10.5"},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":"1","level":"ten"}}`, err: `rule.level: want an integer, got "ten"`},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":"1","level":1e10}}`, err: "rule.level: want an integer, got 1e10"},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":"1","level":true}}`, err: "rule.level: want an integer, got true"},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":"1","level":{}}}`, err: "rule.level: want an integer, got {}"},
		{in: `{"src_ip":7,"rule":{"id":"1","level":10}}`, err: "src_ip: want a string, got 7"},
		{in: `{"src_ip":"192.0.2.1","rule":"x"}`, err: `rule: want an object, got "x"`},
		{in: `{"src_ip":"192.0.2.1","rule":{"id":[],"level":10}}`, err: "rule.id: want a string or a number, got []"},
	} {
		a, err := DecodeBanAlert([]byte(c.in))
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: error %v, want %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || a.Rule == nil || a.Rule.Level != c.level || a.Rule.ID != c.id || a.SrcIP != "192.0.2.1" {
			t.Errorf("%s: %+v %v", c.in, a, err)
		}
	}
}

func TestDecodeBanAlertSrcPrefix(t *testing.T) {
	for in, want := range map[string]string{
		`{"src_ip":"2001:db8::1","src_prefix":"2001:db8::/64","rule":{"id":"1","level":10}}`: "2001:db8::/64",
		`{"src_ip":"2001:db8::1","src_prefix":64,"rule":{"id":"1","level":10}}`:              "",
		`{"src_ip":"2001:db8::1","rule":{"id":"1","level":10}}`:                              "",
	} {
		a, err := DecodeBanAlert([]byte(in))
		if err != nil || a.SrcPrefix != want {
			t.Errorf("%s: %+v %v, want src_prefix %q", in, a, err, want)
		}
	}
}

// No message names a Go type or a library function.
func FuzzDecodeBanAlert(f *testing.F) {
	for _, s := range []string{`{"src_ip":"192.0.2.1","rule":{"id":"1","level":10}}`, `{"rule":{"level":1e1}}`, `{"rule":{"level":"9"}}`, `{"id":[1]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := DecodeBanAlert([]byte(s))
		if err != nil && (strings.Contains(err.Error(), "record.") || strings.Contains(err.Error(), "Read") || strings.Contains(err.Error(), "assert")) {
			t.Fatalf("%q: %v", s, err)
		}
	})
}
