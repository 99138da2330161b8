package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestScanEvent(t *testing.T) {
	line := []byte(` {"timestamp":"2020-05-14T22:10:17.391373+0000","src_ip":"192.0.2.241","dest_ip":"198.51.100.44",` +
		`"x":[1,-2.5e3,{"y":null},true,false,"\u00e9"],` +
		`"alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"extra":{"a":[]}},` +
		`"full_log":"05/14/2020-22:10:17.391373  [**] say \"hi\" \ud83d\ude00 \/ \t"} `)
	var f EventFields
	if err := ScanEvent(line, &f); err != nil {
		t.Fatal(err)
	}
	if string(f.Timestamp) != "2020-05-14T22:10:17.391373+0000" || string(f.SrcIP) != "192.0.2.241" || string(f.DestIP) != "198.51.100.44" {
		t.Errorf("fields %q %q %q", f.Timestamp, f.SrcIP, f.DestIP)
	}
	if want := "05/14/2020-22:10:17.391373  [**] say \"hi\" \U0001F600 / \t"; string(f.FullLog) != want {
		t.Errorf("full_log %q, want %q", f.FullLog, want)
	}
	if !f.HasAlert || !f.HasSig || f.GID != 1 || f.SID != 2024364 || f.Rev != 3 || f.Own != "" {
		t.Errorf("alert fields %+v", f)
	}
	if err := ScanEvent([]byte(`{"rule":{"id":"1"},"id":"2.3"}`), &f); err != nil || f.Own != "rule" || f.HasSig {
		t.Errorf("own: %v %+v", err, f)
	}
	// src_prefix is correlate's too, in the plain scanner and the general
	// one (a backslash in the line)
	for _, in := range []string{`{"src_ip":"2001:db8::1","src_prefix":"2001:db8::/48"}`, `{"x":"\\","src_prefix":"2001:db8::/48","rule":{}}`} {
		if err := ScanEvent([]byte(in), &f); err != nil || f.Own != "src_prefix" {
			t.Errorf("own in %s: %v %q", in, err, f.Own)
		}
	}
}

