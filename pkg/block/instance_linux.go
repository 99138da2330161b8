//go:build linux

package block

import (
	"net"
	"sync"
)

// lockAbstract binds the abstract Unix socket @name: only one process in
// a network namespace can, and the kernel unbinds it when that process
// ends, however it ends.
func lockAbstract(name string) (func(), error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@" + name, Net: "unix"})
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { l.Close() }) }, nil
}
