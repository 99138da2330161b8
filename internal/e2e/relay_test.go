//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// TestSetupRelayRelays starts a second, real Postfix from a copy of the
// system's configuration, as Debian's "Local only" leaves it
// (default_transport and relay_transport = error), inside a network
// namespace; runs setup-relay on it; and has it relay to a smarthost
// written here that demands STARTTLS before AUTH and AUTH before MAIL. The
// test mail of setup-relay --check must arrive there, and --check must fail
// when the smarthost refuses it. The system Postfix is left alone.
func TestSetupRelayRelays(t *testing.T) {
	hosttest.Require(t, "ip", "postfix", "postconf", "postmap", "postalias", "/usr/sbin/sendmail")
	lab := hosttest.NewLab(t, "qwr")
	dir := shareableTempDir(t)

	ca, srvCert := testCA(t, "smtp.relay.example", lab.Adm.IPv4.String())
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, ca, 0o644)
	sh := &smarthost{user: "postmaster@mail.example.com", pass: "s3cret pass:1",
		tls: &tls.Config{Certificates: []tls.Certificate{srvCert}}}
	ln := listenInNetns(t, lab.Adm.NS, net.JoinHostPort(lab.Adm.IPv4.String(), "587"))
	go sh.serve(ln)
	t.Cleanup(func() { ln.Close(); sh.closeAll() })

	pass := filepath.Join(dir, "pass")
	writeFile(t, pass, []byte(sh.pass+"\n"), 0o600)
	setupRelay := func(h hosttest.Host, pf *postfixInstance, args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := h.Command(ctx, script("setup-relay"), append([]string{"--config-dir", pf.conf}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		return exitCode(cmd.Run()), stderr.String()
	}

	t.Run("from internet site", func(t *testing.T) {
		// Debian's "Internet site": no error transports, listening on every
		// interface; setup-relay must restart Postfix for inet_interfaces.
		pf := startPostfix(t, lab.Atk, filepath.Join(dir, "internet-site"), "smtp.relay.example", lab.Adm.IPv4.String(),
			"inet_interfaces=all", "default_transport=smtp", "relay_transport=relay")
		if code, out := setupRelay(lab.Atk, pf, "--relay", "smtp.relay.example", "--user", sh.user, "--password-file", pass,
			"--admin", "site@example.com", "--aliases", pf.aliases, "--ca-file", caFile); code != 0 {
			t.Fatalf("setup-relay: exit %d\n%s", code, out)
		}
		if code, out := setupRelay(lab.Atk, pf, "--check", "--timeout", "20"); code != 0 {
			t.Fatalf("--check: exit %d, want 0\n%s\n%s", code, out, pf.log())
		}
		sh.wantMail(t, "site@example.com", "This is a test mail from setup-relay --check")
		listen := lab.Atk.Run(t, "ss", "-ltnH", "sport = :25")
		if strings.Contains(listen, lab.Atk.IPv4.String()) || strings.Contains(listen, "0.0.0.0:25") || strings.Contains(listen, "*:25") {
			t.Errorf("Postfix still listens beyond loopback after setup-relay:\n%s", listen)
		}
	})

	pf := startPostfix(t, lab.Srv, filepath.Join(dir, "local-only"), "smtp.relay.example", lab.Adm.IPv4.String())
	relay := func(args ...string) (int, string) {
		t.Helper()
		return setupRelay(lab.Srv, pf, args...)
	}
	if code, out := relay("--relay", "smtp.relay.example:587", "--user", sh.user, "--password-file", pass,
		"--admin", "admin@example.com", "--aliases", pf.aliases, "--ca-file", caFile); code != 0 {
		t.Fatalf("setup-relay: exit %d\n%s", code, out)
	}
	for param, want := range map[string]string{"default_transport": "smtp", "relay_transport": "relay",
		"relayhost": "[smtp.relay.example]:587", "smtp_tls_security_level": "secure"} {
		if got := pf.get(t, param); got != want {
			t.Errorf("after setup-relay: %s = %q, want %q", param, got, want)
		}
	}

	t.Run("to admin", func(t *testing.T) {
		code, out := relay("--check", "--admin", "admin@example.com", "--timeout", "20")
		if code != 0 {
			t.Fatalf("--check: exit %d, want 0\n%s\n%s", code, out, pf.log())
		}
		if !strings.Contains(out, "status=sent") && !strings.Contains(out, "accepted") {
			t.Errorf("--check does not say what the log said:\n%s", out)
		}
		sh.wantMail(t, "admin@example.com", "This is a test mail from setup-relay --check")
	})
	t.Run("to root through the alias", func(t *testing.T) {
		code, out := relay("--check", "--timeout", "20")
		if code != 0 {
			t.Fatalf("--check: exit %d, want 0\n%s\n%s", code, out, pf.log())
		}
		sh.wantMail(t, "admin@example.com", "This is a test mail from setup-relay --check")
	})
	t.Run("to a local mailbox", func(t *testing.T) {
		// Delivered, but not by the smarthost: what "Local only" does to
		// root's mail without an alias.
		code, out := relay("--check", "--admin", "postfix@localhost", "--timeout", "20")
		if code != 1 || !strings.Contains(out, "stayed on this machine") || !strings.Contains(out, "relay=local") {
			t.Errorf("--check to a local mailbox: exit %d, want 1\n%s", code, out)
		}
	})
	t.Run("550 on RCPT", func(t *testing.T) {
		sh.setMode(rejectRcpt)
		code, out := relay("--check", "--admin", "admin@example.com", "--timeout", "20")
		if code != 1 || !strings.Contains(out, "bounced") || !strings.Contains(out, "550 5.1.1") {
			t.Errorf("--check against a refusing smarthost: exit %d, want 1 and the bounce's reason\n%s", code, out)
		}
	})
	t.Run("535 on AUTH", func(t *testing.T) {
		sh.setMode(rejectAuth)
		code, out := relay("--check", "--admin", "admin@example.com", "--timeout", "20")
		if code != 75 || !strings.Contains(out, "deferred") || !strings.Contains(out, "535 5.7.8") {
			t.Errorf("--check with refused credentials: exit %d, want 75 and the reason\n%s", code, out)
		}
	})
	if fi, err := os.Stat(filepath.Join(pf.dir, "mail", "root")); err == nil && fi.Size() > 0 {
		t.Errorf("mail was delivered to root's local mailbox instead of relayed:\n%s", stringOrEmpty(os.ReadFile(filepath.Join(pf.dir, "mail", "root"))))
	}
}

func stringOrEmpty(b []byte, _ error) string { return string(b) }

// TestSetupRelayStartingPoints runs setup-relay on the configurations an
// admin may start from and checks that each ends up relaying everything
// through the smarthost.
func TestSetupRelayStartingPoints(t *testing.T) {
	hosttest.Require(t, "postconf", "postmap", "postalias")
	starts := map[string]struct{ set, unset []string }{
		"local only": {set: []string{"default_transport = error", "relay_transport = error",
			"inet_interfaces = loopback-only", "relayhost ="}},
		"internet site": {set: []string{"inet_interfaces = all", "relayhost =", "smtp_tls_security_level = may"},
			unset: []string{"default_transport", "relay_transport"}},
		"relay already": {set: []string{"relayhost = [old.example.net]:25", "default_transport = smtp",
			"smtp_use_tls = yes", "smtp_tls_security_level = may"}, unset: []string{"relay_transport"}},
	}
	for name, start := range starts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			conf := filepath.Join(dir, "postfix")
			if out, err := exec.Command("cp", "-a", "/etc/postfix", conf).CombinedOutput(); err != nil {
				t.Fatalf("copy /etc/postfix: %v\n%s", err, out)
			}
			if out, err := exec.Command("postconf", append([]string{"-c", conf, "-e"}, start.set...)...).CombinedOutput(); err != nil {
				t.Fatalf("postconf: %v\n%s", err, out)
			}
			if len(start.unset) > 0 {
				if out, err := exec.Command("postconf", append([]string{"-c", conf, "-X"}, start.unset...)...).CombinedOutput(); err != nil {
					t.Fatalf("postconf -X: %v\n%s", err, out)
				}
			}
			settle(t, conf)
			pass := filepath.Join(dir, "pass")
			writeFile(t, pass, []byte("pw\n"), 0o600)
			out, err := exec.Command(script("setup-relay"), "--relay", "smtp.mailgun.example", "--user", "u@mail.example.com",
				"--password-file", pass, "--admin", "admin@example.com", "--config-dir", conf,
				"--aliases", filepath.Join(dir, "aliases"), "--no-reload").CombinedOutput()
			if err != nil {
				t.Fatalf("setup-relay: %v\n%s", err, out)
			}
			for param, want := range map[string]string{
				"default_transport":       "smtp",
				"relay_transport":         "relay",
				"relayhost":               "[smtp.mailgun.example]:587",
				"inet_interfaces":         "loopback-only",
				"smtp_tls_security_level": "secure",
				"smtp_tls_wrappermode":    "no",
				"smtp_sasl_auth_enable":   "yes",
				"smtp_use_tls":            "no",
			} {
				got, err := exec.Command("postconf", "-c", conf, "-h", param).Output()
				if err != nil {
					t.Fatalf("postconf %s: %v", param, err)
				}
				if g := strings.TrimSpace(string(got)); g != want {
					t.Errorf("%s = %q, want %q", param, g, want)
				}
			}
		})
	}
}

