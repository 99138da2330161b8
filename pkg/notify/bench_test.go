package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

// blockedMTA never accepts: sending is paused for the whole run.
type blockedMTA struct{}

func (blockedMTA) Send(ctx context.Context, _ string, _ []string, _ []byte) error {
	<-ctx.Done()
	return ctx.Err()
}

// BenchmarkIntake measures how fast notify reads alerts from stdin while
// the MTA takes nothing: every alert is selected (level 10), journaled in
// the spool and grouped; the run ends with one spooled message and exit 75.
// alerts/s is the figure that matters (the pipe must never wait for
// notify).
func BenchmarkIntake(b *testing.B) {
	n := 50000
	var in bytes.Buffer
	if f := os.Getenv("NOTIFY_BENCH_INPUT"); f != "" { // e.g. correlate's output on genfastlog
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		in.Write(data)
		n = bytes.Count(data, []byte("\n"))
	} else {
		for i := range n {
			in.WriteString(alertLine(fmt.Sprintf("1589494217.%d", i), fmt.Sprintf("t%d", i), 10))
		}
	}
	b.SetBytes(int64(in.Len()))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		dir, err := os.MkdirTemp(b.TempDir(), "spool")
		if err != nil {
			b.Fatal(err)
		}
		code := run(context.Background(), []string{"notify", "--to", "root", "--spool", dir, "--exit-wait", "0s", "--min-level", "0"},
			bytes.NewReader(in.Bytes()), io.Discard, io.Discard, &env{transport: blockedMTA{}})
		if code != 75 {
			b.Fatalf("exit %d", code)
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "alerts/s")
}
