package fastlog

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // --tz tests must not depend on the host's zoneinfo

	"github.com/quietwatch/quietwatch/pkg/record"
)

// corpusDir is the corpus of real fast.log lines (a copy of the team's
// shared corpus, kept in the repository so a clone alone runs the tests).
var corpusDir = filepath.Join("..", "..", "testdata", "corpus", "fastlog")

func readCorpus(t testing.TB, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatalf("shared corpus: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func parse(t *testing.T, p *Parser, line string) (*record.Event, error) {
	t.Helper()
	var ev record.Event
	err := p.Parse([]byte(line), &ev)
	return clone(&ev), err
}

// clone returns a deep copy of an event filled by Parse, safe to keep.
func clone(ev *record.Event) *record.Event {
	c := *ev
	c.Timestamp = strings.Clone(ev.Timestamp)
	c.SrcIP = strings.Clone(ev.SrcIP)
	c.DestIP = strings.Clone(ev.DestIP)
	c.Proto = strings.Clone(ev.Proto)
	c.FullLog = strings.Clone(ev.FullLog)
	c.Location = strings.Clone(ev.Location)
	for _, p := range []**int{&c.SrcPort, &c.DestPort, &c.ICMPType, &c.ICMPCode} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	if ev.Alert != nil {
		al := *ev.Alert
		al.Action = strings.Clone(al.Action)
		al.FastAction = strings.Clone(al.FastAction)
		al.Signature = strings.Clone(al.Signature)
		al.Category = strings.Clone(al.Category)
		if al.Severity != nil {
			v := *al.Severity
			al.Severity = &v
		}
		c.Alert = &al
	}
	return &c
}

func jsonOf(ev *record.Event) string { return string(ev.AppendJSON(nil)) }

// TestCorpus: every real line of the shared corpus parses into an event
// with an address tuple (or none, for decoder events and ARP), and its JSON
// is what record.Marshal writes.
func TestCorpus(t *testing.T) {
	lines := readCorpus(t, "real-lines.txt")
	if len(lines) != 800 {
		t.Fatalf("corpus has %d lines, want 800", len(lines))
	}
	p := &Parser{Zone: time.UTC, Year: 2024, Location: "real-lines.txt"}
	for i, line := range lines {
		var ev record.Event
		if err := p.Parse([]byte(line), &ev); err != nil {
			t.Errorf("line %d: %v\n%s", i+1, err, line)
			continue
		}
		if ev.FullLog != line {
			t.Errorf("line %d: full_log %q", i+1, ev.FullLog)
		}
		if ev.Alert == nil || ev.Alert.SignatureID == 0 || ev.Proto == "" && !strings.Contains(line, "[Raw pkt:") {
			t.Errorf("line %d: incomplete event %s", i+1, jsonOf(&ev))
		}
		if ev.SrcIP == "" && !strings.Contains(line, "[Raw pkt:") && !strings.Contains(line, "{ARP}") {
			t.Errorf("line %d: no source address: %s", i+1, jsonOf(&ev))
		}
		want, err := record.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("line %d: AppendJSON\n%s\nMarshal\n%s", i+1, got, want)
		}
		if len(p.Starts([]byte(line))) != 1 {
			t.Errorf("line %d: seen as glued records: %v", i+1, p.Starts([]byte(line)))
		}
	}
}

// TestEdgeCorpus: the real CRLF lines parse, the real torn line is found
// and the record glued after it is recovered.
func TestEdgeCorpus(t *testing.T) {
	p := &Parser{Zone: time.UTC, Year: 2024}
	var events, blanks int
	var torn []string
	for _, line := range readCorpus(t, "real-lines-edge.txt") {
		if strings.HasPrefix(line, "# ") {
			continue
		}
		line = strings.TrimSuffix(line, "\r")
		starts := p.Starts([]byte(line))
		for k, s := range starts {
			end := len(line)
			if k+1 < len(starts) {
				end = starts[k+1]
				torn = append(torn, line[s:end])
				continue
			}
			var ev record.Event
			err := p.Parse([]byte(line[s:end]), &ev)
			switch {
			case errors.Is(err, ErrBlank):
				blanks++
			case err != nil:
				t.Errorf("%v: %q", err, line[s:end])
			default:
				events++
				if k > 0 && (ev.Timestamp != "2024-11-13T18:01:55.044396+0000" || ev.SrcIP != "0.0.0.0" || *ev.DestPort != 67) {
					t.Errorf("glued record: %s", jsonOf(&ev))
				}
			}
		}
	}
	if events != 7 || blanks != 1 || len(torn) != 1 || torn[0] != "11/13-18:00:37.962" {
		t.Errorf("events %d, blanks %d, torn %q; want 7, 1, [11/13-18:00:37.962]", events, blanks, torn)
	}
}

