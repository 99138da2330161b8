package fastparse

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkStage runs the whole stage (read, parse, encode, write) on the
// synthetic log of pkg/fastlog's benchmark; an op is one line.
func BenchmarkStage(b *testing.B) {
	one, err := os.ReadFile(filepath.Join("..", "fastlog", "testdata", "bench.log"))
	if err != nil {
		b.Fatal(err)
	}
	lines := bytes.SplitAfter(one, []byte("\n"))
	lines = lines[:len(lines)-1]
	var input bytes.Buffer
	for i := 0; i < b.N; i++ {
		input.Write(lines[i%len(lines)])
	}
	b.SetBytes(int64(len(one) / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"fastparse", "--tz", "UTC"}, &input, io.Discard, &stderr, &env{}); code != 0 {
		b.Fatalf("exit %d: %s", code, stderr.String())
	}
}
