package notify

import (
	"bytes"
	"context"
	"testing"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// FuzzAlert: whatever an alert's strings hold (an attacker controls the
// Suricata message; a jq step can put anything anywhere), the dry run's
// mbox passes checkMbox: only notify's headers, 7-bit, short lines.
func FuzzAlert(f *testing.F) {
	f.Add("Suricata level 1 alert", "05/14/2020-22:10:17.391373  [**] x", "/var/log/suricata/fast.log", "vm", "192.0.2.241")
	f.Add("a\r\nBcc: v@x", "From x\r\n.\r\n\xff", "l\nX-Evil: 1", "h\r\nX: y", "::1\n")
	f.Fuzz(func(t *testing.T, desc, log, location, host, src string) {
		a := record.Alert{
			Event: record.Event{Timestamp: "2020-05-14T22:10:17.391373+0000", SrcIP: src, FullLog: log, Location: location},
			Rule:  &record.Rule{ID: "300011", Level: 10, Description: desc},
			ID:    "1.1", PreviousOutput: []string{log, desc},
		}
		line, err := record.Marshal(&a)
		if err != nil {
			t.Skip()
		}
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"notify", "--dry-run", "--to", "root", "--hostname", host},
			bytes.NewReader(append(line, '\n')), &stdout, &stderr, fixedEnv())
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if stdout.Len() == 0 {
			t.Fatal("no message")
		}
		checkMbox(t, stdout.Bytes())
	})
}
