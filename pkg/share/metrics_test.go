package share

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/metrics/metricstest"
)

// share's metrics file, read back at exit: records passed on, bans
// offered to the fleet, a peer's ban passed on and one refused by reason.
func TestMetricsFile(t *testing.T) {
	ns := newServer(t)
	path := filepath.Join(t.TempDir(), "quietwatch_share.prom")
	web2 := start(t, testEnv(ns), "--nats", "x", "--origin", "web2", "--metrics-file", path)
	waitStream(t, ns)
	web1 := start(t, testEnv(ns), "--nats", "x", "--origin", "web1")
	web1.write(t, alert("198.51.100.241", 10), alert("10.1.2.3", 10))
	web1.next(t, time.Second)
	web1.next(t, time.Second)
	if got := web2.next(t, 5*time.Second); !strings.Contains(got, `"fleet":{"origin":"web1"`) {
		t.Fatalf("web2 wrote %s", got)
	}
	web2.write(t, alert("198.51.100.9", 3))
	web2.next(t, time.Second)
	// the refused private address has arrived once web2 says so
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(web2.stderr.String(), "private") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range []*proc{web1, web2} {
		if c := p.end(t); c != 0 {
			t.Fatalf("exit %d; stderr:\n%s", c, p.stderr.String())
		}
	}
	fs := metricstest.Read(t, path)
	metricstest.Want(t, fs, 1, "quietwatch_share_records_total")
	metricstest.Want(t, fs, 0, "quietwatch_share_bans_offered_total") // level 3: below --level
	metricstest.Want(t, fs, 1, "quietwatch_share_peer_bans_total")
	metricstest.Want(t, fs, 1, "quietwatch_share_peer_bans_refused_total", "reason", "private")
	metricstest.Want(t, fs, 0, "quietwatch_share_bans_dropped_total")
}
