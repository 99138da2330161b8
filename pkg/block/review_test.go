package block

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// A user's filter may change fields block does not use: an alert whose
// src_port is a string and whose alert is not an object still bans.
func TestForeignFieldTypes(t *testing.T) {
	in := `{"src_ip":"192.0.2.7","src_port":"80","alert":"weird","timestamp":5,"rule":{"id":"300011","level":10,"groups":"x","description":7},"id":"a.1"}` + "\n"
	code, out, errOut := runBlock(t, testEnv(), strings.NewReader(in), "--backend", "dry-run", "--state=", "--timeout", "1s")
	if code != 0 || !strings.Contains(out, `"action":"add","ip":"192.0.2.7"`) || !strings.Contains(out, `"alert_id":"a.1","rule_id":"300011"`) || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The fields block uses must still have their types.
	in = `{"src_ip":"192.0.2.8","rule":{"id":"300011","level":"10"},"id":"a.2"}` + "\n"
	code, out, errOut = runBlock(t, testEnv(), strings.NewReader(in), "--backend", "dry-run", "--state=", "--timeout", "1s")
	if code != 0 || out != "" || !strings.Contains(errOut, "block: stdin:1: not an alert, skipped") {
		t.Fatalf("bad level: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// A read error on stdin (not EOF) is a runtime failure: exit 1 after the
// alerts read so far are decided; their bans stay.
func TestStdinReadError(t *testing.T) {
	in := io.MultiReader(strings.NewReader(alertLine("192.0.2.9", 10, "a")), iotest.ErrReader(errors.New("input/output error")))
	code, out, errOut := runBlock(t, testEnv(), in, "--backend", "dry-run", "--state=", "--timeout", "1h")
	if code != 1 || !strings.Contains(out, `"action":"add","ip":"192.0.2.9"`) || strings.Contains(out, `"delete"`) || !strings.Contains(errOut, "block: stdin: input/output error\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
