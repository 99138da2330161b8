package record

import "testing"

// appendAlert is the alert for event with the rule r as it is.
func appendAlert(dst, event []byte, r *Rule, sec int64, seq uint64, prev [][]byte, host string) ([]byte, error) {
	return EncodeRule(r).AppendAlert(dst, event, r.FiredTimes, sec, seq, prev, host)
}

func TestAppendAlert(t *testing.T) {
	mail := true
	r := &Rule{ID: "300012", Level: 11, Description: "Many high-severity Suricata alerts", Groups: []string{"snort-fast"}, Frequency: 5, Timeframe: 120, FiredTimes: 1, Mail: &mail}
	ev := []byte(`{"timestamp":"2020-05-14T22:10:17.391373+0000","src_ip":"192.0.2.241", "jq_extra" : {"k":[1, 2]}}` + "\n")
	got, err := appendAlert([]byte("prefix:"), ev, r, 1589494218, 7, [][]byte{[]byte("b"), []byte("a \"q\"")}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := `prefix:{"timestamp":"2020-05-14T22:10:17.391373+0000","src_ip":"192.0.2.241", "jq_extra" : {"k":[1, 2]},"rule":{"id":"300012","level":11,"description":"Many high-severity Suricata alerts","groups":["snort-fast"],"frequency":5,"timeframe":120,"firedtimes":1,"mail":true},"id":"1589494218.7","previous_output":["b","a \"q\""]}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// The appended part is what encoding an Alert gives.
	var a Alert
	if err := Unmarshal(got[len("prefix:"):], &a); err != nil {
		t.Fatal(err)
	}
	enc, _ := Marshal(a.Rule)
	var buf []byte
	if s := string(EncodeRule(r).appendRule(buf, r.FiredTimes)); s != string(enc) {
		t.Errorf("appendRule %s\n Marshal   %s", s, enc)
	}
	got, _ = appendAlert(nil, []byte(`{}`), &Rule{ID: "1", Level: 3, Description: "d"}, 5, 1, nil, "web1")
	if want := `{"rule":{"id":"1","level":3,"description":"d"},"id":"5.1","hostname":"web1"}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func BenchmarkAppendAlert(b *testing.B) {
	r := &Rule{ID: "300012", Level: 11, Description: "Many high-severity Suricata alerts", Groups: []string{"snort-fast"}, Frequency: 5, Timeframe: 120, FiredTimes: 1}
	var buf []byte
	e := EncodeRule(r)
	for b.Loop() {
		buf, _ = e.AppendAlert(buf[:0], benchLine, r.FiredTimes, 1589494218, 7, nil, "")
	}
}
