package correlate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/command"
)

// benchEvents builds n events like genfastlog's: a mix of priorities from
// many sources.
func benchEvents(n, sources int) []byte { return benchEventsFrom(n, sources, false) }

// benchEventsFrom is benchEvents; with v6 the sources are IPv6 networks
// (a /64 each), every event from another address of its network.
func benchEventsFrom(n, sources int, v6 bool) []byte {
	var b bytes.Buffer
	start := time.Date(2020, 5, 14, 22, 10, 17, 0, time.UTC)
	for i := 0; i < n; i++ {
		t := start.Add(time.Duration(i) * 2500 * time.Microsecond)
		src := fmt.Sprintf("198.18.%d.%d", (i*7919%sources)>>8&255, i*7919%sources&255)
		if v6 {
			src = fmt.Sprintf("2001:db8:%x:%x::%x", (i*7919%sources)>>8&255, i*7919%sources&255, i&0xffff)
		}
		prio := 1 + i%3
		full := fmt.Sprintf("%s  [**] [1:%d:3] ET SCAN Possible Nmap User-Agent Observed [**] [Classification: Web Application Attack] [Priority: %d] {TCP} %s:35004 -> 198.51.100.44:80",
			t.Format("01/02/2006-15:04:05.000000"), 2024364+prio, prio, src)
		fmt.Fprintf(&b, `{"timestamp":"%s","event_type":"alert","src_ip":"%s","src_port":35004,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":%d,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":%d},"full_log":"%s","location":"/var/log/suricata/fast.log"}`+"\n",
			t.Format("2006-01-02T15:04:05.000000-0700"), src, 2024364+prio, prio, full)
	}
	return b.Bytes()
}

// BenchmarkCorrelate runs the whole stage (read, scan, rules, write) on
// events with the how-to's rules; ns/op is per event.
func BenchmarkCorrelate(b *testing.B) {
	var in []byte
	if p := os.Getenv("QW_BENCH_INPUT"); p != "" {
		var err error
		if in, err = os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	} else {
		in = benchEvents(100000, 50000)
	}
	lines := bytes.Count(in, []byte("\n"))
	b.SetBytes(int64(len(in) / lines))
	b.ResetTimer()
	for done := 0; done < b.N; done += lines {
		code := run(context.Background(), []string{"correlate", "-r", howto}, bytes.NewReader(in), io.Discard, io.Discard, &env{Hooks: command.Hooks{Now: time.Now}})
		if code != 0 {
			b.Fatal("exit", code)
		}
	}
}

// BenchmarkCorrelateIPv6 is BenchmarkCorrelate with IPv6 sources, each
// event from another address of its /64, counted by /64 (the default) and
// by address.
func BenchmarkCorrelateIPv6(b *testing.B) {
	in := benchEventsFrom(100000, 5000, true)
	lines := bytes.Count(in, []byte("\n"))
	for _, bits := range []string{"64", "128"} {
		b.Run("prefix-"+bits, func(b *testing.B) {
			b.SetBytes(int64(len(in) / lines))
			for done := 0; done < b.N; done += lines {
				code := run(context.Background(), []string{"correlate", "-r", howto, "--ipv6-prefix", bits}, bytes.NewReader(in), io.Discard, io.Discard, &env{Hooks: command.Hooks{Now: time.Now}})
				if code != 0 {
					b.Fatal("exit", code)
				}
			}
		})
	}
}
