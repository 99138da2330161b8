package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Transport hands a rendered message to an MTA. Send returns nil only once
// the MTA has accepted the message; it gives up when ctx is done.
type Transport interface {
	Send(ctx context.Context, from string, to []string, msg []byte) error
}

// Sendmail runs a sendmail-compatible program with "-t -i": recipients come
// from the headers, and a line holding a single dot does not end the
// input. No shell is involved. A program that outlives ctx is killed with
// its whole process group.
//
// The program dies with the caller: if the caller is killed (kill -9)
// while the program runs, the kernel kills the program (Linux's
// PR_SET_PDEATHSIG; elsewhere the program lives on),
// so it cannot go on and hand the message to the MTA after the caller has
// lost track of it: a caller that resends unconfirmed messages after a
// restart then sends it once. (A sendmail killed while it still reads the
// message queues nothing: Postfix's postdrop drops a message whose input
// ends early.) What remains is the moment between the MTA queueing the
// message and the caller learning it: sendmail's exit.
type Sendmail struct {
	Path string
}

// Send implements Transport.
func (s Sendmail) Send(ctx context.Context, _ string, _ []string, msg []byte) error {
	cmd := exec.CommandContext(ctx, s.Path, "-t", "-i")
	cmd.Stdin = bytes.NewReader(msg)
	var out capped
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = sendmailAttr()
	cmd.Cancel = func() error {
		// The group: postdrop and friends must not live on.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second
	// The parent-death signal comes when the thread that started the
	// program ends, not the process: keep this goroutine on its thread
	// (which never ends while it is locked and in use) until the program
	// has exited.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// Killed by the timeout: it may have been about to accept it.
		return fmt.Errorf("%s: killed: %w", s.Path, context.Cause(ctx))
	}
	msgText := strings.TrimSpace(out.String())
	if i := strings.IndexByte(msgText, '\n'); i >= 0 {
		msgText = msgText[:i]
	}
	if msgText != "" {
		err = fmt.Errorf("%s: %w: %s", s.Path, err, msgText)
	} else {
		err = fmt.Errorf("%s: %w", s.Path, err)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && permanentExit[exit.ExitCode()] {
		return &PermanentError{Err: err}
	}
	return err
}

// permanentExit are the sendmail exit statuses (sysexits.h) that say the
// message itself is refused, so that sending it again cannot help:
// EX_USAGE 64 (Postfix: no recipient in the headers, a malformed
// address), EX_DATAERR 65, EX_NOUSER 67, EX_NOHOST 68. Every other status
// is retried: EX_TEMPFAIL 75 by definition, and the ones that describe the
// mail system rather than the message (EX_UNAVAILABLE 69, EX_SOFTWARE 70,
// EX_OSERR 71, EX_OSFILE 72, EX_CANTCREAT 73, EX_IOERR 74, EX_PROTOCOL 76,
// EX_NOPERM 77, EX_CONFIG 78), which an admin can fix, as well as 1 and
// anything else unknown, and death by a signal.
var permanentExit = map[int]bool{64: true, 65: true, 67: true, 68: true}

// PermanentError is a failure that sending the same message again cannot
// fix: an SMTP 5xx reply to the envelope or the message, or a sendmail
// exit status in permanentExit.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err (from Transport.Send) is a permanent
// failure.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// capped keeps the first 4 KiB written to it (a program's diagnostics).
type capped struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := 4096 - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// SMTP speaks SMTP to Addr (host:port), normally the local Postfix.
//
// STARTTLS is used whenever the server offers it. The certificate is
// verified against the system's roots for any server but a loopback one:
// on loopback the traffic never leaves the machine, and Debian's Postfix
// presents a self-signed "snakeoil" certificate with no IP address, which
// could never verify, so there TLS is used unverified.
type SMTP struct {
	Addr  string
	Hello string // the name given in EHLO; "localhost" if empty
}

// Send implements Transport.
func (s SMTP) Send(ctx context.Context, from string, to []string, msg []byte) error {
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", s.Addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl) //nolint:errcheck // a dead conn fails the next call
	}
	// Closing the connection unblocks the client when ctx ends early.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return smtpErr(ctx, "greeting", err)
	}
	defer c.Close()
	hello := s.Hello
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return smtpErr(ctx, "EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := &tls.Config{ServerName: host, InsecureSkipVerify: isLoopback(host)} //nolint:gosec // see the type's comment
		if err := c.StartTLS(cfg); err != nil {
			return smtpErr(ctx, "STARTTLS", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return msgErr(ctx, "MAIL FROM", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return msgErr(ctx, "RCPT TO "+r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return msgErr(ctx, "DATA", err)
	}
	if _, err := w.Write(msg); err != nil { // the dot writer turns LF into CRLF
		return msgErr(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil { // the server's answer to the final dot
		return msgErr(ctx, "end of DATA", err)
	}
	// Accepted. A failing QUIT changes nothing.
	c.Quit() //nolint:errcheck
	return nil
}

func smtpErr(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("smtp %s: %w", step, context.Cause(ctx))
	}
	return fmt.Errorf("smtp %s: %w", step, err)
}

// msgErr is smtpErr for the steps about this message (envelope and data):
// a 5xx reply there refuses the message for good. A 5xx to the greeting,
// EHLO or STARTTLS is about the server or its configuration, not the
// message, and stays temporary: every message would get it.
func msgErr(ctx context.Context, step string, err error) error {
	err = smtpErr(ctx, step, err)
	var tp *textproto.Error
	if ctx.Err() == nil && errors.As(err, &tp) && tp.Code >= 500 {
		return &PermanentError{Err: err}
	}
	return err
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ErrUnavailable marks a transport that cannot work at all (a missing
// sendmail program).
var ErrUnavailable = errors.New("unavailable")

// CheckSendmail reports whether path names an executable file.
func CheckSendmail(path string) error {
	if _, err := exec.LookPath(path); err != nil {
		return fmt.Errorf("sendmail %s: %w: %w", path, ErrUnavailable, err)
	}
	return nil
}
