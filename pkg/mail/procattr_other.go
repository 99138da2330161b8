//go:build !linux

package mail

import "syscall"

// sendmailAttr puts sendmail in a process group of its own (so a timeout
// kills it with its children). Only Linux can have it killed when notify
// dies.
func sendmailAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
