package eve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/fastlog"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// pair is one line of the shared corpus's eve-fast-pairs.jsonl: the same
// alert as Suricata wrote it to fast.log and to eve.json.
type pair struct {
	Repo string          `json:"repo"`
	Fast string          `json:"fast"`
	EVE  json.RawMessage `json:"eve"`
}

const pairsFile = "../../testdata/corpus/fastlog/eve-fast-pairs.jsonl"

func loadPairs(t testing.TB) []pair {
	f, err := os.Open(pairsFile)
	if err != nil {
		t.Skipf("corpus not here: %v", err)
	}
	defer f.Close()
	var ps []pair
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var p pair
		if err := record.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		t.Fatal("no pairs")
	}
	return ps
}

// TestPairs renders each eve.json alert of the corpus and compares it with
// the fast.log line Suricata wrote for the same alert; then parses that
// line with pkg/fastlog and compares the event fields both inputs give.
func TestPairs(t *testing.T) {
	for _, pr := range loadPairs(t) {
		t.Run(pr.Repo, func(t *testing.T) {
			p := Parser{Location: "eve.json"}
			out, r := p.Line(nil, pr.EVE)
			if r.Alerts != 1 || r.Msg != "" {
				t.Fatalf("result %+v", r)
			}
			var ev struct {
				record.Event
				Location string `json:"location"`
			}
			if err := record.Unmarshal(out, &ev); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			want := pr.Fast
			// EVE does not say that the rule was a drop rule Suricata
			// only alerted on (IDS mode): fast.log's [wDrop] cannot be
			// rendered.
			want = strings.Replace(want, "  [wDrop] ", "  ", 1)
			if ev.FullLog != want {
				t.Errorf("full_log\n got %s\nwant %s", ev.FullLog, want)
			}
			if ev.Location != "eve.json" {
				t.Errorf("location %q", ev.Location)
			}
			// What fastlog makes of the fast.log line (in the zone of the
			// EVE timestamp's offset) must agree with the EVE event.
			zone := zoneOf(t, ev.Timestamp)
			fp := fastlog.Parser{Zone: zone, Location: "fast.log"}
			var fe record.Event
			if err := fp.Parse([]byte(pr.Fast), &fe); err != nil {
				t.Fatal(err)
			}
			if fe.Timestamp != ev.Timestamp {
				t.Errorf("timestamp: fast %s, eve %s", fe.Timestamp, ev.Timestamp)
			}
			if fe.SrcIP != ev.SrcIP || fe.DestIP != ev.DestIP || fe.Proto != ev.Proto {
				t.Errorf("tuple: fast %s %s %s, eve %s %s %s", fe.SrcIP, fe.DestIP, fe.Proto, ev.SrcIP, ev.DestIP, ev.Proto)
			}
			if !eqInt(fe.SrcPort, ev.SrcPort) || !eqInt(fe.DestPort, ev.DestPort) || !eqInt(fe.ICMPType, ev.ICMPType) || !eqInt(fe.ICMPCode, ev.ICMPCode) {
				t.Errorf("ports differ: fast %s", fe.FullLog)
			}
			fa, ea := fe.Alert, ev.Alert
			if fa.GID != ea.GID || fa.SignatureID != ea.SignatureID || fa.Rev != ea.Rev || fa.Signature != ea.Signature || fa.Category != ea.Category || !eqInt(fa.Severity, ea.Severity) {
				t.Errorf("alert: fast %+v, eve %+v", *fa, *ea)
			}
			if fa.Action != ea.Action && fa.FastAction != "wDrop" {
				t.Errorf("action: fast %q, eve %q", fa.Action, ea.Action)
			}
		})
	}
}

