// Package notify is the notify stage of quietwatch (placeholder until built).
package notify

import (
	"fmt"
	"io"
)

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "notify: not built yet")
	return 1
}
