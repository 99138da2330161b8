// Command notify is a quietwatch stage; see pkg/notify and README.md.
package main

import (
	"os"

	"github.com/quietwatch/quietwatch/pkg/notify"
)

func main() { os.Exit(notify.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
