// Package correlate is the correlate stage of quietwatch (placeholder until built).
package correlate

import (
	"fmt"
	"io"
)

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "correlate: not built yet")
	return 1
}
