package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os/exec"
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group: postdrop and friends must not live on.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: killed: %w", s.Path, context.Cause(ctx))
	}
	msgText := strings.TrimSpace(out.String())
	if i := strings.IndexByte(msgText, '\n'); i >= 0 {
		msgText = msgText[:i]
	}
	if msgText != "" {
		return fmt.Errorf("%s: %w: %s", s.Path, err, msgText)
	}
	return fmt.Errorf("%s: %w", s.Path, err)
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
		return smtpErr(ctx, "MAIL FROM", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return smtpErr(ctx, "RCPT TO "+r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpErr(ctx, "DATA", err)
	}
	if _, err := w.Write(msg); err != nil { // the dot writer turns LF into CRLF
		return smtpErr(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil { // the server's answer to the final dot
		return smtpErr(ctx, "end of DATA", err)
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
