package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