// TestEVEPairs: for real lines whose EVE record was logged by the same
// Suricata, the event agrees with EVE on every field both have.
func TestEVEPairs(t *testing.T) {
	var pairs []struct {
		Fast string       `json:"fast"`
		EVE  record.Event `json:"eve"`
	}
	for _, l := range readCorpus(t, "eve-fast-pairs.jsonl") {
		var pr struct {
			Fast string       `json:"fast"`
			EVE  record.Event `json:"eve"`
		}
		if err := record.Unmarshal([]byte(l), &pr); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, pr)
	}
	if len(pairs) < 4 {
		t.Fatalf("%d pairs", len(pairs))
	}
	for _, pr := range pairs {
		want := pr.EVE
		// EVE's timestamps carry the sensor's zone: parse with that offset.
		off := want.Timestamp[len(want.Timestamp)-5:]
		h, _ := strconv.Atoi(off[1:3])
		m, _ := strconv.Atoi(off[3:])
		secs := (h*60 + m) * 60
		if off[0] == '-' {
			secs = -secs
		}
		for _, ip := range []*string{&want.SrcIP, &want.DestIP} {
			*ip = netip.MustParseAddr(*ip).String()
		}
		p := &Parser{Zone: time.FixedZone("sensor", secs)}
		got, err := parse(t, p, pr.Fast)
		if err != nil {
			t.Errorf("%v: %s", err, pr.Fast)
			continue
		}
		// EVE writes an empty category for "(null)"; the event omits it.
		got.FullLog, got.Location = "", ""
		got.Alert.FastAction = ""
		if a, b := jsonOf(got), jsonOf(&want); a != b {
			t.Errorf("%s\n got %s\nwant %s", pr.Fast, a, b)
		}
	}
}

