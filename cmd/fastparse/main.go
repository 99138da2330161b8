// Command fastparse is a quietwatch stage; see pkg/fastparse and README.md.
package main

import (
	"os"

	"github.com/quietwatch/quietwatch/pkg/fastparse"
)

func main() { os.Exit(fastparse.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
