//go:build !linux

package banstate

import "os"

func unmapFile(*os.File) {}