func TestParse(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, line, want string
		zone             *time.Location
	}{
		// Odd fields lose themselves, never the alert.
		{
			name: "odd priority",
			line: "02/20/2020-18:00:37.962000  [**] [1:2:3] m [**] [Priority: x] {TCP} 1.2.3.4:1 -> 1.2.3.5:2",
			want: `"alert":{"action":"allowed","gid":1,"signature_id":2,"rev":3,"signature":"m"},`,
		},
		{
			name: "old suricata icmp",
			line: "02/20/2020-18:00:37.962000  [**] [1:2:3] m [**] [Priority: 1] {ICMP} 1.2.3.4:300 -> 1.2.3.5:2",
			want: `"proto":"ICMP","icmp_type":44,"icmp_code":1,`,
		},
		{
			name: "port out of range",
			line: "02/20/2020-18:00:37.962000  [**] [1:2:3] m [**] [Priority: 1] {TCP} 1.2.3.4:99999 -> 1.2.3.5:2",
			want: `"src_ip":"1.2.3.4","dest_ip":"1.2.3.5","proto":"TCP","alert"`,
		},
		{
			name: "a port on one side only",
			line: "02/20/2020-18:00:37.962000  [**] [1:2:3] m [**] [Priority: 1] {TCP} 1.2.3.4:1 -> 1.2.3.5",
			want: `"src_ip":"1.2.3.4","dest_ip":"1.2.3.5","proto":"TCP","alert"`,
		},
		{
			name: "no such protocol number",
			line: "02/20/2020-18:00:37.962000  [**] [1:2:3] m [**] [Priority: 1] {PROTO:999} 1.2.3.4 -> 1.2.3.5",
			want: `"proto":"PROTO:999",`,
		},
		{
			name: "snort3 extras after the priority",
			line: `11/14-17:31:36.069820 [**] [1:48402:1] "m" [**] [Classification: c [x]] [Priority: 0] [AppID: HTTP] [Foo: bar] {TCP} 10.11.14.101:49210 -> 50.78.167.65:7080`,
			want: `"signature":"m","category":"c [x]","severity":0}`,
		},
		{
			name: "suricata tcp",
			line: "05/14/2020-22:10:17.391373  [**] [1:2024364:3] ET SCAN Possible Nmap User-Agent Observed [**] [Classification: Web Application Attack] [Priority: 1] {TCP} 192.0.2.241:35004 -> 198.51.100.44:80",
			want: `"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"192.0.2.241","src_port":35004,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":1}`,
		},
		{
			name: "new york summer and winter",
			line: "07/01/2020-12:00:00.000001  [**] [1:1:1] m [**] [Priority: 2] {UDP} 192.0.2.1:1 -> 192.0.2.2:2",
			zone: ny,
			want: `"timestamp":"2020-07-01T12:00:00.000001-0400"`,
		},
		{
			name: "new york winter",
			line: "01/01/2021-00:00:00.000000  [**] [1:1:1] m [**] [Priority: 2] {UDP} 192.0.2.1:1 -> 192.0.2.2:2",
			zone: ny,
			want: `"timestamp":"2021-01-01T00:00:00.000000-0500"`,
		},
		{
			name: "drop",
			line: "01/02/2025-21:46:49.014349  [Drop] [**] [1:1000002:0] Block [**] [Classification: (null)] [Priority: 2] {UDP} 127.0.0.1:51091 -> 127.0.0.1:53",
			want: `"alert":{"action":"blocked","fast_action":"Drop","gid":1,"signature_id":1000002,"rev":0,"signature":"Block","severity":2}`,
		},
		{
			name: "wdrop is only a would-drop",
			line: "04/18/2026-17:04:43.369488  [wDrop] [**] [1:3000011:1] [DP-QUAN] TeamViewer [**] [Classification: (null)] [Priority: 3] {TCP} 192.0.2.1:53745 -> 192.0.2.2:5938",
			want: `"alert":{"action":"allowed","fast_action":"wDrop","gid":1,"signature_id":3000011,"rev":1,"signature":"[DP-QUAN] TeamViewer","severity":3}`,
		},
		{
			name: "null message",
			line: "08/02/2014-10:50:25.823699  [**] [1:6:1] (null) [**] [Classification: (null)] [Priority: 3] {TCP} 0000:0000:0000:0000:0000:0000:0000:0001:3000 -> 0000:0000:0000:0000:0000:0000:0000:0001:56508",
			want: `"src_ip":"::1","src_port":3000,"dest_ip":"::1","dest_port":56508,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":6,"rev":1,"signature":"","severity":3}`,
		},
		{
			name: "fake tail in the message",
			line: "05/14/2020-22:10:17.391373  [**] [1:9:1] evil [**] [Classification: x] [Priority: 1] {TCP} 10.0.0.1:1 -> 10.0.0.2:2 [**] [Classification: Misc] [Priority: 3] {UDP} 192.0.2.7:53 -> 198.51.100.44:1053",
			want: `"src_ip":"192.0.2.7","src_port":53,"dest_ip":"198.51.100.44","dest_port":1053,"proto":"UDP","alert":{"action":"allowed","gid":1,"signature_id":9,"rev":1,"signature":"evil [**] [Classification: x] [Priority: 1] {TCP} 10.0.0.1:1 -> 10.0.0.2:2","category":"Misc","severity":3}`,
		},
		{
			name: "proto number with a name",
			line: "05/14/2020-22:10:17.391373  [**] [1:2:3] m [**] [Classification: c] [Priority: 1] {PROTO:006} 192.0.2.1:80 -> 192.0.2.2:8080",
			want: `"src_ip":"192.0.2.1","src_port":80,"dest_ip":"192.0.2.2","dest_port":8080,"proto":"TCP"`,
		},
		{
			name: "proto number without a name",
			line: "12/09-18:12:02.086733  [**] [122:6:0] (portscan) TCP Filtered Decoy Portscan [**] [Priority: 3] {PROTO:255} 125.135.214.166 -> 70.61.243.50",
			want: `"timestamp":"2024-12-09T18:12:02.086733+0000","event_type":"alert","src_ip":"125.135.214.166","dest_ip":"70.61.243.50","proto":"255","alert":{"action":"allowed","gid":122,"signature_id":6,"rev":0,"signature":"(portscan) TCP Filtered Decoy Portscan","severity":3}`,
		},
		{
			name: "snort 2 compressed ipv6 with ports",
			line: "04/11-00:36:01.316702  [**] [1:1000009:1] SYN [**] [Priority: 0] {TCP} 2a01:4b00:b021:ed00:300f:f54f:9daa:3a06:56665 -> 2a02:26f0:5d00:4::6011:b29b:80",
			want: `"src_ip":"2a01:4b00:b021:ed00:300f:f54f:9daa:3a06","src_port":56665,"dest_ip":"2a02:26f0:5d00:4::6011:b29b","dest_port":80,"proto":"TCP"`,
		},
		{
			name: "snort 2 icmpv6 without numbers",
			line: "11/13-18:27:19.997062  [**] [1:527:8] BAD-TRAFFIC same SRC/DST [**] [Classification: Potentially Bad Traffic] [Priority: 2] {IPV6-ICMP} :: -> ff02::1:ff9e:26aa",
			want: `"src_ip":"::","dest_ip":"ff02::1:ff9e:26aa","proto":"IPv6-ICMP","alert"`,
		},
		{
			name: "snort 2 two-digit year",
			line: "11/13/19-18:27:19.997062  [**] [1:527:8] m [**] [Priority: 2] {ICMP} 192.0.2.1 -> 192.0.2.2",
			want: `"timestamp":"2019-11-13T18:27:19.997062+0000"`,
		},
		{
			name: "snort 3",
			line: `04/11-15:06:08.888922 [**] [116:444:1] "(ipv4) IPv4 option set" [**] [Priority: 3] {IP} 172.22.64.1 -> 224.0.0.22`,
			want: `"src_ip":"172.22.64.1","dest_ip":"224.0.0.22","proto":"IP","alert":{"action":"allowed","gid":116,"signature_id":444,"rev":1,"signature":"(ipv4) IPv4 option set","severity":3}`,
		},
		{
			name: "suricata icmp type and code",
			line: "04/15/2026-11:59:22.191265  [**] [1:1000001:1] Ping [**] [Classification: (null)] [Priority: 3] {ICMP} 41.210.180.41:3 -> 192.168.100.3:9",
			want: `"src_ip":"41.210.180.41","dest_ip":"192.168.100.3","proto":"ICMP","icmp_type":3,"icmp_code":9,"alert"`,
		},
		{
			name: "suricata igmp drops its zero ports",
			line: "03/12/2025-09:05:00.975891  [**] [1:999999:1] T [**] [Classification: (null)] [Priority: 3] {IGMP} 192.168.1.1:0 -> 224.0.0.1:0",
			want: `"src_ip":"192.168.1.1","dest_ip":"224.0.0.1","proto":"IGMP","alert"`,
		},
		{
			name: "decoder event",
			line: "12/03/1999-06:34:57.474450  [**] [1:2200003:2] SURICATA IPv4 truncated packet [**] [Classification: Generic Protocol Command Decode] [Priority: 3] [**] [Raw pkt: 00 00 C0 9F ] [pcap file packet: 49]",
			want: `"timestamp":"1999-12-03T06:34:57.474450+0000","event_type":"alert","alert":{"action":"allowed","gid":1,"signature_id":2200003,"rev":2,"signature":"SURICATA IPv4 truncated packet","category":"Generic Protocol Command Decode","severity":3}`,
		},
		{
			name: "decoder event with braces in the message",
			line: "12/03/1999-06:34:57.474450  [**] [1:2200003:2] odd {TCP} msg [**] [Classification: (null)] [Priority: 3] [**] [Raw pkt: 00 ]",
			want: `"event_type":"alert","alert":{"action":"allowed","gid":1,"signature_id":2200003,"rev":2,"signature":"odd {TCP} msg","severity":3}`,
		},
		{
			name: "invalid utf-8 is replaced, the event kept",
			line: "05/14/2020-22:10:17.391373  [**] [1:2:3] caf\xe9 \xff [**] [Classification: (null)] [Priority: 1] {TCP} 192.0.2.1:1 -> 192.0.2.2:2",
			want: "\"signature\":\"caf\ufffd \ufffd\"",
		},
		{
			name: "control characters are escaped",
			line: "05/14/2020-22:10:17.391373  [**] [1:2:3] a\x00b\tc\"d\\ [**] [Classification: (null)] [Priority: 1] {TCP} 192.0.2.1:1 -> 192.0.2.2:2",
			want: `"signature":"a\u0000b\tc\"d\\"`,
		},
		{
			name: "snort 2 without ip header",
			line: "11/13-18:27:19.997062  [**] [1:527:8] m [**] ",
			want: `"timestamp":"2024-11-13T18:27:19.997062+0000","event_type":"alert","alert":{"action":"allowed","gid":1,"signature_id":527,"rev":8,"signature":"m"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zone := tt.zone
			if zone == nil {
				zone = time.UTC
			}
			p := &Parser{Zone: zone, Year: 2024}
			ev, err := parse(t, p, tt.line)
			if err != nil {
				t.Fatal(err)
			}
			got := jsonOf(ev)
			if !strings.Contains(got, tt.want) {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			want, _ := record.Marshal(ev)
			if got != string(want) {
				t.Errorf("AppendJSON\n%s\nMarshal\n%s", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ line, want string }{
		{"", "blank line"},
		{"  \t", "blank line"},
		{"\x00\x00\x00", "blank line"},
		{"hello world", "no timestamp"},
		{"11/13-18:00:37.962", "no timestamp"},
		{"13/13/2020-18:00:37.962000  [**] [1:2:3] m [**] [Priority: 1] {TCP} 1.2.3.4:1 -> 1.2.3.5:2", "impossible date"},
		{"02/30/2020-18:00:37.962000  [**] [1:2:3] m [**] [Priority: 1] {TCP} 1.2.3.4:1 -> 1.2.3.5:2", "impossible date"},
		{"02/20/2020-18:00:37.962000[**] [1:2:3] m", "no space after the timestamp"},
		{"02/20/2020-18:00:37.962000  [1:2:3] m", "no [**] after the timestamp"},
		{"02/20/2020-18:00:37.962000  [**] 1:2:3 m", "no [gid:sid:rev]"},
		{"02/20/2020-18:00:37.962000  [**] [1:99999999999:1] m [**] [Priority: 1] {TCP} 1.2.3.4:1 -> 1.2.3.5:2", `sid 99999999999 in "[1:99999999999:1]" is out of range (0 to 4294967295)`},
		{"02/20/2020-18:00:37.962000  [**] [1:2:x3] m [**] [Priority: 1] {TCP} 1.2.3.4:1 -> 1.2.3.5:2", `rev "x3" in "[1:2:x3]" is not a number`},
		{"02/20/2020-18:00:37.962000  [**] [1:2] m [**] [Priority: 1] {TCP} 1.2.3.4:1 -> 1.2.3.5:2", `"[1:2]" has 2 numbers, not 3`},
		{"02/20/2020-18:00:37.962000  [**] [1:2:3] a message cut sho", "no [**] after the message"},
		{"02/20/2020-18:00:37.962000  [**] [1:2:3] m [**] [Priority: 1] {TC", "no } after the protocol"},
		{"02/20/2020-18:00:37.962000  [**] [1:2:3] m [**] [Priority: 1] {TCP} 1.2.3.4:1 -> 1.2.3", "bad destination address"},
		{"02/20/2020-18:00:37.962000  [**] [1:2:3] m [**] [Priority: 1] {TCP} 1.2.3.4:1 => 1.2.3.5:2", "no -> between"},
	}
	p := &Parser{Zone: time.UTC}
	for _, tt := range tests {
		var ev record.Event
		err := p.Parse([]byte(tt.line), &ev)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want %q", tt.line, err, tt.want)
		}
	}
}

func TestStarts(t *testing.T) {
	rec := "05/14/2020-22:10:17.391373  [**] [1:2:3] m [**] [Priority: 1] {TCP} 1.2.3.4:1 -> 1.2.3.5:2"
	cut := rec[:40]
	snort := "11/13-18:01:55.044396  [Drop] [**] [1:527:8] BAD [**] [Priority: 2] {UDP} 0.0.0.0:68 -> 255.255.255.255:67"
	tests := []struct {
		line string
		want []int
	}{
		{rec, []int{0}},
		{cut + rec, []int{0, 40}},
		{cut + cut + rec, []int{0, 40, 80}},
		{"\x00\x00\x00" + rec, []int{0, 3}},
		{"11/13-18:00:37.962" + snort, []int{0, 18}},
		{rec + " " + snort, []int{0, len(rec) + 1}},
		// A timestamp in a message is not a record unless a header follows it.
		{"05/14/2020-22:10:17.391373  [**] [1:2:3] seen 05/14/2020-22:10:17.391373 [**] [Priority: 1] {TCP} 1.2.3.4:1 -> 1.2.3.5:2", []int{0}},
	}
	p := &Parser{}
	for _, tt := range tests {
		got := p.Starts([]byte(tt.line))
		if !equalInts(got, tt.want) {
			t.Errorf("Starts(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
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

func TestInferYear(t *testing.T) {
	now := time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)
	p := &Parser{Zone: time.UTC, Now: func() time.Time { return now }}
	for _, tt := range []struct{ line, want string }{
		{"12/31-23:59:59.000000  [**] [1:2:3] m [**] ", "2025-12-31T23:59:59"},
		{"01/02-23:59:59.000000  [**] [1:2:3] m [**] ", "2026-01-02T23:59:59"},
		{"02/10-23:59:59.000000  [**] [1:2:3] m [**] ", "2026-02-10T23:59:59"},
	} {
		ev, err := parse(t, p, tt.line)
		if err != nil || !strings.HasPrefix(ev.Timestamp, tt.want) {
			t.Errorf("%q: %v %v, want %s", tt.line, ev.Timestamp, err, tt.want)
		}
	}
}

// TestParseAllocs: the hot path (Parse and AppendJSON into a reused
// buffer) allocates nothing once the buffers have grown.
func TestParseAllocs(t *testing.T) {
	lines := benchLines(t)
	p := &Parser{Zone: time.UTC, Location: "/var/log/suricata/fast.log"}
	var ev record.Event
	buf := make([]byte, 0, 4096)
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		line := lines[i%len(lines)]
		i++
		for _, s := range p.Starts(line) {
			_ = p.Parse(line[s:], &ev)
			buf = ev.AppendJSON(buf[:0])
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per line", n)
	}
}

// benchLines is a mix like the synthetic benchmark log: mostly IPv4
// TCP/UDP, some expanded IPv6, ICMP, drops and (null) classifications.
func benchLines(t testing.TB) [][]byte {
	f, err := os.Open(filepath.Join("testdata", "bench.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	return lines
}

// BenchmarkParse is the parser alone: Starts and Parse, per line.
func BenchmarkParse(b *testing.B) {
	lines := benchLines(b)
	p := &Parser{Zone: time.Local, Location: "/var/log/suricata/fast.log"}
	var ev record.Event
	var n int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		line := lines[i%len(lines)]
		n += int64(len(line))
		for _, s := range p.Starts(line) {
			if err := p.Parse(line[s:], &ev); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(n / int64(b.N))
}

// BenchmarkParseEncode adds AppendJSON (with escaping) into a reused
// buffer, per line.
func BenchmarkParseEncode(b *testing.B) {
	lines := benchLines(b)
	p := &Parser{Zone: time.Local, Location: "/var/log/suricata/fast.log"}
	var ev record.Event
	buf := make([]byte, 0, 4096)
	var n int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		line := lines[i%len(lines)]
		n += int64(len(line))
		for _, s := range p.Starts(line) {
			if err := p.Parse(line[s:], &ev); err != nil {
				b.Fatal(err)
			}
			buf = ev.AppendJSON(buf[:0])
		}
	}
	b.SetBytes(n / int64(b.N))
}
