package eve

import (
	"bytes"
	"testing"
)

// realAlert is an alert the way Suricata 7 writes it with the default
// eve.json settings (http, app-layer metadata, flow): about 1 KB.
const realAlert = `{"timestamp":"2020-05-14T22:10:17.391373+0000","flow_id":1480523408523494,"in_iface":"eth0","event_type":"alert","src_ip":"198.51.100.241","src_port":35004,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","pkt_src":"wire/pcap","community_id":"1:SRhK1w3fYVyXWWGOkAG6NBoFAXY=","tx_id":0,"alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":1,"metadata":{"affected_product":["Any"],"attack_target":["Client_and_Server"],"created_at":["2017_06_08"],"deployment":["Perimeter"],"signature_severity":["Informational"],"updated_at":["2020_08_06"]}},"http":{"hostname":"198.51.100.44","url":"/nmaplowercheck1589494217","http_user_agent":"Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)","http_content_type":"text/html","http_method":"GET","protocol":"HTTP/1.1","status":404,"length":196},"app_proto":"http","direction":"to_server","flow":{"pkts_toserver":4,"pkts_toclient":3,"bytes_toserver":431,"bytes_toclient":597,"start":"2020-05-14T22:10:17.389371+0000","src_ip":"198.51.100.241","dest_ip":"198.51.100.44","src_port":35004,"dest_port":80}}`

// BenchmarkLine parses real-sized alert records; records/s is the figure
// of issue 15 (target: 300,000 a second on one core).
func BenchmarkLine(b *testing.B) {
	line := []byte(realAlert)
	p := Parser{Location: "/var/log/suricata/eve.json"}
	var out []byte
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		out, _ = p.Line(out[:0], line)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if !bytes.Contains(out, []byte(`"full_log":"05/14/2020-22:10:17.391373  [**] [1:2024364:3] ET SCAN`)) {
		b.Fatalf("%s", out)
	}
}

// BenchmarkLineFlow is the common non-alert record: checked and counted.
func BenchmarkLineFlow(b *testing.B) {
	line := []byte(`{"timestamp":"2020-05-14T22:10:17.391373+0000","flow_id":1480523408523494,"in_iface":"eth0","event_type":"flow","src_ip":"198.51.100.241","src_port":35004,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","app_proto":"http","flow":{"pkts_toserver":4,"pkts_toclient":3,"bytes_toserver":431,"bytes_toclient":597,"start":"2020-05-14T22:10:17.389371+0000","end":"2020-05-14T22:10:17.392000+0000","age":0,"state":"closed","reason":"timeout","alerted":true},"tcp":{"tcp_flags":"1b","tcp_flags_ts":"1b","tcp_flags_tc":"1b","syn":true,"fin":true,"psh":true,"ack":true,"state":"closed"}}`)
	p := Parser{}
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		p.Line(nil, line)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
