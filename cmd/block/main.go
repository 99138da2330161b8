// Command block is a quietwatch stage; see pkg/block and README.md.
package main

import (
	"os"

	"github.com/quietwatch/quietwatch/pkg/block"
)

func main() { os.Exit(block.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
