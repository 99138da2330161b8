package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestWriteFileReadBack(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_test_things_total", Help: "Things."}, []string{"kind"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "quietwatch_test_open", Help: "Open things."})
	reg.MustRegister(c, g)
	c.WithLabelValues("a").Add(3)
	g.Set(2)
	dir := t.TempDir()
	path := filepath.Join(dir, "test.prom")
	if err := Check(path); err != nil {
		t.Fatal(err)
	}
	if err := Check(filepath.Join(dir, "test.txt")); err == nil {
		t.Error("Check took a name without .prom")
	}
	if err := Check(filepath.Join(dir, "no", "x.prom")); err == nil {
		t.Error("Check took a missing folder")
	}
	stop := Start(reg, path, func(err error) { t.Errorf("report: %v", err) })
	c.WithLabelValues("b").Inc()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	fs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := fs.Value("quietwatch_test_things_total", "kind", "a"); !ok || v != 3 {
		t.Errorf("things{a} = %v, %v", v, ok)
	}
	if v, ok := fs.Value("quietwatch_test_things_total", "kind", "b"); !ok || v != 1 {
		t.Errorf("things{b} (counted before stop's last write) = %v, %v", v, ok)
	}
	if v, _ := fs.Value("quietwatch_test_open"); v != 2 {
		t.Errorf("open = %v", v)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v: node_exporter could not read it", st.Mode())
	}
}

// TestStartPeriodic: the file follows the counters every Every (the
// bubble's clock: no waiting), and a folder gone makes one report, not one
// per write, until a write succeeds again.
func TestStartPeriodic(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		reg := NewRegistry()
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "quietwatch_test_ticks_total", Help: "Ticks."})
		reg.MustRegister(c)
		sub := filepath.Join(dir, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(sub, "t.prom")
		var reports []error
		stop := Start(reg, path, func(err error) { reports = append(reports, err) })
		for i := 1; i <= 3; i++ {
			c.Inc()
			time.Sleep(Every)
			synctest.Wait()
			fs, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := fs.Value("quietwatch_test_ticks_total"); v != float64(i) {
				t.Fatalf("after %d periods: %v", i, v)
			}
		}
		if err := os.RemoveAll(sub); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * Every)
		synctest.Wait()
		if len(reports) != 1 {
			t.Errorf("%d reports for a folder gone, want 1: %v", len(reports), reports)
		}
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		time.Sleep(Every)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("not written again once the folder is back: %v", err)
		}
	})
}
