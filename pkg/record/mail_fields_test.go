package record

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mailHead is what ScanMailFields must agree with: the same fields
// decoded by the project's JSON decoder.
type mailHead struct {
	ID        string  `json:"id"`
	Timestamp *string `json:"timestamp"`
	Rule      *struct {
		Level int   `json:"level"`
		Mail  *bool `json:"mail"`
	} `json:"rule"`
}

func checkScan(t *testing.T, line string) {
	t.Helper()
	var f MailFields
	err := ScanMailFields([]byte(line), &f)
	var h mailHead
	// encoding/json is the strict judge of well-formedness (jsoniter's
	// Valid lets some trailing bytes pass).
	if !json.Valid([]byte(line)) || !strings.HasPrefix(strings.TrimLeft(line, " \t\r\n"), "{") {
		if err == nil {
			t.Fatalf("%q: accepted", line)
		}
		return
	}
	if Unmarshal([]byte(line), &h) != nil {
		return // a field of another type (the scanner refuses some too)
	}
	// The decoder matches keys case-insensitively ("Level" fills Level);
	// JSON and the scanner do not.
	for _, k := range []string{`"id"`, `"timestamp"`, `"rule"`, `"level"`, `"mail"`} {
		if strings.Count(strings.ToLower(line), k) != strings.Count(line, k) {
			return
		}
	}
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	want := MailFields{ID: h.ID, Mail: -1}
	if h.Timestamp != nil && !strings.Contains(line, `\`) { // escaped timestamps are not taken
		if string(f.Timestamp) != *h.Timestamp {
			t.Errorf("%q: timestamp %q, want %q", line, f.Timestamp, *h.Timestamp)
		}
	}
	f.Timestamp = nil
	if h.Rule != nil {
		want.HasRule, want.Level = true, h.Rule.Level
		if h.Rule.Mail != nil {
			want.Mail = 0
			if *h.Rule.Mail {
				want.Mail = 1
			}
		}
	}
	if f.ID != want.ID || f.HasRule != want.HasRule || f.Level != want.Level || f.Mail != want.Mail {
		t.Errorf("%q:\n got %+v\nwant %+v", line, f, want)
	}
}

func TestScanMailFields(t *testing.T) {
	for _, l := range []string{
		`{"id":"1.2","rule":{"id":"300011","level":10,"description":"x"}}`,
		`{"rule":{"level":3,"mail":true},"id":"a\"b\\"}`,
		`{"rule":{"level":12,"mail":false}}`,
		`{"rule":{"level":12,"mail":null,"groups":["a","b"]},"x":[1,{"id":"no"},[]],"id":"top"}`,
		`  {"a":"\\","b":"\"","id":"\u0041\n"}  `,
		`{"full_log":"{\"rule\":{\"level\":15}}","rule":{"level":1}}`,
		`{}`,
		`{"rule":null}`,
		`{"rule":"x","id":null}`,
		`{"n":-1.5e+3,"t":true,"f":false,"z":null,"rule":{"level":-1}}`,
		// escaped keys are the keys they stand for (the scanner once
		// left them out: this alert was not mailed)
		`{"\u0069d":"x","rule":{"\u006cevel":12,"m\u0061il":true}}`,
	} {
		checkScan(t, l)
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{`, `{"id":"x"`, `{"id":"x}`, `{"id":"x",}`, `{"rule":{"level":"9"}`, `{"rule":{"level":1.}}`, `{"a":[1,}`, `{"a":1}x`,
		// the whole line is checked, not only the fields notify reads
		`{"x":01,"rule":{"level":12}}`, `{"x":"\q","rule":{"level":12}}`, "{\"x\":\"\t\",\"rule\":{\"level\":12}}",
		`{"x":1.5.3,"rule":{"level":12}}`, `{"x":[1 2],"rule":{"level":12}}`} {
		var f MailFields
		if err := ScanMailFields([]byte(bad), &f); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestScanMailFieldsLevel: rule.level written as any integral JSON number
// (or such a number in a string) is that integer; any other value in a
// well-formed line is a LevelError naming it, never "malformed JSON".
func TestScanMailFieldsLevel(t *testing.T) {
	for in, want := range map[string]int{
		`10`: 10, `10.0`: 10, `1e1`: 10, `1E+1`: 10, `100e-1`: 10, `0.1e2`: 10, `"10"`: 10, `"1e1"`: 10,
		`-0`: 0, `0.0`: 0, `0e-5`: 0, `-3`: -3, `-3.00`: -3, `16`: 16, `999999999999999999`: 999999999999999999,
	} {
		var f MailFields
		line := `{"id":"a","rule":{"id":"1","level":` + in + `,"mail":null}}`
		if err := ScanMailFields([]byte(line), &f); err != nil || !f.HasRule || f.Level != want || f.ID != "a" {
			t.Errorf("level %s: %+v, %v; want %d", in, f, err, want)
		}
		if n, err := ParseLevel([]byte(in)); err != nil || n != want {
			t.Errorf("ParseLevel(%s) = %d, %v; want %d", in, n, err, want)
		}
	}
	for in, want := range map[string]string{
		`10.5`:                              "rule.level is not an integer: 10.5",
		`1e-1`:                              "rule.level is not an integer: 1e-1",
		`10.000000000000000001`:             "rule.level is not an integer: 10.000000000000000001",
		`"high"`:                            `rule.level is not an integer: "high"`,
		`"10.5"`:                            `rule.level is not an integer: "10.5"`,
		`" 10"`:                             `rule.level is not an integer: " 10"`,
		`"\u0031"`:                          `rule.level is not an integer: "\u0031"`,
		`null`:                              "rule.level is not an integer: null",
		`true`:                              "rule.level is not an integer: true",
		`[10]`:                              "rule.level is not an integer: [10]",
		`{"n":10}`:                          `rule.level is not an integer: {"n":10}`,
		`1e19`:                              "rule.level is out of range: 1e19",
		`1e999999999999999999`:              "rule.level is out of range: 1e999999999999999999",
		`12345678901234567890`:              "rule.level is out of range: 12345678901234567890",
		`"` + strings.Repeat("9", 50) + `"`: `rule.level is out of range: "` + strings.Repeat("9", 39) + "...",
	} {
		var f MailFields
		err := ScanMailFields([]byte(`{"rule":{"level":`+in+`},"id":"x"}`), &f)
		var le *LevelError
		if !errors.As(err, &le) || err.Error() != want {
			t.Errorf("level %s: error %v, want %q", in, err, want)
		}
	}
	// Malformed text stays malformed, whatever the level.
	for _, bad := range []string{`{"rule":{"level":10.5}`, `{"rule":{"level":10.5}}}`, `{"rule":{"level":"x}}`} {
		var f MailFields
		var le *LevelError
		if err := ScanMailFields([]byte(bad), &f); err == nil || errors.As(err, &le) {
			t.Errorf("%s: %v, want malformed JSON", bad, err)
		}
	}
}

// TestScanMailFieldsTestdata runs the scanner over every alert line in the
// repository's notify test data.
func TestScanMailFieldsTestdata(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/notify/*")
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "{") {
				checkScan(t, sc.Text())
			}
		}
		f.Close()
	}
}

func FuzzScanMailFields(f *testing.F) {
	f.Add(`{"id":"1.2","rule":{"id":"300011","level":10,"mail":true}}`)
	f.Add(`{"a":"\\\"","rule":{"level":12,"x":[{"y":null}]},"id":"\u00e9"}`)
	f.Fuzz(func(t *testing.T, line string) {
		checkScan(t, line)
	})
}

func BenchmarkScanMailFields(b *testing.B) {
	line := []byte(`{"timestamp":"2020-05-14T22:10:17.001101+0000","event_type":"alert","src_ip":"198.18.65.76","src_port":50894,"dest_ip":"198.51.100.44","dest_port":53,"proto":"UDP","alert":{"action":"allowed","gid":1,"signature_id":2029790,"rev":3,"signature":"ET SCAN ELF/Mirai Variant User-Agent (Inbound)","category":"Attempted Administrator Privilege Gain","severity":1},"full_log":"05/14/2020-22:10:17.001101  [**] [1:2029790:3] ET SCAN ELF/Mirai Variant User-Agent (Inbound) [**] [Classification: Attempted Administrator Privilege Gain] [Priority: 1] {UDP} 198.18.65.76:50894 -> 198.51.100.44:53","location":"stdin","rule":{"id":"300011","level":10,"description":"Suricata level 1 alert","groups":["snort-fast"],"firedtimes":1},"id":"1589494217.1"}`)
	b.SetBytes(int64(len(line)))
	var f MailFields
	for b.Loop() {
		if err := ScanMailFields(line, &f); err != nil {
			b.Fatal(err)
		}
	}
}