func eqInt(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func zoneOf(t *testing.T, ts string) *time.Location {
	tm, err := time.Parse("2006-01-02T15:04:05.999999-0700", ts)
	if err != nil {
		t.Fatal(err)
	}
	_, off := tm.Zone()
	return time.FixedZone("", off)
}

// TestPassThrough: the record's bytes are kept (only the addresses are
// made canonical), full_log and location appended.
func TestPassThrough(t *testing.T) {
	in := `{"timestamp":"2025-07-18T09:41:56.409068-0530","flow_id":1,"event_type":"alert","src_ip":"2001:0db8:0000:0000:0000:0000:0000:0001","src_port":59989,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2200077,"rev":2,"signature":"Odd \"quoted\" \u00e9 \/ msg","category":"","severity":3},"x":[1,2.5e3,{"y":null}]}`
	want := `{"timestamp":"2025-07-18T09:41:56.409068-0530","flow_id":1,"event_type":"alert","src_ip":"2001:db8::1","src_port":59989,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2200077,"rev":2,"signature":"Odd \"quoted\" \u00e9 \/ msg","category":"","severity":3},"x":[1,2.5e3,{"y":null}],` +
		`"full_log":"07/18/2025-09:41:56.409068  [**] [1:2200077:2] Odd \"quoted\" é / msg [**] [Classification: (null)] [Priority: 3] {TCP} 2001:0db8:0000:0000:0000:0000:0000:0001:59989 -> 198.51.100.44:80","location":"eve.json"}` + "\n"
	p := Parser{Location: "eve.json"}
	out, r := p.Line(nil, []byte(in))
	if r.Alerts != 1 || r.Msg != "" {
		t.Fatalf("result %+v", r)
	}
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestHostile(t *testing.T) {
	alert := `{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"198.51.100.7","src_port":1,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":5,"rev":1,"signature":"s","category":"c","severity":1}}`
	flow := `{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"flow","src_ip":"198.51.100.7"}`
	big := `{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"198.51.100.7","dest_ip":"198.51.100.44","proto":"TCP","payload_printable":"` + strings.Repeat("A\\n", 3<<20) + `","alert":{"gid":1,"signature_id":5,"rev":1,"signature":"s","severity":1}}`
	for _, c := range []struct {
		name                string
		line                string
		alerts, other, lost int
		msg                 string
	}{
		{"alert", alert, 1, 0, 0, ""},
		{"flow", flow, 0, 1, 0, ""},
		{"several MB", big, 1, 0, 0, ""},
		{"cut at the end", alert[:100], 0, 0, 1, "invalid JSON at column 101: record ends early (string not closed): skipped"},
		{"cut, then glued", alert[:100] + alert, 1, 0, 1, "record at column 1 cut short after 100 bytes, the next one glued to it: skipped"},
		{"flow cut, alert glued", flow[:50] + alert, 1, 0, 1, "record at column 1 cut short after 50 bytes, the next one glued to it: skipped"},
		{"NULs then a record", "\x00\x00\x00\x00" + alert, 1, 0, 0, "4 NUL bytes before the record at column 5: skipped"},
		{"NULs only", "\x00\x00\x00", 0, 0, 0, "blank line (3 bytes of spaces, tabs or NULs): skipped"},
		{"NUL in a string", strings.Replace(alert, `"s"`, "\"\x00\"", 1), 0, 0, 1, fmt.Sprintf("invalid JSON at column %d: NUL byte in a string: skipped", strings.Index(alert, `"s"`)+2)},
		{"garbage", "hello", 0, 0, 1, "invalid JSON at column 1: not a JSON object: skipped"},
		{"array", "[1]", 0, 0, 1, "invalid JSON at column 1: not a JSON object: skipped"},
		{"trailing", alert + "x", 0, 0, 1, fmt.Sprintf("invalid JSON at column %d: text after the record: skipped", len(alert)+1)},
		{"deep", strings.Repeat("[", 100000), 0, 0, 1, "invalid JSON at column 1: not a JSON object: skipped"},
		{"deep object", `{"a":` + strings.Repeat("[", 100000), 0, 0, 1, "invalid JSON at column 518: nested too deep: skipped"},
		{"bad UTF-8", strings.Replace(alert, `"s"`, "\"\xff\"", 1), 1, 0, 0, fmt.Sprintf("invalid UTF-8 at column %d replaced by U+FFFD", strings.Index(alert, `"s"`)+2)},
		{"no sid", strings.Replace(alert, `"signature_id":5,`, "", 1), 0, 0, 1, "alert record without alert.signature_id: skipped"},
		{"bad time", strings.Replace(alert, `2020-05-14T`, "2020-05-14X", 1), 0, 0, 1, `timestamp "2020-05-14X22:10:17.391373+0000" is not an EVE time: skipped`},
		{"bad address", strings.Replace(alert, `"198.51.100.7"`, `"nonsense"`, 1), 1, 0, 0, `address "nonsense" is not an IP address: kept as written`},
		{"two records, no newline", alert + alert, 2, 0, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := Parser{Location: "eve.json"}
			out, r := p.Line(nil, []byte(c.line))
			if r.Alerts != c.alerts || r.Other != c.other || r.Lost != c.lost || r.Msg != c.msg {
				t.Errorf("got %d alerts, %d other, %d lost, %q\nwant %d, %d, %d, %q", r.Alerts, r.Other, r.Lost, r.Msg, c.alerts, c.other, c.lost, c.msg)
			}
			if n := bytes.Count(out, []byte("\n")); n != r.Alerts {
				t.Errorf("%d lines for %d alerts", n, r.Alerts)
			}
			for _, l := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
				if len(l) > 0 && (!record.Valid(l) || !utf8Valid(l)) {
					t.Errorf("invalid output %.200s", l)
				}
			}
		})
	}
}

