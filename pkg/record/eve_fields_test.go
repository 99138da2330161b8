package record

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

const eveSample = `{"timestamp":"2020-05-14T22:10:17.391373+0000","flow_id":1480523408523494,"event_type":"alert","src_ip":"198.51.100.241","src_port":35004,"dest_ip":"2001:0db8:0000:0000:0000:0000:0000:0001","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":1,"metadata":{"a":["b"]}},"http":{"status":404,"length":1.5e3,"x":[true,false,null,-0.5,[]]},"flow":{"src_ip":"x","start":"2020"}}`

func TestScanEVE(t *testing.T) {
	var f EVEFields
	if err := ScanEVE([]byte(eveSample), &f); err != nil {
		t.Fatal(err)
	}
	if string(f.EventType) != "alert" || string(f.SrcIP) != "198.51.100.241" || f.SrcPort != 35004 || f.Has&HasSrcPort == 0 ||
		string(f.DestIP) != "2001:0db8:0000:0000:0000:0000:0000:0001" || f.SID != 2024364 || f.Severity != 1 ||
		string(f.Signature) != "ET SCAN Possible Nmap User-Agent Observed" || !f.Verbatim || f.End != len(eveSample)-1 {
		t.Errorf("%+v", f)
	}
	if got := eveSample[f.DestIPSpan[0]:f.DestIPSpan[1]]; got != `"2001:0db8:0000:0000:0000:0000:0000:0001"` {
		t.Errorf("span %s", got)
	}
	// escapes take the careful scanner and are decoded
	esc := bytes.Replace([]byte(eveSample), []byte(`"ET SCAN`), []byte(`"\u0045T\/\"SCAN\ud83d\ude00`), 1)
	if err := ScanEVE(esc, &f); err != nil {
		t.Fatal(err)
	}
	if string(f.Signature) != "ET/\"SCAN\U0001F600 Possible Nmap User-Agent Observed" || f.Verbatim {
		t.Errorf("%q", f.Signature)
	}
}

func TestScanEVEErrors(t *testing.T) {
	for _, in := range []string{``, ` `, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":tru}`, `{} {}`, `{"a":[1,]}`, `{"a":-}`, `{"a":1e}`} {
		var f EVEFields
		for _, fast := range []bool{true, false} {
			err := scanEVE([]byte(in), &f, fast)
			if _, ok := err.(*EVEError); !ok {
				t.Errorf("%q (fast %v): %v", in, fast, err)
			}
		}
	}
}

// FuzzScanEVE: the plain and the careful scanner agree, and agree with
// encoding/json on what is well-formed (jsoniter's Valid takes "{}0").
func FuzzScanEVE(f *testing.F) {
	f.Add([]byte(eveSample))
	f.Add([]byte(`{"event_type":"alert","alert":{"gid":1,"gid":"x"},"src_ip":1}`))
	f.Add([]byte(`{"a":[[[{"b":-1.5E+3}]]],"proto":"\u0041"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var a, b EVEFields
		ea := scanEVE(line, &a, true)
		eb := scanEVE(line, &b, false)
		if (ea == nil) != (eb == nil) || (ea == nil) != (json.Valid(line) && bytes.HasPrefix(bytes.TrimLeft(line, " \t\r\n"), []byte("{"))) {
			t.Fatalf("fast %v, careful %v, json.Valid %v", ea, eb, json.Valid(line))
		}
		if ea != nil {
			return
		}
		a.scratch, b.scratch = nil, nil
		b.Verbatim = a.Verbatim
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("fast %+v\ncareful %+v", a, b)
		}
	})
}

func BenchmarkScanEVE(b *testing.B) {
	line := []byte(eveSample)
	var f EVEFields
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		ScanEVE(line, &f)
	}
}

// TestEscapeFreeASCII: the one-pass check answers as escapeFree and
// isASCII do, for every length around the 8- and 32-byte steps and each
// kind of byte at each place.
func TestEscapeFreeASCII(t *testing.T) {
	for n := 0; n <= 70; n++ {
		for pos := 0; pos < n; pos++ {
			for _, c := range []byte{'a', '\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff, '"'} {
				b := bytes.Repeat([]byte{'x'}, n)
				b[pos] = c
				free, ascii := escapeFreeASCII(b)
				if free != escapeFree(b) || ascii != isASCII(b) {
					t.Fatalf("%q: escapeFreeASCII = %v, %v; escapeFree %v, isASCII %v", b, free, ascii, escapeFree(b), isASCII(b))
				}
			}
		}
	}
}
