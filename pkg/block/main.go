// Package block is the block stage of quietwatch (placeholder until built).
package block

import (
	"fmt"
	"io"
)

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "block: not built yet")
	return 1
}
