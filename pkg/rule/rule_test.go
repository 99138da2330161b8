package rule

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	const line = "[**] [1:2024364:3] ET SCAN Possible Nmap User-Agent Observed [**] [Classification: Web Application Attack] [Priority: 1] {TCP} 192.0.2.241:35004 -> 198.51.100.44:80"
	tests := []struct {
		pat, text string
		want      bool
	}{
		{"[Priority: 1]", line, true},
		{"[priority: 1]", line, true},
		{"[Priority: 1]", strings.Replace(line, "[Priority: 1]", "[Priority: 10]", 1), false},
		{"[Priority: 2]", line, false},
		{"^[**]", line, true},
		{"^ET SCAN", line, false},
		{"198.51.100.44:80$", line, true},
		{"198.51.100.44$", line, false},
		{"nothing|nmap user-agent", line, true},
		{"^exact$", "EXACT", true},
		{"^exact$", "EXACTLY", false},
		{"a.c", "abc", false}, // '.' is literal
		{"a.c", "A.C", true},
		{"[PRIORITY: 1]|x", "a [priority: 1", false},
		{"[p", "[[P", true},
		{"^[p$", "[P", true},
		{"1]$|^zz", "[Priority: 1]", true},
	}
	for _, tt := range tests {
		m, err := CompileMatch(tt.pat)
		if err != nil {
			t.Fatalf("CompileMatch(%q): %v", tt.pat, err)
		}
		if got := m.MatchLower(LowerASCII(nil, []byte(tt.text))); got != tt.want {
			t.Errorf("match %q on %q = %v, want %v", tt.pat, tt.text, got, tt.want)
		}
		if m.CanFold() {
			if got := m.MatchFold([]byte(tt.text)); got != tt.want {
				t.Errorf("MatchFold %q on %q = %v, want %v", tt.pat, tt.text, got, tt.want)
			}
		}
		ev := &Event{}
		ev.SetText([]byte(tt.text))
		if got := m.test(ev); got != tt.want {
			t.Errorf("test %q on %q = %v, want %v", tt.pat, tt.text, got, tt.want)
		}
	}
	if _, err := CompileMatch("a||b"); err == nil {
		t.Error("empty alternative accepted")
	}
}

func TestLowerASCII(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	for off := 0; off < 9; off++ {
		in := append(bytes.Repeat([]byte{'Q'}, off), all...)
		got := LowerASCII([]byte("x"), in)
		for i, c := range in {
			want := c
			if 'A' <= c && c <= 'Z' {
				want = c + 32
			}
			if got[i+1] != want {
				t.Fatalf("offset %d: byte %#x lowered to %#x", off, c, got[i+1])
			}
		}
	}
}

