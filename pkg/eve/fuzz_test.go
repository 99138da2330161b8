package eve

import (
	"bytes"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// FuzzLine: any line gives valid JSON Lines (one event per alert counted),
// never a panic; a line that is one well-formed record passes through
// with its bytes before the appended keys kept (addresses aside).
func FuzzLine(f *testing.F) {
	f.Add([]byte(realAlert))
	f.Add([]byte(realAlert[:300] + realAlert))
	f.Add([]byte("\x00\x00" + realAlert))
	f.Add([]byte(`{"timestamp":"2020-05-14T22:10:17+0000","event_type":"alert","src_ip":"0000:0000:0000:0000:0000:0000:0000:0001","dest_ip":"::1","proto":"254","alert":{"signature_id":1,"signature":"\ud83d\ude00 \u0000"}}`))
	f.Add([]byte(`{"timestamp":"2020-05-14T22:10:17+0000","event_type":"alert","packet":"AAEC","alert":{"signature_id":1}}`))
	f.Add([]byte(`{"event_type":"flow"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.IndexByte(line, '\n') >= 0 {
			return
		}
		p := Parser{Location: "eve.json"}
		out, r := p.Line(nil, line)
		if strings.Contains(r.Msg, "\n") {
			t.Fatalf("diagnostic with a newline: %q", r.Msg)
		}
		lines := bytes.Split(out, []byte("\n"))
		if len(lines)-1 != r.Alerts || len(lines[len(lines)-1]) != 0 {
			t.Fatalf("%d alerts, output %q", r.Alerts, out)
		}
		for _, l := range lines[:r.Alerts] {
			var ev record.Event
			if !record.Valid(l) || record.Unmarshal(l, &ev) != nil {
				t.Fatalf("invalid event %q from %q", l, line)
			}
			if ev.FullLog == "" || ev.Alert == nil {
				t.Fatalf("event without full_log or alert: %q", l)
			}
		}
	})
}
