package mail

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sendmail")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSendmailAccepts(t *testing.T) {
	out := filepath.Join(t.TempDir(), "msg")
	p := script(t, `[ "$*" = "-t -i" ] || exit 64`+"\ncat > "+out+"\n")
	msg := []byte("To: root\nSubject: x\n\n.\nbody\n")
	if err := (Sendmail{Path: p}).Send(context.Background(), "", nil, msg); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if string(got) != string(msg) {
		t.Errorf("sendmail got %q", got)
	}
}

func TestSendmailFails(t *testing.T) {
	p := script(t, "cat >/dev/null\necho 'postdrop: warning: unable to look up public/pickup' >&2\nexit 75\n")
	err := (Sendmail{Path: p}).Send(context.Background(), "", nil, []byte("x\n"))
	if err == nil || !strings.Contains(err.Error(), "exit status 75") || !strings.Contains(err.Error(), "postdrop: warning") {
		t.Fatalf("err = %v", err)
	}
	if IsPermanent(err) {
		t.Errorf("exit 75 (EX_TEMPFAIL) taken as permanent")
	}
}

// TestSendmailPermanent: the exit statuses that refuse the message itself
// are permanent; the others (the mail system's trouble) are retried.
func TestSendmailPermanent(t *testing.T) {
	for code, want := range map[int]bool{64: true, 65: true, 67: true, 68: true,
		1: false, 69: false, 70: false, 71: false, 73: false, 74: false, 75: false, 77: false, 78: false} {
		p := script(t, "cat >/dev/null\necho 'sendmail: fatal: no' >&2\nexit "+strconv.Itoa(code)+"\n")
		err := (Sendmail{Path: p}).Send(context.Background(), "", nil, []byte("x\n"))
		if err == nil || !strings.Contains(err.Error(), "exit status "+strconv.Itoa(code)) {
			t.Fatalf("exit %d: err = %v", code, err)
		}
		if IsPermanent(err) != want {
			t.Errorf("exit %d: permanent %v, want %v", code, IsPermanent(err), want)
		}
	}
	// Killed by a signal (not the timeout): retried.
	p := script(t, "cat >/dev/null\nkill -9 $$\n")
	if err := (Sendmail{Path: p}).Send(context.Background(), "", nil, []byte("x\n")); err == nil || IsPermanent(err) {
		t.Errorf("killed sendmail: err = %v, permanent %v", err, IsPermanent(err))
	}
}

// TestSendmailHangKilled: a sendmail that hangs (with a child of its own)
// is killed with its process group when the context ends.
func TestSendmailHangKilled(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := script(t, "sleep 3600 &\necho $! > "+pidFile+"\nwait\n")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := (Sendmail{Path: p}).Send(ctx, "", nil, []byte("x\n"))
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v", err)
	}
	if IsPermanent(err) {
		t.Error("a sendmail killed by the timeout taken as a permanent failure")
	}
	// The child is no child of ours: nothing to wait on but its pid, so
	// poll (with a deadline only against a hang; nothing is timed).
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the hung sendmail's child %d still lives", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCheckSendmail(t *testing.T) {
	if err := CheckSendmail("/nonexistent/sendmail"); err == nil {
		t.Fatal("a missing sendmail passed")
	}
	if err := CheckSendmail(script(t, "exit 0\n")); err != nil {
		t.Fatal(err)
	}
}

// smtpServer is a tiny SMTP server on loopback that offers STARTTLS with a
// self-signed certificate (as Debian's Postfix does) and records sessions.
type smtpServer struct {
	ln       net.Listener
	cert     tls.Certificate
	sessions chan smtpSession
	// replies overrides the answer to a command ("EHLO", "RCPT",
	// "DATA" for the final dot); the default accepts.
	replies map[string]string
}

type smtpSession struct {
	tls      bool
	from     string
	rcpt     []string
	data     string
	greeting string
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "snakeoil"},
		DNSNames: []string{"snakeoil"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func newSMTPServer(t *testing.T, startTLS bool, replies ...string) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, cert: selfSigned(t), sessions: make(chan smtpSession, 1), replies: map[string]string{}}
	for i := 0; i+1 < len(replies); i += 2 {
		s.replies[replies[i]] = replies[i+1]
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s.serve(c, startTLS)
	}()
	return s
}

