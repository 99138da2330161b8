package banstate

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
)

// BenchmarkSave20k is one Save of 20,000 bans and offense counts (what
// adopting 20,000 bans at start writes).
func BenchmarkSave20k(b *testing.B) {
	var bans []ban.Ban
	off := map[netip.Prefix]ban.Offense{}
	for i := range 20000 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 13: 1, 14: byte(i >> 8), 15: byte(i)})
		bans = append(bans, ban.Ban{Net: ban.Single(a), Until: time.Now().Add(time.Hour), Timeout: time.Hour, Offense: 1, Backends: []string{"ipset"}})
		off[ban.Single(a)] = ban.Offense{Count: 1}
	}
	for b.Loop() {
		b.StopTimer()
		s, err := Open(filepath.Join(b.TempDir(), "s.db"), time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.Save(bans, nil, off); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}
