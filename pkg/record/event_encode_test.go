package record_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/quietwatch/quietwatch/pkg/fastlog"
	"github.com/quietwatch/quietwatch/pkg/record"
)

func corpusLines(t testing.TB) []string {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "corpus", "fastlog", "real-lines.txt"))
	if err != nil {
		t.Fatalf("shared corpus: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// TestAppendJSONCorpus: for the event of every real fast.log line,
// AppendJSON writes exactly what Marshal writes.
func TestAppendJSONCorpus(t *testing.T) {
	p := &fastlog.Parser{Zone: time.UTC, Year: 2024, Location: "/var/log/suricata/fast.log"}
	buf := []byte("keep:")
	for i, line := range corpusLines(t) {
		var ev record.Event
		if err := p.Parse([]byte(line), &ev); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		want, err := record.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		buf = ev.AppendJSON(buf[:5])
		if string(buf[:5]) != "keep:" || !bytes.Equal(buf[5:], want) {
			t.Errorf("line %d:\nAppendJSON %s\nMarshal    %s", i+1, buf, want)
		}
	}
}

func TestAppendJSONCases(t *testing.T) {
	one, big, minus, zero := 1, 65535, -1, 0
	for _, ev := range []record.Event{
		{},
		{Timestamp: "t", SrcPort: &one, ICMPCode: &big, Alert: &record.EventAlert{}},
		{Timestamp: "a\x7fb\u2028c<&>\x00\x1f\"\\/\r\n\t", FullLog: "ünï\U0001F600"},
		{Alert: &record.EventAlert{Action: "blocked", FastAction: "Drop", GID: 1, SignatureID: 2, Rev: 3, Signature: "s", Category: "c", Severity: &minus}},
		{Alert: &record.EventAlert{Action: "allowed", Severity: &zero}},
	} {
		want, err := record.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("AppendJSON %s\nMarshal    %s", got, want)
		}
	}
	// Invalid UTF-8: Marshal copies it through, AppendJSON keeps the
	// output valid with U+FFFD.
	ev := record.Event{Timestamp: "bad\xff\xfe"}
	if got := string(ev.AppendJSON(nil)); got != "{\"timestamp\":\"bad\ufffd\ufffd\"}" {
		t.Errorf("invalid UTF-8: %q", got)
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	p := 80
	ev := record.Event{Timestamp: "2020-05-14T22:10:17.391373+0000", SrcIP: "192.0.2.1", SrcPort: &p,
		Alert: &record.EventAlert{Signature: "ET SCAN caf\u00e9 \"x\""}, FullLog: strings.Repeat("x", 300)}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = ev.AppendJSON(buf[:0]) }); n != 0 {
		t.Errorf("AppendJSON allocates %v times", n)
	}
}

// FuzzAppendJSON: for any strings, AppendJSON gives valid JSON, and for
// valid UTF-8 exactly Marshal's bytes.
func FuzzAppendJSON(f *testing.F) {
	f.Add("2020-05-14T22:10:17.391373+0000", "ET SCAN \"x\" \\ <&>", "\x00\x7f\u2028")
	f.Add("", "caf\xe9", "\xff")
	f.Fuzz(func(t *testing.T, ts, sig, full string) {
		n := len(sig)
		ev := record.Event{Timestamp: ts, SrcPort: &n, FullLog: full,
			Alert: &record.EventAlert{Signature: sig, Category: full}}
		got := ev.AppendJSON(nil)
		if !record.Valid(got) || !utf8.Valid(got) {
			t.Fatalf("invalid JSON: %q", got)
		}
		if record.Verbatim(ts) && record.Verbatim(sig) && record.Verbatim(full) {
			if v := ev.AppendJSONVerbatim(nil); !bytes.Equal(v, got) {
				t.Fatalf("AppendJSONVerbatim %q\nAppendJSON         %q", v, got)
			}
		}
		verbatim := true
		for _, c := range []byte(ts + sig + full) {
			if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
				verbatim = false
			}
		}
		if record.Verbatim(ts+sig+full) != verbatim {
			t.Fatalf("Verbatim(%q) = %v", ts+sig+full, !verbatim)
		}
		if !utf8.ValidString(ts) || !utf8.ValidString(sig) || !utf8.ValidString(full) {
			return
		}
		want, err := record.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON %q\nMarshal    %q", got, want)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	lines := corpusLines(b)
	evs := make([]record.Event, len(lines))
	for i, line := range lines {
		// a parser of its own for each: its events point into its buffers
		p := &fastlog.Parser{Zone: time.UTC, Year: 2024, Location: "/var/log/suricata/fast.log"}
		if err := p.Parse([]byte(line), &evs[i]); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = evs[i%len(evs)].AppendJSON(buf[:0])
	}
}

func BenchmarkMarshal(b *testing.B) {
	p := 35004
	ev := record.Event{Timestamp: "2020-05-14T22:10:17.391373+0000", SrcIP: "192.0.2.1", SrcPort: &p,
		Alert: &record.EventAlert{Signature: "ET SCAN Possible Nmap User-Agent Observed"}, FullLog: strings.Repeat("x", 200)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := record.Marshal(&ev); err != nil {
			b.Fatal(err)
		}
	}
}