func (s *smtpServer) serve(c net.Conn, offerTLS bool) {
	var sess smtpSession
	r := bufio.NewReader(c)
	w := func(line string) { c.Write([]byte(line + "\r\n")) } //nolint:errcheck
	w("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			sess.greeting = line
			if r, ok := s.replies["EHLO"]; ok {
				w(r)
			} else if offerTLS && !sess.tls {
				w("250-test")
				w("250 STARTTLS")
			} else {
				w("250 test")
			}
		case strings.HasPrefix(cmd, "HELO"): // net/smtp's fallback after a failed EHLO
			w(s.reply("EHLO", "250 test"))
		case cmd == "STARTTLS":
			w("220 go ahead")
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{s.cert}})
			if err := tc.Handshake(); err != nil {
				return
			}
			c, r, sess.tls = tc, bufio.NewReader(tc), true
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			sess.from = line[len("MAIL FROM:"):]
			w("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			sess.rcpt = append(sess.rcpt, line[len("RCPT TO:"):])
			w(s.reply("RCPT", "250 ok"))
		case cmd == "DATA":
			w("354 go on")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			sess.data = data.String()
			w(s.reply("DATA", "250 queued as 1"))
			s.sessions <- sess
		case cmd == "QUIT":
			w("221 bye")
			return
		default:
			w("502 unknown")
		}
	}
}

func (s *smtpServer) reply(cmd, def string) string {
	if r, ok := s.replies[cmd]; ok {
		return r
	}
	return def
}

// TestSMTPPermanent: a 5xx reply to the envelope or the message is a
// permanent failure; a 4xx, or a 5xx to EHLO (the server's state, not the
// message's), is not.
func TestSMTPPermanent(t *testing.T) {
	for _, c := range []struct {
		cmd, reply string
		permanent  bool
	}{
		{"DATA", "552 5.3.4 Message size exceeds fixed limit", true},
		{"RCPT", "550 5.1.1 <root>: Recipient address rejected: User unknown", true},
		{"DATA", "451 4.3.0 Error: queue file write error", false},
		{"RCPT", "450 4.2.0 <root>: Recipient address rejected: greylisted", false},
		{"EHLO", "554 5.7.1 no service", false},
	} {
		s := newSMTPServer(t, false, c.cmd, c.reply)
		err := (SMTP{Addr: s.ln.Addr().String()}).Send(context.Background(), "a@b", []string{"root"}, []byte("x\n"))
		if err == nil || !strings.Contains(err.Error(), c.reply[:3]) {
			t.Fatalf("%s %s: err = %v", c.cmd, c.reply, err)
		}
		if IsPermanent(err) != c.permanent {
			t.Errorf("%s %s: permanent %v, want %v", c.cmd, c.reply, IsPermanent(err), c.permanent)
		}
	}
}

// TestSMTPStartTLSLoopback: on loopback, STARTTLS is used even though the
// certificate cannot verify; the message arrives with CRLF line ends and
// dot-stuffing.
func TestSMTPStartTLSLoopback(t *testing.T) {
	s := newSMTPServer(t, true)
	msg := []byte("To: root\nSubject: x\n\n.\nbody\n")
	err := (SMTP{Addr: s.ln.Addr().String(), Hello: "vm"}).Send(context.Background(), "quietwatch@vm", []string{"root", "a@b"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	sess := <-s.sessions
	if !sess.tls {
		t.Error("STARTTLS not used")
	}
	if sess.from != "<quietwatch@vm>" || strings.Join(sess.rcpt, ",") != "<root>,<a@b>" || sess.greeting != "EHLO vm" {
		t.Errorf("session %+v", sess)
	}
	if want := "To: root\r\nSubject: x\r\n\r\n..\r\nbody\r\n"; sess.data != want {
		t.Errorf("data %q, want %q", sess.data, want)
	}
}

func TestSMTPPlain(t *testing.T) {
	s := newSMTPServer(t, false)
	if err := (SMTP{Addr: s.ln.Addr().String()}).Send(context.Background(), "a@b", []string{"root"}, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	if sess := <-s.sessions; sess.tls {
		t.Error("TLS without STARTTLS?")
	}
}

func TestSMTPRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := (SMTP{Addr: addr}).Send(context.Background(), "a@b", []string{"root"}, []byte("x\n")); err == nil {
		t.Fatal("no error from a closed port")
	}
}

// TestSMTPHungServer: a server that accepts and says nothing is given up
// when the context ends.
func TestSMTPHungServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c) //nolint:errcheck // says nothing until the client gives up
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := (SMTP{Addr: ln.Addr().String()}).Send(ctx, "a@b", []string{"root"}, []byte("x\n")); err == nil {
		t.Fatal("no error from a hung server")
	}
}
