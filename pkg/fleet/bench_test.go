package fleet

import (
	"testing"

	"github.com/quietwatch/quietwatch/pkg/record"
)

var benchLine = []byte(`{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"198.51.100.241","src_port":35004,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":1},"full_log":"05/14/2020-22:10:17.391373  [**] [1:2024364:3] ET SCAN Possible Nmap User-Agent Observed [**] [Classification: Web Application Attack] [Priority: 1] {TCP} 192.0.2.241:35004 -> 198.51.100.44:80","location":"/var/log/suricata/fast.log","rule":{"id":"300011","level":10,"description":"Suricata level 1 alert","groups":["snort-fast"]},"id":"1589494217.7"}`)

func BenchmarkParseLocal(b *testing.B) {
	b.SetBytes(int64(len(benchLine)))
	for range b.N {
		if _, ok := ParseLocal(benchLine); !ok {
			b.Fatal("not shared")
		}
	}
}

func BenchmarkScanEventRef(b *testing.B) {
	var f record.EventFields
	b.SetBytes(int64(len(benchLine)))
	for range b.N {
		if err := record.ScanEvent(benchLine, &f); err != nil {
			b.Fatal(err)
		}
	}
}
