//go:build linux

package block

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// The benchmarks change a real firewall, so they run only inside a network
// namespace made for them: scripts/bench-block runs
//
//	QWB_BENCH_PARENT_NS=$(readlink /proc/self/ns/net) ip netns exec NS go test -bench . ./pkg/block
//
// and they refuse to run in the namespace named by QWB_BENCH_PARENT_NS.
func benchNetns(b *testing.B) {
	parent := os.Getenv("QWB_BENCH_PARENT_NS")
	self, _ := os.Readlink("/proc/self/ns/net")
	if parent == "" || self == parent {
		b.Skip("run by scripts/bench-block inside a network namespace")
	}
}

func benchAlert(i int) string {
	if i%2 == 1 {
		// One /64 each: block bans an IPv6 source as its /64.
		return alertLine(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff), 10, fmt.Sprintf("1.%d", i))
	}
	return alertLine(fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), 10, fmt.Sprintf("1.%d", i))
}

// stage runs block in-process with a pipe as stdin and counts decisions.
type stage struct {
	in     *io.PipeWriter
	out    *bufio.Reader
	cancel context.CancelFunc
	done   chan int
}

func startStage(b *testing.B, args ...string) *stage {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stage{in: inW, out: bufio.NewReaderSize(outR, 1<<20), cancel: cancel, done: make(chan int, 1)}
	e := defaultEnv([]string{"block"}, command.Hooks{Now: time.Now})
	e.socket = "" // never the service's socket
	go func() {
		s.done <- command.Run(ctx, newApp(e), append([]string{"block"}, args...), inR, outW, os.Stderr)
		outW.Close()
	}()
	return s
}

func (s *stage) stop(b *testing.B) {
	s.cancel()
	go io.Copy(io.Discard, s.out)
	if code := <-s.done; code != 0 {
		b.Fatalf("block exit %d", code)
	}
}

func flushAll(b *testing.B, backend, state, hd string) {
	be, err := firewall.New(backend, firewall.Config{Chain: "QUIETWATCH", HostsDeny: hd, Backends: []string{backend}})
	if err != nil {
		b.Fatal(err)
	}
	if err := be.Flush(); err != nil {
		b.Fatal(err)
	}
	os.Remove(state)
}

// BenchmarkApply10k measures the time from the first of 10,000 alerts for
// distinct addresses (half IPv4, half IPv6) on stdin to the 10,000th
// decision on stdout, with every ban in the backend and the state file.
func BenchmarkApply10k(b *testing.B) {
	benchNetns(b)
	var input []byte
	for i := range 10000 {
		input = append(input, benchAlert(i)...)
	}
	for _, backend := range []string{"ipset", "iptables", "nftables", "hosts-deny", "dry-run"} {
		b.Run(backend, func(b *testing.B) {
			dir := b.TempDir()
			state, hd := filepath.Join(dir, "state.db"), filepath.Join(dir, "hosts.deny")
			for b.Loop() {
				s := startStage(b, "--backend", backend, "--state", state, "--hosts-deny", hd, "--timeout", "1h")
				go func() { s.in.Write(input); s.in.Close() }()
				for range 10000 {
					if _, err := s.out.ReadString('\n'); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				s.stop(b)
				flushAll(b, backend, state, hd)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkLatency measures one alert's way from stdin to its decision on
// stdout, one alert at a time. The decision is written after the backend
// call returned (the kernel rule is in place) and the state was committed
// (fsync), so this is an upper bound of "alert read to rule in place".
func BenchmarkLatency(b *testing.B) {
	benchNetns(b)
	for _, backend := range []string{"ipset", "iptables", "nftables"} {
		b.Run(backend, func(b *testing.B) {
			dir := b.TempDir()
			state := filepath.Join(dir, "state.db")
			s := startStage(b, "--backend", backend, "--state", state, "--timeout", "1h")
			var lat []time.Duration
			i := 0
			for b.Loop() {
				line := benchAlert(i)
				i++
				t0 := time.Now()
				if _, err := io.WriteString(s.in, line); err != nil {
					b.Fatal(err)
				}
				if _, err := s.out.ReadString('\n'); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			s.stop(b)
			flushAll(b, backend, state, "")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
