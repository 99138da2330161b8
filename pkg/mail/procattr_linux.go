//go:build linux

package mail

import "syscall"

// sendmailAttr puts sendmail in a process group of its own (so a timeout
// kills it with its children) that the kernel kills when notify dies.
func sendmailAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
