package correlate

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/pkg/metrics"
	"github.com/quietwatch/quietwatch/pkg/metrics/metricstest"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// TestMetricsFile: --metrics-file counts events, refused lines by reason
// and alerts by rule and level, as the alerts on stdout say.
func TestMetricsFile(t *testing.T) {
	var in strings.Builder
	for i := range 3 {
		fmt.Fprintf(&in, `{"timestamp":"2020-05-14T22:10:%02d.000000+0000","event_type":"alert","src_ip":"198.51.100.7","src_port":3900%d,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP",`+
			`"alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":1},`+
			`"full_log":"x","location":"/var/log/suricata/fast.log"}`+"\n", 17+i, i)
	}
	in.WriteString("{not json\n\n")
	in.WriteString(`{"timestamp":"2020-05-14T22:10:30.000000+0000","rule":{"id":"1","level":3},"full_log":"x"}` + "\n")
	in.WriteString(`{"a":"` + strings.Repeat("x", record.DefaultMaxLine+10) + `"}` + "\n")
	path := filepath.Join(t.TempDir(), "correlate.prom")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"correlate", "--metrics-file", path}, strings.NewReader(in.String()), &out, &errb, fixedEnv())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	fs := metricstest.Read(t, path)
	metricstest.Want(t, fs, 6, "quietwatch_correlate_events_read_total")
	metricstest.Want(t, fs, 1, "quietwatch_correlate_events_refused_total", "reason", "unparsable")
	metricstest.Want(t, fs, 1, "quietwatch_correlate_events_refused_total", "reason", "fed_back")
	metricstest.Want(t, fs, 1, "quietwatch_correlate_events_refused_total", "reason", "too_long")
	// The alerts on stdout, by rule and level, are what the metrics count.
	want := map[[2]string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var a record.Alert
		if err := record.Unmarshal([]byte(line), &a); err != nil || a.Rule == nil {
			t.Fatalf("alert %q: %v", line, err)
		}
		want[[2]string{a.Rule.ID, fmt.Sprint(a.Rule.Level)}]++
	}
	if len(want) == 0 {
		t.Fatal("no alerts")
	}
	total := 0.0
	for k, n := range want {
		metricstest.Want(t, fs, n, "quietwatch_correlate_alerts_total", "rule", k[0], "level", k[1])
		total += n
	}
	if got := sum(fs, "quietwatch_correlate_alerts_total"); got != total {
		t.Errorf("alerts counted %v, on stdout %v", got, total)
	}
}

func sum(fs metrics.Families, name string) float64 {
	s := 0.0
	for _, m := range fs[name].GetMetric() {
		s += m.GetCounter().GetValue()
	}
	return s
}
