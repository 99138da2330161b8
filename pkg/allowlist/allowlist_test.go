package allowlist

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.12":        "203.0.113.12/32",
		" 198.51.100.0/24 ":   "198.51.100.0/24",
		"198.51.100.7/24":     "198.51.100.0/24",
		"::ffff:203.0.113.12": "203.0.113.12/32",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"2001:db8::1":         "2001:db8::1/128",
		"2001:db8::1:2/64":    "2001:db8::/64",
		"fe80::1%eth0":        "",
		"203.0.113.300":       "",
		"2001:db8::/129":      "",
		"":                    "",
		"example.com":         "",
	} {
		p, err := Parse(in)
		if want == "" {
			if err == nil {
				t.Errorf("Parse(%q) = %v, want an error", in, p)
			}
			continue
		}
		if err != nil || p.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}

func TestReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "allow.list")
	data := "# admins\n203.0.113.12   # office\n\n2001:db8::/64\nnot-an-address\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, errs := ReadFile(path)
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	if !slices.Equal(got, []string{"203.0.113.12/32", "2001:db8::/64"}) {
		t.Errorf("prefixes %v", got)
	}
	if len(errs) != 1 || errs[0] != path+`:5: "not-an-address": not an address or CIDR` {
		t.Errorf("errors %q", errs)
	}
	if _, errs := ReadFile(filepath.Join(t.TempDir(), "missing")); len(errs) != 1 {
		t.Errorf("a missing file: %q", errs)
	}
}