// TestSetupRelayUsage checks the argument errors and --check's refusal to
// run against a Postfix that is not running or not set up.
func TestSetupRelayUsage(t *testing.T) {
	hosttest.Require(t, "postconf")
	dir := t.TempDir()
	conf := filepath.Join(dir, "postfix")
	if out, err := exec.Command("cp", "-a", "/etc/postfix", conf).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/postfix: %v\n%s", err, out)
	}
	// A copy with its own, empty queue folder: a Postfix that is not running.
	if out, err := exec.Command("postconf", "-c", conf, "-e", "queue_directory="+filepath.Join(dir, "spool")).CombinedOutput(); err != nil {
		t.Fatalf("postconf: %v\n%s", err, out)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--relay"}, 2, "--relay needs a value"},
		{[]string{"--bogus"}, 2, "unknown argument: --bogus"},
		{[]string{"--check", "--timeout", "soon"}, 2, "--timeout"},
		{[]string{"--tls", "may", "--config-dir", conf}, 2, "--tls"},
		{[]string{"--relay", "x", "--config-dir", conf}, 2, "--user is required"},
		{[]string{"--relay", "198.51.100.12:587", "--user", "u", "--password-file", "/dev/null", "--admin", "a@example.com", "--config-dir", conf}, 2, "never an IP address"},
		{[]string{"--check", "--config-dir", conf}, 69, "is not running"},
		{[]string{"--check", "--config-dir", filepath.Join(dir, "none")}, 78, "main.cf"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		cmd := exec.Command(script("setup-relay"), tt.args...)
		cmd.Stderr = &stderr
		code := exitCode(cmd.Run())
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("setup-relay %s: exit %d, want %d with %q\n%s", strings.Join(tt.args, " "), code, tt.code, tt.want, stderr.String())
		}
	}
	out, err := exec.Command(script("setup-relay"), "--help").Output()
	if err != nil || !strings.Contains(string(out), "--check") {
		t.Errorf("--help: %v\n%s", err, out)
	}
}

