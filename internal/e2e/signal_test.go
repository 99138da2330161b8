//go:build linux

package e2e

import "syscall"

const sigterm = syscall.SIGTERM

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