func TestRegex(t *testing.T) {
	tests := []struct {
		pat, text string
		want      bool
	}{
		{`^[**] [\d+:\d+:\d+]`, "[**] [1:2024364:3] ET", true},
		{`^[**] [\d+:\d+:\d+]`, "[**] [1:x:3] ET", false},
		{`\w+@\w+`, "mail user-1@host_2", true},
		{`a\sb`, "a b", true},
		{`a\sb`, "a\tb", false},
		{`\p`, "abc", false},
		{`\p`, "ab{c", true},
		{`a.c`, "abc", false}, // '.' is literal
		{`a\.c`, "abc", true}, // \. is any character
		{`Priority: 1]`, "[PRIORITY: 1]", true},
		{`^(foo|bar)\d*$`, "bar", true},
		{`^(foo|bar)\d*$`, "baz1", false},
		{`x+`, "x+", true}, // '+' after a literal is literal
		{`x+`, "xx", false},
		{`\$\(`, "$(", true},
		// Only the first MaxRegexText bytes are seen.
		{`needle`, strings.Repeat("a", MaxRegexText-6) + "needle", true},
		{`needle`, strings.Repeat("a", MaxRegexText-5) + "needle", false},
		{`a$`, strings.Repeat("a", MaxRegexText+100) + "b", true},
	}
	for _, tt := range tests {
		r, err := CompileRegex(tt.pat)
		if err != nil {
			t.Fatalf("CompileRegex(%q): %v", tt.pat, err)
		}
		if got := r.Match([]byte(tt.text)); got != tt.want {
			t.Errorf("regex %q on %q = %v, want %v", tt.pat, tt.text, got, tt.want)
		}
	}
	for _, bad := range []string{`\q`, `(a`, `a)`, `a\`, strings.Repeat("a", MaxRegexLen+1)} {
		if _, err := CompileRegex(bad); err == nil {
			t.Errorf("CompileRegex(%q) accepted", bad)
		}
	}
}

func load(t *testing.T, srcs ...Source) *Set {
	t.Helper()
	s, errs := Load(srcs)
	for _, e := range errs {
		t.Error(e)
	}
	if s == nil {
		t.FailNow()
	}
	return s
}

func ids(rs []*Rule) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHowtoRules(t *testing.T) {
	data, err := os.ReadFile("../../testdata/rules/local_rules.xml")
	if err != nil {
		t.Fatal(err)
	}
	s := load(t, Builtin(), Source{"local_rules.xml", data})
	if got, want := ids(s.Root), []int{300011, 20100, 300001, 20101}; !equalInts(got, want) {
		t.Errorf("root order = %v, want %v", got, want)
	}
	if got, want := ids(s.ByID(300011).Children), []int{3000015, 300014, 300013, 300012}; !equalInts(got, want) {
		t.Errorf("300011 children = %v, want %v", got, want)
	}
	r := s.ByID(3000015)
	if r == nil || r.Level != 14 || r.Frequency != 50 || r.Timeframe != 120 || r.Ignore != 90 || !r.SameSourceIP {
		t.Fatalf("3000015 = %+v", r)
	}
	if len(r.Groups) != 1 || r.Groups[0] != "snort-fast" || len(r.Base) != 1 || r.Base[0].ID != 300011 {
		t.Errorf("3000015 groups %v base %v", r.Groups, ids(r.Base))
	}
	if g := s.ByID(20100).Groups; strings.Join(g, ",") != "ids,fts" {
		t.Errorf("20100 groups = %v", g)
	}
}

func errText(errs []*Error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"three", `<group name="x">
  <rule id="1" level="10" severity="high">
    <match>a</match>
  </rule>
  <rule id="2" level="eleven">
    <if_sid>1</if_sid>
  </rule>
  <rule id="3" level="9">
    <if_sid>99</if_sid>
  </rule>
</group>
`, `f.xml:2:27: unknown attribute "severity" on <rule>
f.xml:5:16: bad level "eleven": want a number from 0 to 15
f.xml:9:5: if_sid 99 names no rule
`},
		{"dup-freq-elem", `<group name="x">
  <rule id="1" level="3"><match>a</match></rule>
  <rule id="1" level="4"><match>b</match></rule>
  <rule id="2" level="5" frequency="4"><match>c</match></rule>
  <rule id="3" level="5"><bogus>x</bogus><options>page_me</options></rule>
</group>
<rules/>
`, `f.xml:3:9: duplicate rule id 1 (first defined at f.xml:2:3)
f.xml:4:26: frequency without if_matched_sid or if_matched_group
f.xml:5:26: unknown element <bogus> in <rule>
f.xml:5:42: unknown option "page_me" (want alert_by_email, no_email_alert or no_log)
f.xml:7:1: unknown element <rules> (want <group> or <var>)
`},
		{"syntax", "<group name=\"x\">\n  <rule id=\"1\" level=\"3\">\n</group>\n", `f.xml:3:9: XML: element <rule> closed by </group>
`},
		{"cycle", `<group name="x">
  <rule id="1" level="3"><if_sid>2</if_sid></rule>
  <rule id="2" level="3"><if_sid>1</if_sid></rule>
</group>`, `f.xml:2:3: rule 1 is its own ancestor (a cycle through if_sid, if_group or if_level)
`},
		{"self", `<group name="x">
  <rule id="1" level="3"><if_sid>1</if_sid></rule>
</group>`, `f.xml:2:26: rule 1 names itself in if_sid (a cycle: it could only match after itself)
`},
		{"expansion", `<var name="B">` + strings.Repeat("b", 20000) + `</var>
<group name="x">
  <rule id="1" level="3"><match>$B$B$B$B</match></rule>
</group>`, `f.xml:3:26: expanding $B makes a text longer than 65536 bytes (each <var> is pasted whole)
`},
		{"values", `<group name="x">
  <rule id="0" level="3"/>
  <rule id="5" level="16" timeframe="9"/>
  <rule id="6" level="1"><srcip>10.0.0.300</srcip><regex>(a</regex><category>mail</category></rule>
  <rule id="7" level="1"><if_matched_sid>6</if_matched_sid></rule>
</group>`, `f.xml:2:9: bad id "0": want a number from 1 to 2147483647
f.xml:3:16: bad level "16": want a number from 0 to 15
f.xml:3:27: timeframe without frequency
f.xml:4:26: bad address or network "10.0.0.300"
f.xml:4:51: regex "(a": unbalanced '('
f.xml:4:68: unknown category "mail" (want ids, syslog, firewall, web-log, squid, windows or ossec)
f.xml:5:3: if_matched_sid/if_matched_group without frequency
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, errs := Load([]Source{{"f.xml", []byte(tt.in)}})
			if s != nil {
				t.Error("Load returned a set despite errors")
			}
			if got := errText(errs); got != tt.want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestBrokenRulesFile(t *testing.T) {
	data, err := os.ReadFile("../../testdata/rules/broken/three-mistakes.xml")
	if err != nil {
		t.Fatal(err)
	}
	_, errs := Load([]Source{{"three-mistakes.xml", data}})
	if len(errs) != 3 {
		t.Errorf("got %d errors, want 3:\n%s", len(errs), errText(errs))
	}
}

func TestVarsOverwriteAndIP(t *testing.T) {
	s := load(t, Source{"v.xml", []byte(`<var name="ADMIN">203.0.113.12</var>
<var name="LVL">9</var>
<group name="a,b,">
  <rule id="10" level="$LVL">
    <srcip>!$ADMIN</srcip>
    <match>scan</match>
    <description>first</description>
  </rule>
  <rule id="11" level="3"><if_group>b</if_group><dstip>198.51.100.0/24</dstip></rule>
  <rule id="10" level="4" overwrite="yes">
    <srcip>!$ADMIN</srcip>
    <match>scan</match>
    <description>second</description>
  </rule>
</group>`)})
	r := s.ByID(10)
	if r.Level != 4 || r.Description != "second" || r.Index != 0 {
		t.Fatalf("overwrite: %+v", r)
	}
	ev := &Event{Text: []byte("SCAN"), SrcIP: netip.MustParseAddr("203.0.113.12")}
	if r.Test(ev) == OK {
		t.Error("negated srcip matched the admin")
	}
	ev.SrcIP = netip.MustParseAddr("192.0.2.241")
	if f := r.Test(ev); f != OK {
		t.Errorf("srcip rule failed: %s", r.Why(f))
	}
	c := s.ByID(11)
	ev.DestIP = netip.MustParseAddr("198.51.100.44")
	if f := c.Test(ev); f != OK {
		t.Errorf("dstip rule failed: %s", c.Why(f))
	}
	if got := ids(s.ByID(10).Children); !equalInts(got, []int{11}) {
		t.Errorf("if_group children = %v", got)
	}
}

func TestIfLevelPair(t *testing.T) {
	s := load(t, Source{"l.xml", []byte(`<group name="g">
  <rule id="1" level="9"><match>x</match></rule>
  <rule id="2" level="8"><if_level>6</if_level></rule>
  <rule id="3" level="9"><if_level>6</if_level></rule>
</group>`)})
	if got := ids(s.ByID(1).Children); !equalInts(got, []int{3, 2}) {
		t.Errorf("children of 1 = %v, want [3 2]", got)
	}
}

func FuzzLoad(f *testing.F) {
	if data, err := os.ReadFile("../../testdata/rules/local_rules.xml"); err == nil {
		f.Add(data)
	}
	f.Add(builtinXML)
	f.Add([]byte(`<group name="x"><rule id="1" level="2"><regex>^\d+</regex></rule></group>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, errs := Load([]Source{{"f.xml", data}})
		if (s == nil) == (len(errs) == 0) {
			t.Fatalf("set %v with %d errors", s != nil, len(errs))
		}
	})
}

func FuzzRegex(f *testing.F) {
	f.Add(`^[**] [\d+:\d+:\d+]`, "[**] [1:2:3]")
	f.Add(`\w+\s\p*(a|b)$`, "x ;a")
	f.Fuzz(func(t *testing.T, pat, text string) {
		if r, err := CompileRegex(pat); err == nil {
			r.Match([]byte(text))
		}
		if m, err := CompileMatch(pat); err == nil {
			want := m.MatchLower(LowerASCII(nil, []byte(text)))
			if m.CanFold() && m.MatchFold([]byte(text)) != want {
				t.Fatalf("MatchFold and MatchLower differ for %q on %q", pat, text)
			}
		}
	})
}
