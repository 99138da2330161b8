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
}

// TestSendmailHangKilled: a sendmail that hangs (with a child of its own)
// is killed with its process group when the context ends.
func TestSendmailHangKilled(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := script(t, "sleep 3600 &\necho $! > "+pidFile+"\nwait\n")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := (Sendmail{Path: p}).Send(ctx, "", nil, []byte("x\n"))
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Send returned after %v", d)
	}
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

func newSMTPServer(t *testing.T, startTLS bool) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, cert: selfSigned(t), sessions: make(chan smtpSession, 1)}
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
			if offerTLS && !sess.tls {
				w("250-test")
				w("250 STARTTLS")
			} else {
				w("250 test")
			}
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
			w("250 ok")
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
			w("250 queued as 1")
			s.sessions <- sess
		case cmd == "QUIT":
			w("221 bye")
			return
		default:
			w("502 unknown")
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
			time.Sleep(time.Minute)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := (SMTP{Addr: ln.Addr().String()}).Send(ctx, "a@b", []string{"root"}, []byte("x\n")); err == nil {
		t.Fatal("no error from a hung server")
	}
}