// TestSmarthostRequiresTLSAndAuth checks the test's own smarthost: no AUTH
// before STARTTLS, no MAIL before AUTH, so a Postfix that relays through it
// has done both.
func TestSmarthostRequiresTLSAndAuth(t *testing.T) {
	ca, cert := testCA(t, "smtp.relay.example", "198.51.100.12")
	sh := &smarthost{user: "u", pass: "p", tls: &tls.Config{Certificates: []tls.Certificate{cert}}}
	cli, srv := net.Pipe()
	go sh.session(srv)
	defer cli.Close()
	_ = cli.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(cli)
	var conn net.Conn = cli
	say := func(cmd, want string) string {
		t.Helper()
		if cmd != "" {
			fmt.Fprintf(conn, "%s\r\n", cmd)
		}
		var all string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", cmd, err)
			}
			all += line
			if len(line) < 4 || line[3] != '-' {
				break
			}
		}
		if !strings.HasPrefix(all, want) {
			t.Fatalf("after %q: got %q, want %s...", cmd, all, want)
		}
		return all
	}
	say("", "220")
	if ehlo := say("EHLO client.example", "250"); strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("EHLO before TLS: %q", ehlo)
	}
	say("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00u\x00p")), "530")
	say("MAIL FROM:<a@example.com>", "530")
	say("STARTTLS", "220")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tc := tls.Client(cli, &tls.Config{RootCAs: pool, ServerName: "smtp.relay.example"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	conn, r = tc, bufio.NewReader(tc)
	if ehlo := say("EHLO client.example", "250"); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Errorf("EHLO after TLS: %q", ehlo)
	}
	say("MAIL FROM:<a@example.com>", "530")
	say("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00u\x00wrong")), "535")
	say("AUTH LOGIN", "334")
	say(base64.StdEncoding.EncodeToString([]byte("u")), "334")
	say(base64.StdEncoding.EncodeToString([]byte("p")), "235")
	say("MAIL FROM:<a@example.com>", "250")
	say("RCPT TO:<b@example.com>", "250")
	say("DATA", "354")
	say("Subject: x\r\n\r\n..dot\r\n.", "250")
	say("QUIT", "221")
	sh.wantMail(t, "b@example.com", "\n.dot")
}

