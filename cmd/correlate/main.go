// Command correlate is a quietwatch stage; see pkg/correlate and README.md.
package main

import (
	"os"

	"github.com/quietwatch/quietwatch/pkg/correlate"
)

func main() { os.Exit(correlate.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
