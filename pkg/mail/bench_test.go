package mail

import (
	"fmt"
	"testing"
	"time"
)

// benchLines returns n alert lines as correlate writes them.
func benchLines(n int) [][]byte {
	lines := make([][]byte, n)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"198.51.100.241","src_port":%d,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP",`+
			`"alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":1},`+
			`"full_log":"05/14/2020-22:10:17.391373  [**] [1:2024364:3] ET SCAN Possible Nmap User-Agent Observed [**] [Classification: Web Application Attack] [Priority: 1] {TCP} 198.51.100.241:%d -> 198.51.100.44:80",`+
			`"location":"/var/log/suricata/fast.log","rule":{"id":"300011","level":10,"description":"Suricata level 1 alert","groups":["snort-fast"],"firedtimes":%d},"id":"1589494217.%d"}`, 30000+i, 30000+i, i+1, i)
	}
	return lines
}

// BenchmarkMessages renders a group of 100 alerts (decoded from their
// lines, as notify's groups are) into its message.
func BenchmarkMessages(b *testing.B) {
	lines := benchLines(100)
	r := &Renderer{Host: "vm", From: "quietwatch@vm", To: []string{"root"}, MaxMails: 12}
	newID := func(time.Time) string { return "1.a@vm" }
	b.ReportAllocs()
	for range b.N {
		g := &Group{}
		for i, l := range lines {
			g.Add(&Item{Seq: uint64(i + 1), Level: 10, ID: "x", Raw: l}, MaxShown)
		}
		parts, err := r.Messages(Outcome{G: g}, t0, newID)
		if err != nil || len(parts) != 1 {
			b.Fatalf("%d parts, %v", len(parts), err)
		}
	}
}

// BenchmarkBatcher feeds a flood of alerts, one a millisecond, through a
// 10 s window and the hourly limit: per alert, the cost of grouping.
func BenchmarkBatcher(b *testing.B) {
	lines := benchLines(1000)
	b.ReportAllocs()
	bt := &Batcher{Window: 10 * time.Second, Max: 12}
	now := t0
	for i := range b.N {
		now = now.Add(time.Millisecond)
		bt.Add(now, &Item{Seq: uint64(i + 1), Level: 10, ID: "x", Raw: lines[i%len(lines)], Borrowed: true})
	}
}