// postfixInstance is a second Postfix with its own configuration, queue,
// data folder and mail log.
type postfixInstance struct {
	dir, conf, aliases string
}

func (p *postfixInstance) get(t *testing.T, param string) string {
	t.Helper()
	out, err := exec.Command("postconf", "-c", p.conf, "-h", param).Output()
	if err != nil {
		t.Fatalf("postconf -c %s -h %s: %v", p.conf, param, err)
	}
	return strings.TrimSpace(string(out))
}

func (p *postfixInstance) log() string {
	return stringOrEmpty(os.ReadFile(filepath.Join(p.dir, "maillog")))
}

// startPostfix copies /etc/postfix under dir, gives the copy its own
// folders and log and Debian's "Local only" transports, and starts it
// inside h (port 25 there is free). It is stopped when the test ends.
//
// There is no DNS here: the instance resolves names through the hosts file
// of its chroot (the queue folder), which maps name to ip, instead of
// asking DNS as Postfix does by default.
func startPostfix(t *testing.T, h hosttest.Host, dir, name, ip string, params ...string) *postfixInstance {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &postfixInstance{dir: dir, conf: filepath.Join(dir, "etc"), aliases: filepath.Join(dir, "aliases")}
	if out, err := exec.Command("cp", "-a", "/etc/postfix", p.conf).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/postfix: %v\n%s", err, out)
	}
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"spool", 0o755}, {"data", 0o700}, {"mail", 0o1777}} {
		path := filepath.Join(dir, d.name)
		if err := os.Mkdir(path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, d.mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "postfix", filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Join(dir, "spool", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "spool", "etc", "hosts"), []byte("127.0.0.1 localhost\n"+ip+" "+name+"\n"), 0o644)
	writeFile(t, filepath.Join(dir, "spool", "etc", "nsswitch.conf"), []byte("hosts: files\n"), 0o644)
	writeFile(t, p.aliases, []byte("postmaster: root\n"), 0o644)
	if out, err := exec.Command("postalias", "hash:"+p.aliases).CombinedOutput(); err != nil {
		t.Fatalf("postalias: %v\n%s", err, out)
	}
	if out, err := exec.Command("postconf", append([]string{"-c", p.conf, "-e",
		"queue_directory=" + filepath.Join(dir, "spool"),
		"data_directory=" + filepath.Join(dir, "data"),
		"maillog_file=" + filepath.Join(dir, "maillog"),
		"maillog_file_prefixes=" + dir,
		"mail_spool_directory=" + filepath.Join(dir, "mail"),
		"alias_maps=hash:" + p.aliases, "alias_database=hash:" + p.aliases,
		"inet_interfaces=loopback-only", "smtp_host_lookup=native",
		"default_transport=error", "relay_transport=error", "relayhost=",
	}, params...)...).CombinedOutput(); err != nil {
		t.Fatalf("postconf: %v\n%s", err, out)
	}
	settle(t, p.conf)
	h.Run(t, "postfix", "-c", p.conf, "check")
	h.Run(t, "postfix", "-c", p.conf, "start")
	t.Cleanup(func() {
		if out, err := exec.Command("postfix", "-c", p.conf, "stop").CombinedOutput(); err != nil {
			t.Logf("postfix -c %s stop: %v\n%s", p.conf, err, out)
		}
	})
	return p
}

