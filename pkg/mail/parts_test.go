package mail

import (
	"fmt"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// TestCutAlert: cutting keeps whole characters and counts what it drops.
func TestCutAlert(t *testing.T) {
	a := &record.Alert{Event: record.Event{FullLog: strings.Repeat("é", 10), Location: strings.Repeat("x", 2000)},
		Rule: &record.Rule{ID: "1", Description: "d"}, PreviousOutput: []string{"abc", "def"}}
	c := cutAlert(a, 5)
	if c.FullLog != "éé" || len(c.Location) != maxCutField || a.FullLog != strings.Repeat("é", 10) {
		t.Fatalf("cut %q %d; original changed: %v", c.FullLog, len(c.Location), a.FullLog != strings.Repeat("é", 10))
	}
	// 16 bytes of full_log, 2000-1024 of location, "bc" and "def".
	want := fmt.Sprintf("[quietwatch: %d bytes of this alert not shown: it is too large for one mail]", 16+2000-maxCutField+2+3)
	if len(c.PreviousOutput) != 2 || c.PreviousOutput[0] != "a" || c.PreviousOutput[1] != want {
		t.Errorf("previous_output %q, want %q", c.PreviousOutput, want)
	}
}
