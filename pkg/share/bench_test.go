package share

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/fleet"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// BenchmarkLocalPath runs the whole filter on b.N level-10 alerts from
// 1,000 sources (each source published once per --republish), connected
// to an in-process JetStream server, stdout discarded. The target is at
// least 200,000 alerts/s.
func BenchmarkLocalPath(b *testing.B) {
	ns := newServer(b)
	var in bytes.Buffer
	for i := range b.N {
		fmt.Fprintf(&in, `{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"198.51.%d.%d","src_port":35004,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":1},"full_log":"05/14/2020-22:10:17.391373  [**] [1:2024364:3] ET SCAN Possible Nmap User-Agent Observed [**] [Classification: Web Application Attack] [Priority: 1] {TCP} 192.0.2.241:35004 -> 198.51.100.44:80","location":"/var/log/suricata/fast.log","rule":{"id":"300011","level":10,"description":"Suricata level 1 alert","groups":["snort-fast"]},"id":"1589494217.%d"}`+"\n", 100+i%1000/250, i%250, i)
	}
	b.SetBytes(int64(in.Len() / max(b.N, 1)))
	e := testEnv(ns)
	b.ResetTimer()
	t0 := time.Now()
	code := command.Run(context.Background(), newApp(e), []string{"share", "--nats", "x", "--origin", "bench"}, &in, io.Discard, io.Discard)
	b.StopTimer()
	if code != 0 {
		b.Fatalf("exit %d", code)
	}
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "alerts/s")
}

// BenchmarkPeerBans100k measures the memory share keeps for 100,000 live
// peer bans (the guard's table and the de-duplication ids), written to a
// discarded stdout.
func BenchmarkPeerBans100k(b *testing.B) {
	const n = 100000
	bodies := make([][]byte, n)
	subjects := make([]string, n)
	for i := range n {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		bodies[i] = fmt.Appendf(nil, `{"src_ip":"%s","rule":{"id":"300011","level":10},"id":"%d"}`, a, i)
		subjects[i] = fleet.BanSubject("web2", netip.PrefixFrom(a, 128))
	}
	p := fleet.DefaultPolicy()
	p.Rate, p.MaxBans = 0, 2*n
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	b.ResetTimer()
	var perBan float64
	for range b.N {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		rc := newReceiver("web1", fleet.NewGuard(p), 4*p.MaxBans, clock, newOutput(record.NewWriter(io.Discard)), newDiags(io.Discard, "share", clock))
		for i := range n {
			rc.handle(subjects[i], "300", "", bodies[i], time.Time{})
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if rc.guard.Live() != n {
			b.Fatalf("live = %d", rc.guard.Live())
		}
		perBan = float64(m1.HeapAlloc-m0.HeapAlloc) / n
		runtime.KeepAlive(rc)
	}
	b.ReportMetric(perBan, "heap-B/ban")
	b.ReportMetric(perBan*n/(1<<20), "heap-MiB/100k")
}
