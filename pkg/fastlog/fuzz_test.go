package fastlog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// FuzzParse: any line, glued records included, never panics; every event
// is valid JSON, byte for byte what record.Marshal writes, and its
// full_log is the record's text.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"real-lines.txt", "real-lines-edge.txt"} {
		data, err := os.ReadFile(filepath.Join(corpusDir, name))
		if err != nil {
			f.Fatalf("shared corpus: %v", err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if i%7 == 0 || name != "real-lines.txt" { // a sample: the corpus repeats shapes
				f.Add(line)
			}
		}
	}
	f.Add("05/14/2020-22:10:17.391373  [**] [1:2:3] a [**] [Classif05/14/2020-22:10:17.391374  [Drop] [**] [1:2:3] b [**] [Priority: 3] {PROTO:006} 192.0.2.1:1 -> [::ffff:1.2.3.4]:2")
	f.Add("02/29/2024-23:59:60.999999 [would drop] [**] [1:2:3] \"q\" [**] [Classification: [x]] [Priority: 4294967295] {ICMP} fe80::1%eth0:255 -> ff02::1:0")
	p := &Parser{Zone: time.UTC, Year: 2024, Location: "fuzz"}
	f.Fuzz(func(t *testing.T, line string) {
		in := []byte(line)
		starts := p.Starts(in)
		if len(starts) == 0 || starts[0] != 0 {
			t.Fatalf("Starts = %v", starts)
		}
		for k := 1; k < len(starts); k++ {
			if starts[k] <= starts[k-1] || starts[k] >= len(in) {
				t.Fatalf("Starts = %v for %d bytes", starts, len(in))
			}
		}
		var ev record.Event
		rec := in[starts[len(starts)-1]:]
		if len(starts) > 1 && p.Parse(in, &ev) == nil && !MaybeGlued(&ev) {
			var glued record.Event
			if p.Parse(rec, &glued) == nil {
				t.Fatalf("a glued record at %v, but MaybeGlued is false for %q", starts, line)
			}
		}
		if err := p.Parse(rec, &ev); err != nil {
			return
		}
		got := ev.AppendJSON(nil)
		if !record.Valid(got) || !utf8.Valid(got) {
			t.Fatalf("invalid JSON %q", got)
		}
		want, err := record.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON %s\nMarshal    %s", got, want)
		}
		if record.Verbatim(rec) {
			if v := ev.AppendJSONVerbatim(nil); !bytes.Equal(v, got) {
				t.Fatalf("AppendJSONVerbatim %s\nAppendJSON         %s", v, got)
			}
		}
		if utf8.Valid(rec) && ev.FullLog != string(rec) {
			t.Fatalf("full_log %q, record %q", ev.FullLog, rec)
		}
		if ev.Alert == nil || ev.Timestamp == "" || (ev.SrcIP == "") != (ev.DestIP == "") {
			t.Fatalf("incomplete event %s", got)
		}
	})
}
