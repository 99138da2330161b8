package record

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestAppendCompact(t *testing.T) {
	for _, in := range []string{
		`{}`, ` { "a" : [ 1 , 2 ] ,` + "\t\r\n" + `"b":"x y \" \\ z" } `,
		`{"a":"\\","b":" "}`, `{"k":{"x":[ ]},"s":"\u00e9 é"}`,
	} {
		checkCompact(t, []byte(in))
	}
	if got := string(AppendCompact([]byte("x"), []byte(`{"a":"b`))); got != `x{"a":"b` {
		t.Errorf("unclosed string: %q", got)
	}
}

// checkCompact: AppendCompact gives what encoding/json's Compact gives
// for every object ScanEvent accepts.
func checkCompact(t *testing.T, in []byte) {
	t.Helper()
	var f EventFields
	if ScanEvent(in, &f) != nil {
		return
	}
	var want bytes.Buffer
	if err := json.Compact(&want, in); err != nil {
		t.Fatalf("%q: %v", in, err)
	}
	if got := AppendCompact([]byte("p"), in); string(got) != "p"+want.String() {
		t.Errorf("AppendCompact(%q) = %q, want %q", in, got[1:], want.Bytes())
	}
}

func FuzzAppendCompact(f *testing.F) {
	f.Add([]byte(` { "a" : [ 1 , 2 ] , "b":"x \" y" } `))
	f.Fuzz(checkCompact)
}
