//go:build linux

package firewall

import (
	"testing"
	"time"
)

func TestSetTimeout(t *testing.T) {
	for ttl, want := range map[time.Duration]uint32{
		0: 1, -time.Second: 1, 300 * time.Second: 301, 1500 * time.Millisecond: 3,
		24 * time.Hour: 86401, 30 * 24 * time.Hour: 0,
	} {
		if got := *setTimeout(ttl); got != want {
			t.Errorf("setTimeout(%v) = %d, want %d", ttl, got, want)
		}
	}
}
