package record

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestAppendField(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1}`, `{"a":1,"k":true}`},
		{`{}`, `{"k":true}`},
		{` { } `, ` { "k":true}`},
		{`{"x":{"y":[1,2]},"odd key \u00e9":"v"}` + "\r\n", `{"x":{"y":[1,2]},"odd key \u00e9":"v","k":true}`},
	}
	for _, tt := range tests {
		got, err := AppendField([]byte(tt.in), "k", []byte("true"))
		if err != nil || string(got) != tt.want {
			t.Errorf("AppendField(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{`, `}`} {
		if _, err := AppendField([]byte(bad), "k", []byte("1")); !errors.Is(err, ErrNotObject) {
			t.Errorf("AppendField(%q) error = %v, want ErrNotObject", bad, err)
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"tab\tnl\ncr\r", `"tab\tnl\ncr\r"`},
		{"nul\x00del\x7f", "\"nul\\u0000del\x7f\""},
		{"<&>", `"<&>"`},
		{"caf\xc3\xa9", "\"caf\xc3\xa9\""},
		{"bad\xffbyte", "\"bad\ufffdbyte\""},
		{"cut\xe2\x82", "\"cut\ufffd\ufffd\""},
		{"ls\u2028", "\"ls\u2028\""},
	}
	for _, tt := range tests {
		if got := string(AppendString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if got := string(AppendString(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("AppendString([]byte %q) = %s, want %s", tt.in, got, tt.want)
		}
		if !Valid([]byte(AppendString(nil, tt.in))) {
			t.Errorf("AppendString(%q) is not valid JSON", tt.in)
		}
	}
}

func TestAppendStringAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	n := testing.AllocsPerRun(100, func() { buf = AppendString(buf[:0], "ET SCAN caf\xc3\xa9 \xff \"x\"") })
	if n != 0 {
		t.Errorf("AppendString allocates %v times", n)
	}
}

func TestReader(t *testing.T) {
	in := "one\r\ntwo\n" + strings.Repeat("x", 40) + "\n\nlast"
	r := NewReader(strings.NewReader(in), 16)
	var got []string
	var long []int
	for {
		line, err := r.ReadLine()
		if err == io.EOF {
			break
		}
		var tl *LineTooLongError
		if errors.As(err, &tl) {
			long = append(long, tl.Line)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(line))
	}
	want := []string{"one", "two", "", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines = %q, want %q", got, want)
	}
	if len(long) != 1 || long[0] != 3 {
		t.Errorf("too long lines = %v, want [3]", long)
	}
}

func TestAlertRoundTrip(t *testing.T) {
	in := `{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"192.0.2.241","src_port":35004,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":1},"full_log":"x","location":"stdin","rule":{"id":"300012","level":11,"description":"Many high-severity Suricata alerts","groups":["snort-fast"],"frequency":5,"timeframe":120,"firedtimes":1,"mail":true},"id":"1589494218.7","previous_output":["a","b"]}`
	var a Alert
	if err := Unmarshal([]byte(in), &a); err != nil {
		t.Fatal(err)
	}
	if a.Rule == nil || a.Rule.Level != 11 || a.Rule.Mail == nil || !*a.Rule.Mail || a.SrcIP != "192.0.2.241" || *a.SrcPort != 35004 {
		t.Fatalf("decoded %+v", a)
	}
	out, err := Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("round trip:\n got %s\nwant %s", out, in)
	}
}