func TestScanEventErrors(t *testing.T) {
	var f EventFields
	for _, in := range []string{`[1]`, `"x"`, `12`, ``, `  `} {
		if err := ScanEvent([]byte(in), &f); !errors.Is(err, ErrNotObject) {
			t.Errorf("ScanEvent(%q) = %v, want ErrNotObject", in, err)
		}
	}
	for _, in := range []string{`{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":tru}`, `{"a":"x}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}", `{"a":1}x`, `{"a":[1,]}`, `{"a":1 "b":2}`, `{"alert":{"gid":1.}}`, `nope`} {
		if err := ScanEvent([]byte(in), &f); !errors.Is(err, ErrBadJSON) {
			t.Errorf("ScanEvent(%q) = %v, want ErrBadJSON", in, err)
		}
		if err := ScanEvent([]byte(in), &f); err == nil && Valid([]byte(in)) == false {
			t.Errorf("accepted invalid %q", in)
		}
	}
}

func FuzzScanEvent(f *testing.F) {
	f.Add([]byte(`{"timestamp":"x","alert":{"gid":1,"signature_id":2,"rev":3},"full_log":"a\"b"}`))
	f.Add([]byte(`{"a":[{"b":"\ud83d\ude00"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev EventFields
		err := ScanEvent(data, &ev)
		// encoding/json is the strict judge (jsoniter's Valid lets some
		// trailing bytes pass)
		object := json.Valid(data) && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{"))
		if (err == nil) != object {
			t.Fatalf("ScanEvent(%q) = %v, json.Valid %v", data, err, json.Valid(data))
		}
		if err == nil {
			if _, err := EncodeRule(&Rule{ID: "1"}).AppendAlert(nil, data, 0, 0, 0, nil, ""); err != nil {
				t.Fatalf("AppendAlert on a scanned object: %v", err)
			}
		}
	})
}

func TestScanStringEveryOffset(t *testing.T) {
	var f EventFields
	for i := 0; i < 24; i++ {
		pad := strings.Repeat("é", i/2) + strings.Repeat("a", i%2)
		for _, c := range []string{"\x01", "\x1f", "\n"} {
			if err := ScanEvent([]byte(`{"full_log":"`+pad+c+`xxxxxxxxxxxxxxxx"}`), &f); !errors.Is(err, ErrBadJSON) {
				t.Errorf("control %q after %q accepted", c, pad)
			}
		}
		line := `{"full_log":"` + pad + `\"` + pad + `","src_ip":"` + pad + `"}`
		if err := ScanEvent([]byte(line), &f); err != nil || string(f.FullLog) != pad+`"`+pad || string(f.SrcIP) != pad {
			t.Errorf("%s: %v %q %q", line, err, f.FullLog, f.SrcIP)
		}
	}
}

var benchLine = []byte(`{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"192.0.2.241","src_port":35004,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":1},"full_log":"05/14/2020-22:10:17.391373  [**] [1:2024364:3] ET SCAN Possible Nmap User-Agent Observed [**] [Classification: Web Application Attack] [Priority: 1] {TCP} 192.0.2.241:35004 -> 198.51.100.44:80","location":"/var/log/suricata/fast.log"}`)

func BenchmarkScanEvent(b *testing.B) {
	var f EventFields
	b.SetBytes(int64(len(benchLine)))
	for b.Loop() {
		if err := ScanEvent(benchLine, &f); err != nil {
			b.Fatal(err)
		}
	}
}

// A line without backslashes or control characters takes the fast path
// (strings end at the next quote); the fields must be the same as the
// general path's, here forced by a tab between two tokens.
func TestScanEventPlain(t *testing.T) {
	var a, b EventFields
	if err := ScanEvent(benchLine, &a); err != nil {
		t.Fatal(err)
	}
	tabbed := []byte(strings.Replace(string(benchLine), `,"src_ip"`, ",\t\"src_ip\"", 1))
	if err := ScanEvent(tabbed, &b); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2][]byte{{a.Timestamp, b.Timestamp}, {a.SrcIP, b.SrcIP}, {a.DestIP, b.DestIP}, {a.FullLog, b.FullLog}} {
		if string(p[0]) != string(p[1]) || len(p[0]) == 0 {
			t.Errorf("plain %q, general %q", p[0], p[1])
		}
	}
	if !a.HasSig || a.SID != 2024364 || a.SID != b.SID {
		t.Errorf("sig %+v", a)
	}
	for _, in := range []string{`{"a":"x`, `{"a":"x"`, `{"a":"x","b`, `{"a`} {
		if err := ScanEvent([]byte(in), &a); !errors.Is(err, ErrBadJSON) {
			t.Errorf("ScanEvent(%q) = %v, want ErrBadJSON", in, err)
		}
	}
}

// The plain scanner (lines without backslashes or control characters)
// must agree with the general one on every input: same error, same fields.
func FuzzScanEventPlain(f *testing.F) {
	f.Add(benchLine)
	f.Add([]byte(`{"alert":{"gid":1,"signature_id":2,"rev":3,"x":[1,{"a":[]},"s"]},"rule":1,"id":2,"hostname":null}`))
	f.Add([]byte(` { "src_ip" : "a" , "src_ip":"b","alert":[1],"timestamp":1e5 } `))
	f.Add([]byte(`{"a":-0.5E+3,"b":true,"c":false,"d":null,"e":[[[]]],"full_log":"0123456789abcdefghij"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a, b EventFields
		ea := scanEvent(data, &a, true)
		eb := scanEvent(data, &b, false)
		if ea != eb {
			t.Fatalf("%q: plain %v, general %v", data, ea, eb)
		}
		if ea != nil {
			return
		}
		for _, p := range [][2][]byte{{a.Timestamp, b.Timestamp}, {a.SrcIP, b.SrcIP}, {a.DestIP, b.DestIP}, {a.FullLog, b.FullLog}} {
			if string(p[0]) != string(p[1]) || (p[0] == nil) != (p[1] == nil) {
				t.Fatalf("%q: field %q vs %q", data, p[0], p[1])
			}
		}
		if a.HasAlert != b.HasAlert || a.GID != b.GID || a.SID != b.SID || a.Rev != b.Rev || a.HasSig != b.HasSig || a.Own != b.Own || a.HasHostname != b.HasHostname {
			t.Fatalf("%q: %+v vs %+v", data, a, b)
		}
	})
}

// TestScanDepth: the plain and the careful scanner refuse the same
// nesting, at each scan's own limit.
func TestScanDepth(t *testing.T) {
	nest := func(n int, open, close string) []byte {
		return []byte(`{"a":` + strings.Repeat(open, n) + "1" + strings.Repeat(close, n) + `}`)
	}
	for _, c := range []struct {
		name string
		max  int
		scan func(line []byte, fast bool) error
	}{
		{"event", eventMaxDepth, func(l []byte, fast bool) error { return scanEvent(l, &EventFields{}, fast) }},
		{"eve", eveMaxDepth, func(l []byte, fast bool) error { return scanEVE(l, &EVEFields{}, fast) }},
		{"mail", mailMaxDepth, func(l []byte, fast bool) error { return ScanMailFields(l, &MailFields{}) }},
	} {
		for _, oc := range [][2]string{{"[", "]"}, {`{"b":`, "}"}} {
			for _, fast := range []bool{true, false} {
				// the line's own object and max more levels inside it
				if err := c.scan(nest(c.max, oc[0], oc[1]), fast); err != nil {
					t.Errorf("%s %s fast %v: %d levels: %v", c.name, oc[0], fast, c.max+1, err)
				}
				if err := c.scan(nest(c.max+1, oc[0], oc[1]), fast); err == nil {
					t.Errorf("%s %s fast %v: %d levels accepted", c.name, oc[0], fast, c.max+2)
				}
			}
		}
	}
}
