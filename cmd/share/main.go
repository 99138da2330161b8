// Command share is a quietwatch stage; see pkg/share and README.md.
package main

import (
	"os"

	"github.com/quietwatch/quietwatch/pkg/share"
)

func main() { os.Exit(share.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
