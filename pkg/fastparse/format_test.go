package fastparse

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const eveAlert = `{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"198.51.100.241","src_port":35004,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN","category":"Web Application Attack","severity":1}}`

func runFastparse(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"fastparse"}, args...), strings.NewReader(stdin), &out, &errb, &env{})
	return code, out.String(), errb.String()
}

// TestEVEBigRecord: an alert record of several megabytes (a payload) is
// read whole with the default limits, on stdin, the format found by its
// first byte.
func TestEVEBigRecord(t *testing.T) {
	big := strings.Replace(eveAlert, `"alert":`, `"payload_printable":"`+strings.Repeat("GET / HTTP/1.1\\r\\n", 400000)+`","alert":`, 1)
	if len(big) < 6<<20 {
		t.Fatalf("record of %d bytes only", len(big))
	}
	code, stdout, stderr := runFastparse(t, "\n"+big+"\n"+eveAlert+"\n")
	if code != 0 || strings.Count(stdout, "\n") != 2 || stderr != "fastparse: stdin:1: blank line: skipped\nfastparse: 1 line skipped\n" {
		t.Fatalf("exit %d, %d events, stderr %q", code, strings.Count(stdout, "\n"), stderr)
	}
}

// TestAutoFormatPerFile: with --format auto each FILE is read in its own
// format.
func TestAutoFormatPerFile(t *testing.T) {
	dir := t.TempDir()
	fast := filepath.Join(dir, "fast.log")
	eve := filepath.Join(dir, "eve.json")
	if err := os.WriteFile(fast, []byte(seqLine(7)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(eve, []byte("\x00\x00\n"+eveAlert+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runFastparse(t, "", "--tz", "UTC", fast, eve)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if code != 0 || len(lines) != 2 || !strings.Contains(lines[0], `"location":"`+fast+`"`) || !strings.Contains(lines[1], `"location":"`+eve+`"`) {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if want := "fastparse: " + eve + ":1: blank line (2 bytes of spaces, tabs or NULs): skipped\nfastparse: 1 line skipped\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	// --format fast reads eve.json as fast.log: every record is bad.
	code, _, stderr = runFastparse(t, "", "--format", "fast", eve)
	if code != 0 || !strings.Contains(stderr, eve+":2: ") {
		t.Errorf("--format fast on eve.json: exit %d, stderr %q", code, stderr)
	}
}

func TestFormatUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--format", "json"},
		{"-f", "a/eve.json", "-f", "b/eve.json"},
	} {
		code, _, stderr := runFastparse(t, "", args...)
		if code != 2 || !strings.HasPrefix(stderr, "fastparse: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// TestOtherTypesOneLine: the summary of eve.json records that are not
// alerts is one stderr line even when an event_type holds a line break or
// another control character (written with an escape in the JSON): such a
// name is shown quoted, the ordinary ones as they are.
func TestOtherTypesOneLine(t *testing.T) {
	in := `{"event_type":"flow"}` + "\n" +
		`{"event_type":"fl\now"}` + "\n" +
		`{"event_type":"a\r\u0000b"}` + "\n" +
		`{"event_type":"dns"}` + "\n" + `{"event_type":"dns"}` + "\n"
	code, stdout, stderr := runFastparse(t, in, "--format", "eve")
	want := `fastparse: 5 eve.json records not alerts, skipped (dns 2, "a\r\x00b" 1, "fl\now" 1, flow 1)` + "\n"
	if code != 0 || stdout != "" || stderr != want {
		t.Fatalf("exit %d, stdout %q, stderr\n%q, want\n%q", code, stdout, stderr, want)
	}
}
