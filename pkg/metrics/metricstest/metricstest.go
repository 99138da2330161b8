// Package metricstest reads a stage's metrics file back in tests: parsed
// with Prometheus's text parser and checked with promlint, the linter
// behind `promtool check metrics`.
package metricstest

import (
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/quietwatch/quietwatch/pkg/metrics"
)

// Read parses the metrics file at path, failing t on a parse error or on
// any problem promlint finds.
func Read(t testing.TB, path string) metrics.Families {
	t.Helper()
	fs, err := metrics.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	probs, err := promlint.New(f).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	return fs
}

// Want fails t unless the metric name with labels (name, value pairs) has
// value want.
func Want(t testing.TB, fs metrics.Families, want float64, name string, labels ...string) {
	t.Helper()
	v, ok := fs.Value(name, labels...)
	if !ok {
		t.Errorf("no metric %s%v", name, labels)
	} else if v != want {
		t.Errorf("%s%v = %v, want %v", name, labels, v, want)
	}
}