// settle dates conf's main.cf back a few seconds: Postfix's programs wait
// up to two seconds for a main.cf written within the last second to settle.
func settle(t *testing.T, conf string) {
	t.Helper()
	past := time.Now().Add(-10 * time.Second)
	if err := os.Chtimes(filepath.Join(conf, "main.cf"), past, past); err != nil {
		t.Fatal(err)
	}
}

// shareableTempDir is a temporary folder that Postfix's unprivileged
// processes can enter (t.TempDir's folders are 0700).
func shareableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

// testCA makes a CA and a server certificate it signs for name and ip,
// returning the CA's PEM and the server's key pair.
func testCA(t *testing.T, name, ip string) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "quietwatch test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, IPAddresses: []net.IP{net.ParseIP(ip)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// listenInNetns listens on addr inside the network namespace ns. The
// socket stays in ns; the thread that entered ns goes back to the test's
// own namespace before other goroutines may run on it. (A thread that is
// simply left to die may be the process's main thread, which Go keeps: the
// whole test process would then look like a member of ns, and the lab's
// teardown would kill it.)
func listenInNetns(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer home.Close()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			// Still in ns: keep the thread locked, so that it ends with
			// this goroutine.
			ch <- result{ln, err}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		if r.ln != nil {
			r.ln.Close()
		}
		t.Fatalf("listen on %s in %s: %v", addr, ns, r.err)
	}
	return r.ln
}

type smarthostMode int

const (
	acceptAll smarthostMode = iota
	rejectRcpt
	rejectAuth
)

// smarthost is a mail provider's submission server, as strict as the real
// ones: STARTTLS before AUTH, AUTH (PLAIN or LOGIN) before MAIL.
type smarthost struct {
	user, pass string
	tls        *tls.Config

	mu    sync.Mutex
	mode  smarthostMode
	conns map[net.Conn]bool
	mails []relayedMail
}

type relayedMail struct {
	user, from string
	rcpts      []string
	data       string
}

func (s *smarthost) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.session(c)
	}
}

// setMode changes how the smarthost answers and drops the connections
// Postfix may keep cached, so the next mail meets the new mode.
func (s *smarthost) setMode(m smarthostMode) {
	s.mu.Lock()
	s.mode = m
	s.mu.Unlock()
	s.closeAll()
}

func (s *smarthost) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// wantMail checks that a mail to rcpt whose text contains body arrived.
func (s *smarthost) wantMail(t *testing.T, rcpt, body string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mails {
		if strings.Contains(m.data, body) && strings.Contains(strings.Join(m.rcpts, " "), "<"+rcpt+">") {
			if m.user != s.user {
				t.Errorf("mail relayed as %q, want %q", m.user, s.user)
			}
			return
		}
	}
	t.Errorf("no mail to %s containing %q reached the smarthost; it has %d: %+v", rcpt, body, len(s.mails), s.mails)
}

