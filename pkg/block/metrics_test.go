package block

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quietwatch/quietwatch/pkg/firewall"
	"github.com/quietwatch/quietwatch/pkg/metrics/metricstest"
)

// TestMetricsFile: --metrics-file counts bans placed and extended, alerts
// refused by reason and live bans by backend; after a stop longer than a
// ban, the next start lifts it and records how late (the bubble's clock
// makes it exact).
func TestMetricsFile(t *testing.T) {
	dir := t.TempDir()
	state, prom := filepath.Join(dir, "state.db"), filepath.Join(dir, "block.prom")
	synctest.Test(t, func(t *testing.T) {
		fake := firewall.NewFake("fake")
		l := startLive(t, fake, "--state", state, "--timeout", "10s", "--metrics-file", prom, "--log-skips")
		l.send(t, alertLine("192.0.2.1", 10, "a"), alertLine("192.0.2.2", 3, "low"), alertLine("198.51.100.44", 12, "own"))
		for range 3 {
			l.next(t)
		}
		time.Sleep(2 * time.Second)
		l.send(t, alertLine("192.0.2.1", 10, "b"))
		if d, _ := l.next(t); !strings.Contains(d, `"action":"extend"`) {
			t.Fatalf("want an extend: %s", d)
		}
		l.stop()
		if code := <-l.done; code != 0 {
			t.Fatalf("exit %d: %s", code, l.errb)
		}
		fs := metricstest.Read(t, prom)
		metricstest.Want(t, fs, 1, "quietwatch_block_bans_placed_total", "origin", "alert")
		metricstest.Want(t, fs, 0, "quietwatch_block_bans_placed_total", "origin", "manual")
		metricstest.Want(t, fs, 1, "quietwatch_block_bans_extended_total")
		metricstest.Want(t, fs, 1, "quietwatch_block_alerts_refused_total", "reason", "below-level")
		metricstest.Want(t, fs, 1, "quietwatch_block_alerts_refused_total", "reason", "own-address")
		metricstest.Want(t, fs, 1, "quietwatch_block_bans_active", "backend", "fake")
		metricstest.Want(t, fs, 0, "quietwatch_block_bans_lifted_total", "reason", "expired")

		// Stopped for a minute: the ban (until 12 s) is lifted 50 s late.
		time.Sleep(time.Minute)
		l = startLive(t, fake, "--state", state, "--timeout", "10s", "--metrics-file", prom)
		if d, _ := l.next(t); !strings.Contains(d, `"action":"delete"`) {
			t.Fatalf("want a delete: %s", d)
		}
		l.in.Close()
		if code := <-l.done; code != 0 {
			t.Fatalf("exit %d: %s", code, l.errb)
		}
		fs = metricstest.Read(t, prom)
		metricstest.Want(t, fs, 1, "quietwatch_block_bans_lifted_total", "reason", "expired")
		metricstest.Want(t, fs, 0, "quietwatch_block_bans_active", "backend", "fake")
		h := fs["quietwatch_block_unban_lateness_seconds"].GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 1 || h.GetSampleSum() != 50 {
			data, _ := os.ReadFile(prom)
			t.Errorf("lateness: %d samples, sum %v, want 1 and 50\n%s", h.GetSampleCount(), h.GetSampleSum(), data)
		}
	})
}