func utf8Valid(b []byte) bool { return strings.ToValidUTF8(string(b), "\ufffd") == string(b) }

func TestTimestampOffsets(t *testing.T) {
	for ts, want := range map[string]string{
		"2020-05-14T22:10:17.391373+0000":  "05/14/2020-22:10:17.391373  ",
		"2020-05-14T22:10:17.391373-0530":  "05/14/2020-22:10:17.391373  ",
		"2020-05-14T22:10:17.391373+05:45": "05/14/2020-22:10:17.391373  ",
		"2020-05-14T22:10:17Z":             "05/14/2020-22:10:17.000000  ",
		"2020-05-14T22:10:17.5+0100":       "05/14/2020-22:10:17.500000  ",
	} {
		in := `{"timestamp":"` + ts + `","event_type":"alert","src_ip":"198.51.100.7","dest_ip":"198.51.100.44","proto":"UDP","alert":{"gid":1,"signature_id":5,"rev":1,"signature":"s","severity":2}}`
		p := Parser{}
		out, r := p.Line(nil, []byte(in))
		if r.Alerts != 1 {
			t.Errorf("%s: %+v", ts, r)
			continue
		}
		var ev record.Event
		record.Unmarshal(out, &ev)
		if !strings.HasPrefix(ev.FullLog, want) || ev.Timestamp != ts {
			t.Errorf("%s: %s / %s", ts, ev.Timestamp, ev.FullLog)
		}
	}
}

func TestRawPacket(t *testing.T) {
	in := `{"timestamp":"1999-12-03T10:00:00.000001+0000","event_type":"alert","pcap_cnt":7,"packet":"AAECAwQF","alert":{"action":"allowed","gid":1,"signature_id":2200003,"rev":2,"signature":"SURICATA IPv4 truncated packet","category":"Generic Protocol Command Decode","severity":3}}`
	p := Parser{}
	out, _ := p.Line(nil, []byte(in))
	var ev record.Event
	if err := record.Unmarshal(out, &ev); err != nil {
		t.Fatal(err)
	}
	want := "12/03/1999-10:00:00.000001  [**] [1:2200003:2] SURICATA IPv4 truncated packet [**] [Classification: Generic Protocol Command Decode] [Priority: 3] [**] [Raw pkt: 00 01 02 03 04 05 ] [pcap file packet: 7]"
	if ev.FullLog != want {
		t.Errorf("got  %s\nwant %s", ev.FullLog, want)
	}
	var fe record.Event
	fp := fastlog.Parser{Zone: time.UTC}
	if err := fp.Parse([]byte(ev.FullLog), &fe); err != nil || fe.Alert.SignatureID != 2200003 {
		t.Errorf("fastlog: %v %+v", err, fe)
	}
}

func TestOtherCounted(t *testing.T) {
	p := Parser{}
	for _, typ := range []string{"flow", "dns", "flow", "stats"} {
		p.Line(nil, []byte(`{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"`+typ+`"}`))
	}
	p.Line(nil, []byte(`{"timestamp":"2020-05-14T22:10:17.391373+0000"}`))
	if p.Other["flow"] != 2 || p.Other["dns"] != 1 || p.Other["stats"] != 1 || p.Other["(none)"] != 1 {
		t.Errorf("%v", p.Other)
	}
	for i := 0; i < 200; i++ {
		p.Line(nil, []byte(`{"event_type":"t`+strings.Repeat("x", i)+`"}`))
	}
	if len(p.Other) > maxTypes+1 {
		t.Errorf("%d types kept", len(p.Other))
	}
}

// TestAgain: fastparse's own events read again as eve are written
// unchanged (full_log and location are kept, not doubled).
func TestAgain(t *testing.T) {
	p := Parser{Location: "a"}
	in := `{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"198.51.100.7","dest_ip":"198.51.100.44","proto":"UDP","alert":{"gid":1,"signature_id":5,"rev":1,"signature":"s","severity":2}}`
	once, _ := p.Line(nil, []byte(in))
	p.Location = "b"
	twice, _ := p.Line(nil, bytes.TrimSuffix(once, []byte("\n")))
	if !bytes.Equal(once, twice) {
		t.Errorf("%s\n%s", once, twice)
	}
}
