// Package fastparse is the fastparse stage of quietwatch (placeholder until built).
package fastparse

import (
	"fmt"
	"io"
)

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "fastparse: not built yet")
	return 1
}
