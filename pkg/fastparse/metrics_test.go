package fastparse

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/pkg/metrics/metricstest"
)

// TestMetricsFile: --metrics-file counts lines read, events written and
// lines skipped by reason, as stdout and stderr show them.
func TestMetricsFile(t *testing.T) {
	good := "05/14/2020-22:10:17.391000  [**] [1:2024364:3] ET SCAN Possible Nmap User-Agent Observed [**] [Classification: Web Application Attack] [Priority: 1] {TCP} 198.51.100.241:35004 -> 198.51.100.44:80\n"
	in := good + good + "not a fast.log line\n" + " \t \n" + good + strings.Repeat("x", 300) + "\n"
	path := filepath.Join(t.TempDir(), "fastparse.prom")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"fastparse", "--tz", "UTC", "--max-line", "256", "--metrics-file", path}, strings.NewReader(in), &out, &errb, &env{})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Fatalf("%d events on stdout, want 3", n)
	}
	fs := metricstest.Read(t, path)
	metricstest.Want(t, fs, 6, "quietwatch_fastparse_lines_read_total")
	metricstest.Want(t, fs, 3, "quietwatch_fastparse_events_total")
	metricstest.Want(t, fs, 1, "quietwatch_fastparse_lines_unparsed_total", "reason", "unparsable")
	metricstest.Want(t, fs, 1, "quietwatch_fastparse_lines_unparsed_total", "reason", "blank")
	metricstest.Want(t, fs, 1, "quietwatch_fastparse_lines_unparsed_total", "reason", "too_long")

	// A folder that is not there is a configuration error, found at start.
	code = run(context.Background(), []string{"fastparse", "--metrics-file", filepath.Join(t.TempDir(), "no", "x.prom")}, strings.NewReader(""), &out, &errb, &env{})
	if code != 78 {
		t.Errorf("missing folder: exit %d, want 78", code)
	}
}