func (s *smarthost) session(c net.Conn) {
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[net.Conn]bool{}
	}
	s.conns[c] = true
	mode := s.mode
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReader(c)
	var conn net.Conn = c
	reply := func(lines ...string) {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(conn, strings.Join(lines, "\r\n")+"\r\n")
	}
	readLine := func() (string, bool) {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := r.ReadString('\n')
		return strings.TrimRight(line, "\r\n"), err == nil
	}
	var tlsOn bool
	var user string
	var mail *relayedMail
	reply("220 smtp.relay.example ESMTP quietwatch test smarthost")
	for {
		line, ok := readLine()
		if !ok {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			if tlsOn {
				reply("250-smtp.relay.example", "250-AUTH PLAIN LOGIN", "250 8BITMIME")
			} else {
				reply("250-smtp.relay.example", "250-STARTTLS", "250 8BITMIME")
			}
		case "HELO":
			reply("250 smtp.relay.example")
		case "STARTTLS":
			if tlsOn {
				reply("503 5.5.1 TLS already active")
				continue
			}
			reply("220 2.0.0 Ready to start TLS")
			tc := tls.Server(c, s.tls)
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, r, tlsOn, user, mail = tc, bufio.NewReader(tc), true, "", nil
		case "AUTH":
			if !tlsOn {
				reply("530 5.7.0 Must issue a STARTTLS command first")
				continue
			}
			mech, initial, _ := strings.Cut(arg, " ")
			var u, p string
			switch strings.ToUpper(mech) {
			case "PLAIN":
				if initial == "" {
					reply("334 ")
					if initial, ok = readLine(); !ok {
						return
					}
				}
				b, _ := base64.StdEncoding.DecodeString(initial)
				if parts := strings.Split(string(b), "\x00"); len(parts) == 3 {
					u, p = parts[1], parts[2]
				}
			case "LOGIN":
				reply("334 " + base64.StdEncoding.EncodeToString([]byte("Username:")))
				l1, ok := readLine()
				if !ok {
					return
				}
				reply("334 " + base64.StdEncoding.EncodeToString([]byte("Password:")))
				l2, ok := readLine()
				if !ok {
					return
				}
				bu, _ := base64.StdEncoding.DecodeString(l1)
				bp, _ := base64.StdEncoding.DecodeString(l2)
				u, p = string(bu), string(bp)
			default:
				reply("504 5.5.4 Unrecognized authentication type")
				continue
			}
			if mode == rejectAuth || u != s.user || p != s.pass {
				reply("535 5.7.8 Authentication credentials invalid")
				continue
			}
			user = u
			reply("235 2.7.0 Authentication successful")
		case "MAIL":
			switch {
			case !tlsOn:
				reply("530 5.7.0 Must issue a STARTTLS command first")
			case user == "":
				reply("530 5.7.0 Authentication required")
			default:
				mail = &relayedMail{user: user, from: arg}
				reply("250 2.1.0 Ok")
			}
		case "RCPT":
			switch {
			case mail == nil:
				reply("503 5.5.1 Need MAIL command")
			case mode == rejectRcpt:
				reply("550 5.1.1 Recipient address rejected: refused by the test smarthost")
			default:
				addr := arg
				if i := strings.IndexByte(addr, '<'); i >= 0 {
					addr = addr[i:]
				}
				if j := strings.IndexByte(addr, '>'); j >= 0 {
					addr = addr[:j+1]
				}
				mail.rcpts = append(mail.rcpts, addr)
				reply("250 2.1.5 Ok")
			}
		case "DATA":
			if mail == nil || len(mail.rcpts) == 0 {
				reply("554 5.5.1 No valid recipients")
				continue
			}
			reply("354 End data with <CR><LF>.<CR><LF>")
			var data strings.Builder
			for {
				l, ok := readLine()
				if !ok {
					return
				}
				if l == "." {
					break
				}
				data.WriteString(strings.TrimPrefix(l, ".") + "\n")
			}
			mail.data = data.String()
			s.mu.Lock()
			s.mails = append(s.mails, *mail)
			s.mu.Unlock()
			mail = nil
			reply("250 2.0.0 Ok: queued")
		case "RSET":
			mail = nil
			reply("250 2.0.0 Ok")
		case "NOOP":
			reply("250 2.0.0 Ok")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			reply("502 5.5.2 Command not recognized")
		}
	}
}
