package fastparse

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/fastlog"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// FuzzLine: whatever a line holds, fastparse writes valid JSON Lines on
// stdout and at most one diagnostic line for it on stderr.
func FuzzLine(f *testing.F) {
	f.Add([]byte("05/14/2020-22:10:17.391373  [**] [1:2:3] caf\xe9 \x00 [**] [Classification: (null)] [Priority: 1] {TCP} 192.0.2.1:1 -> 192.0.2.2:2"))
	f.Add([]byte("11/13-18:00:37.96211/13-18:01:55.044396  [**] [1:527:8] BAD [**] [Priority: 2] {UDP} 0.0.0.0:68 -> 255.255.255.255:67"))
	f.Add([]byte("\x00\x00 \t"))
	// eve.json: the worker's format is auto, so a line beginning with '{' is read as eve
	f.Add([]byte(`{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"0000:0000:0000:0000:0000:0000:0000:0001","src_port":1,"dest_ip":"192.0.2.2","dest_port":2,"proto":"TCP","alert":{"action":"blocked","gid":1,"signature_id":2,"rev":3,"signature":"caf\u00e9","severity":1}}`))
	f.Add([]byte("{\"timestamp\":\"2020-05-14T22:10:17+0000\",\"event_type\":\"al{\"timestamp\":\"x\"}\x00"))
	f.Fuzz(func(t *testing.T, line []byte) {
		w := &worker{p: fastlog.Parser{Zone: time.UTC, Year: 2024, Location: "fuzz \"loc\""}, maxLine: 1 << 20, m: newStageMetrics()}
		w.plainLocation = record.Verbatim(w.p.Location)
		w.line(line, "fuzz", 1, false)
		for _, rec := range bytes.Split(bytes.TrimSuffix(w.out, []byte("\n")), []byte("\n")) {
			if len(w.out) > 0 && !record.Valid(rec) {
				t.Fatalf("invalid JSON %q", rec)
			}
		}
		if n := bytes.Count(w.errs, []byte("\n")); n > 1 || n == 1 && !strings.HasPrefix(string(w.errs), "fastparse: fuzz:1: ") {
			t.Fatalf("diagnostics %q", w.errs)
		}
	})
}
