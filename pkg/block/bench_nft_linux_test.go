//go:build linux

package block

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// benchEntries returns n distinct ban entries, IPv4 (10.0.0.0/8, never
// traffic) or half IPv4 and half IPv6 (2001:db8::/32).
func benchEntries(n int, v4only bool) []firewall.Entry {
	out := make([]firewall.Entry, 0, n)
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !v4only && i%2 == 1 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 4: byte(i >> 24), 5: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		}
		out = append(out, firewall.Entry{Net: firewall.Single(a), TTL: time.Hour})
	}
	return out
}

func benchBackend(b *testing.B, name string) firewall.Backend {
	be, err := firewall.New(name, firewall.Config{Chain: "QWBENCH", Backends: []string{name}})
	if err != nil {
		b.Fatal(err)
	}
	return be
}

// BenchmarkBackendBans measures one backend call that puts 10,000 or
// 100,000 bans (half IPv4, half IPv6) into an empty firewall: the
// start-up reconcile (Sync) of a state with that many live bans. B/op and
// allocs/op are block's own memory for it.
func BenchmarkBackendBans(b *testing.B) {
	benchNetns(b)
	for _, n := range []struct {
		name string
		n    int
	}{{"10k", 10_000}, {"100k", 100_000}} {
		entries := benchEntries(n.n, false)
		for _, backend := range []string{"nftables", "ipset"} {
			b.Run(n.name+"/"+backend, func(b *testing.B) {
				be := benchBackend(b, backend)
				b.ReportAllocs()
				for b.Loop() {
					if err := be.Sync(entries); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if l, err := be.List(); err != nil || len(l) != n.n {
						b.Fatalf("%d of %d bans (%v)", len(l), n.n, err)
					}
					if err := be.Flush(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkAcceptRate50k measures TCP connections per second on the
// namespace's loopback (dial, accept, close: every packet passes the
// input hook) with 50,000 IPv4 bans in place, for iptables per-address
// rules, the ipset set and the nftables set, side by side, and with no
// bans as the baseline. The client, 127.0.0.1, is banned by none of them.
func BenchmarkAcceptRate50k(b *testing.B) {
	benchNetns(b)
	entries := benchEntries(50_000, true)
	for _, backend := range []string{"none", "iptables", "ipset", "nftables"} {
		b.Run(backend, func(b *testing.B) {
			if backend != "none" {
				be := benchBackend(b, backend)
				if err := be.Sync(entries); err != nil {
					b.Fatal(err)
				}
				defer func() {
					if err := be.Flush(); err != nil {
						b.Fatal(err)
					}
				}()
			}
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			addr := ln.Addr().String()
			b.ResetTimer()
			start := time.Now()
			n := 0
			for b.Loop() {
				c, err := net.Dial("tcp4", addr)
				if err != nil {
					b.Fatal(err)
				}
				// Wait for the server's close: the whole exchange passed.
				var buf [1]byte
				_, _ = c.Read(buf[:])
				c.Close()
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "conn/s")
		})
	}
}
