package notify

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/internal/golden"
	"github.com/quietwatch/quietwatch/pkg/metrics/metricstest"
	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/spool"
	"github.com/quietwatch/quietwatch/pkg/webhook"
)

// secret is the token in every test webhook's URL: it must never show in
// notify's output.
const secret = "T0KEN-s3cr3t-9f8e7d"

// hookServer is a real HTTPS server with its own CA, standing for Slack,
// Discord, ... Its answer is set by answer (nil: 200).
type hookServer struct {
	srv *httptest.Server
	ca  string // the CA's PEM file, for --webhook-ca

	mu     sync.Mutex
	reqs   []hookReq
	answer func(n int, w http.ResponseWriter, r *http.Request) bool // true: it answered
}

type hookReq struct {
	method, uri string
	header      http.Header
	body        []byte
	ok          bool // answered 200
}

func newHookServer(t *testing.T) *hookServer {
	t.Helper()
	h := &hookServer{}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookReq{method: r.Method, uri: r.RequestURI, header: r.Header.Clone(), body: body})
		n, answer := len(h.reqs), h.answer
		h.mu.Unlock()
		if answer == nil || !answer(n, w, r) {
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "ok") //nolint:errcheck
			h.mu.Lock()
			h.reqs[n-1].ok = true
			h.mu.Unlock()
		}
	}))
	t.Cleanup(h.srv.Close)
	h.ca = filepath.Join(t.TempDir(), "ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw})
	if err := os.WriteFile(h.ca, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *hookServer) set(answer func(n int, w http.ResponseWriter, r *http.Request) bool) {
	h.mu.Lock()
	h.answer = answer
	h.mu.Unlock()
}

func (h *hookServer) requests() []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reqs)
}

// file writes a --webhook-file naming the server with format.
func (h *hookServer) file(t *testing.T, format, path string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "webhooks")
	line := h.srv.URL + path
	if format != "" {
		line = format + " " + line
	}
	if err := os.WriteFile(f, []byte("# test\n\n"+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// alerts counts the alerts (by id) in the json-format requests the server
// got (with accepted, only those it answered 200).
func (h *hookServer) alerts(t *testing.T, accepted bool) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, r := range h.requests() {
		if accepted && !r.ok {
			continue
		}
		var p webhook.Payload
		if err := record.Unmarshal(r.body, &p); err != nil {
			t.Fatalf("request body: %v: %s", err, r.body)
		}
		for _, id := range p.Alerts {
			got[id]++
		}
	}
	return got
}

func noSecret(t *testing.T, what string, out []byte) {
	t.Helper()
	if bytes.Contains(out, []byte(secret)) {
		t.Errorf("%s shows the webhook's secret:\n%s", what, out)
	}
}

// TestWebhookGolden: the request each format sends for one alert, over
// HTTPS with a test CA (testdata/notify/webhook/FORMAT.txtar; a
// "template" section is a --webhook-template).
func TestWebhookGolden(t *testing.T) {
	cases := 0
	golden.Run(t, "../../testdata/notify/webhook", func(t *testing.T, c *golden.Case) {
		cases++
		name := strings.TrimSuffix(filepath.Base(c.File), ".txtar")
		hs := newHookServer(t)
		path := "/hook/" + secret
		if name == "telegram" {
			path = "/bot123:" + secret + "/sendMessage?chat_id=-100123"
		}
		format := name
		args := []string{"notify", "--webhook-ca", hs.ca, "--spool", t.TempDir(), "--group-window", "0", "--hostname", "vm"}
		if tmpl, ok := c.Section("template"); ok {
			tf := filepath.Join(t.TempDir(), "hook.tmpl")
			if err := os.WriteFile(tf, tmpl, 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--webhook-template", tf)
			format = ""
		}
		args = append(args, "--webhook-file", hs.file(t, format, path))
		var out, errOut bytes.Buffer
		feed := golden.Feeds([]byte(alertLine("1764363600.1", "golden", 10)))[0]
		if code := run(context.Background(), args, feed.Reader(), &out, &errOut, fixedEnv()); code != 0 || errOut.Len() > 0 {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
		}
		noSecret(t, "stdout", out.Bytes())
		reqs := hs.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(reqs))
		}
		r := reqs[0]
		got := fmt.Sprintf("%s %s\nContent-Type: %s\n", r.method, strings.ReplaceAll(r.uri, secret, "SECRET"), r.header.Get("Content-Type"))
		if v := r.header.Get("Title"); v != "" {
			got += "Title: " + v + "\n"
		}
		got += "\n" + string(r.body) + "\n"
		if _, ok := c.Section("request"); !ok && !*golden.Update {
			t.Fatal("no request section (run with -update)")
		}
		c.Expect(t, feed, "request", got)
		if !strings.Contains(out.String(), `"status":"sent"`) || !strings.Contains(out.String(), `"via":"webhook https://127.0.0.1:`) {
			t.Errorf("mail log:\n%s", out.String())
		}
	})
	if cases < len(webhook.Formats)+1 {
		t.Errorf("%d golden cases, want one per format and a template", cases)
	}
}

// TestWebhookRetryAfter: a 429 storm. Each Retry-After is waited (a
// stand-in sleep records the waits: the assertion is the wait asked for,
// not elapsed time), a huge one is capped, and the message goes once.
func TestWebhookRetryAfter(t *testing.T) {
	hs := newHookServer(t)
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	hs.set(func(n int, w http.ResponseWriter, r *http.Request) bool {
		switch n {
		case 1, 2, 3:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case 4:
			w.Header().Set("Retry-After", date)
			w.WriteHeader(http.StatusServiceUnavailable)
		case 5:
			w.Header().Set("Retry-After", "86400")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			return false
		}
		return true
	})
	var mu sync.Mutex
	var waits []time.Duration
	h := fixedEnv()
	h.sleep = func(ctx context.Context, d time.Duration) bool {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err() == nil
	}
	mta := &fakeMTA{}
	h.transport = mta
	var out, errOut bytes.Buffer
	args := []string{"notify", "--to", "root", "--webhook-ca", hs.ca, "--webhook-file", hs.file(t, "json", "/hook/"+secret),
		"--spool", t.TempDir(), "--group-window", "0", "--retry-min", "1s", "--retry-max", "2s"}
	if code := run(context.Background(), args, strings.NewReader(alertLine("a1", "storm", 10)), &out, &errOut, h); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if len(waits) != 5 {
		t.Fatalf("waits %v, want 5", waits)
	}
	for i := range 3 {
		if waits[i] != 7*time.Second {
			t.Errorf("wait %d: %v, want Retry-After's 7s", i+1, waits[i])
		}
	}
	if waits[3] < 80*time.Second || waits[3] > 90*time.Second {
		t.Errorf("wait 4 (Retry-After as a date 90 s ahead): %v", waits[3])
	}
	if waits[4] != time.Hour {
		t.Errorf("wait 5 (Retry-After: 86400): %v, want the cap, an hour", waits[4])
	}
	if got := hs.alerts(t, false); got["a1"] != 6 { // five refused, the sixth taken
		t.Errorf("requests with a1: %d, want 6", got["a1"])
	}
	if n := len(mta.messages()); n != 1 {
		t.Errorf("mails: %d, want 1", n)
	}
	if c := strings.Count(out.String(), `"status":"retry"`); c != 5 {
		t.Errorf("%d retry records, want 5:\n%s", c, out.String())
	}
	noSecret(t, "stdout", out.Bytes())
	noSecret(t, "stderr", errOut.Bytes())
}

// TestWebhookHung: an endpoint that never answers holds up neither intake
// nor mail; at the end what it has not taken stays spooled (exit 75), and
// the next run posts it, once, without mailing anything again.
func TestWebhookHung(t *testing.T) {
	hs := newHookServer(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hs.set(func(_ int, _ http.ResponseWriter, r *http.Request) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	})
	spoolDir := t.TempDir()
	hookFile := hs.file(t, "json", "/hook/"+secret)
	mta := &fakeMTA{}
	h := fixedEnv()
	h.transport = mta
	h.Now = nil // wall clock: send timeouts are real
	pr, pw := io.Pipe()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"notify", "--to", "root", "--webhook-ca", hs.ca, "--webhook-file", hookFile,
			"--spool", spoolDir, "--group-window", "0", "--max-per-hour", "0", "--send-timeout", "200ms",
			"--retry-min", "10ms", "--retry-max", "50ms", "--exit-wait", "300ms"}, pr, &stdout, &stderr, h)
	}()
	const n = 100
	var want []string
	for i := range n {
		id := fmt.Sprintf("h-%03d", i)
		want = append(want, id)
		if _, err := io.WriteString(pw, alertLine(id, id, 10)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every alert mailed while the webhook hangs", &stdout, func(out string) bool {
		return strings.Count(out, `"status":"sent"`) == n
	})
	pw.Close()
	if code := waitExit(t, "notify's exit", done); code != 75 {
		t.Fatalf("exit %d, want 75: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "no answer within --send-timeout 200ms") {
		t.Errorf("stderr: %s", stderr.String())
	}
	noSecret(t, "stderr", []byte(stderr.String()))
	noSecret(t, "stdout", []byte(stdout.String()))
	hs.set(nil)
	var out, errOut bytes.Buffer
	h2 := fixedEnv()
	h2.transport = mta
	code := run(context.Background(), []string{"notify", "--to", "root", "--webhook-ca", hs.ca, "--webhook-file", hookFile,
		"--spool", spoolDir, "--group-window", "0"}, strings.NewReader(""), &out, &errOut, h2)
	if code != 0 {
		t.Fatalf("restart: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), fmt.Sprintf("%d message(s) and 0 alert(s) left by an earlier run", n)) {
		t.Errorf("restart stderr: %s", errOut.String())
	}
	if got := len(mta.messages()); got != n {
		t.Errorf("mails after the restart: %d, want %d (none again)", got, n)
	}
	checkOnce(t, hs.alerts(t, true), want)
	if pend, _ := os.ReadDir(filepath.Join(spoolDir, "msg")); len(pend) != 0 {
		t.Errorf("%d messages left in the spool", len(pend))
	}
}

// TestWebhookPermanent: a 4xx (other than 408/429) is a refusal: after
// permanentTries the message is moved to failed/ (the mail went), exit 1;
// the endpoint's answer, which echoes the URL, shows without its secret.
func TestWebhookPermanent(t *testing.T) {
	hs := newHookServer(t)
	hs.set(func(_ int, w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, "invalid token for %s\n", r.URL.Path)
		return true
	})
	spoolDir := t.TempDir()
	mta := &fakeMTA{}
	h := fixedEnv()
	h.transport = mta
	h.sleep = func(ctx context.Context, _ time.Duration) bool { return ctx.Err() == nil }
	var out, errOut bytes.Buffer
	metricsFile := filepath.Join(t.TempDir(), "notify.prom")
	code := run(context.Background(), []string{"notify", "--to", "root", "--webhook-ca", hs.ca,
		"--webhook-file", hs.file(t, "slack", "/services/"+secret), "--spool", spoolDir, "--group-window", "0",
		"--metrics-file", metricsFile},
		strings.NewReader(alertLine("p1", "perm", 10)+alertLine("p2", "low", 3)+"{bad\n"), &out, &errOut, h)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errOut.String())
	}
	noSecret(t, "stdout", out.Bytes())
	noSecret(t, "stderr", errOut.Bytes())
	if n := len(hs.requests()); n != permanentTries {
		t.Errorf("%d requests, want %d", n, permanentTries)
	}
	if n := len(mta.messages()); n != 1 {
		t.Errorf("%d mails, want 1", n)
	}
	if !strings.Contains(errOut.String(), "HTTP 403 Forbidden: invalid token for …") || !strings.Contains(errOut.String(), "kept in "+filepath.Join(spoolDir, "failed")) {
		t.Errorf("stderr:\n%s", errOut.String())
	}
	if !strings.Contains(out.String(), `"status":"failed"`) {
		t.Errorf("mail log:\n%s", out.String())
	}
	failed, _ := filepath.Glob(filepath.Join(spoolDir, "failed", "*.eml"))
	if len(failed) != 1 {
		t.Fatalf("failed/: %v", failed)
	}
	data, _ := os.ReadFile(failed[0])
	if !bytes.Contains(data, []byte(`"mail":"sent"`)) || !bytes.Contains(data, []byte(`":"failed"`)) {
		t.Errorf("failed message's marks: %s", bytes.SplitN(data, []byte("\n"), 2)[0])
	}
	if pend, _ := os.ReadDir(filepath.Join(spoolDir, "msg")); len(pend) != 0 {
		t.Errorf("%d messages left in msg/", len(pend))
	}
	fs := metricstest.Read(t, metricsFile)
	host := strings.TrimPrefix(hs.srv.URL, "https://")
	metricstest.Want(t, fs, 3, "quietwatch_notify_alerts_read_total")
	metricstest.Want(t, fs, 1, "quietwatch_notify_alerts_selected_total")
	metricstest.Want(t, fs, 1, "quietwatch_notify_lines_refused_total", "reason", "unparsable")
	metricstest.Want(t, fs, 1, "quietwatch_notify_messages_sent_total", "transport", "mail")
	metricstest.Want(t, fs, 0, "quietwatch_notify_messages_sent_total", "transport", "webhook", "endpoint", host)
	metricstest.Want(t, fs, 1, "quietwatch_notify_messages_failed_total", "transport", "webhook", "endpoint", host)
	metricstest.Want(t, fs, 0, "quietwatch_notify_messages_failed_total", "transport", "mail")
	metricstest.Want(t, fs, permanentTries-1, "quietwatch_notify_send_retries_total", "transport", "webhook", "endpoint", host)
	metricstest.Want(t, fs, 0, "quietwatch_notify_messages_retrying", "transport", "webhook")
	metricstest.Want(t, fs, 0, "quietwatch_notify_messages_queued", "transport", "webhook")
	metricstest.Want(t, fs, 0, "quietwatch_notify_alerts_held")
	noSecret(t, "the metrics file", must(os.ReadFile(metricsFile)))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestWebhookKill9: notify (a real process) is killed while the endpoint
// answers 503; the next run posts what was pending: every alert accepted
// exactly once.
func TestWebhookKill9(t *testing.T) {
	hs := newHookServer(t)
	spoolDir := t.TempDir()
	hookFile := hs.file(t, "json", "/hook/"+secret)
	cmd := exec.Command(os.Args[0], "--webhook-ca", hs.ca, "--webhook-file", hookFile, "--spool", spoolDir,
		"--group-window", "0", "--max-per-hour", "5", "--retry-min", "20ms", "--retry-max", "100ms")
	stdin, stdout, stderr := startNotify(t, cmd)
	var want []string
	feed := func(from, to int) {
		var b strings.Builder
		for i := from; i < to; i++ {
			id := fmt.Sprintf("k-%03d", i)
			want = append(want, id)
			b.WriteString(alertLine(id, id, 10))
		}
		if _, err := io.WriteString(stdin, b.String()); err != nil {
			t.Fatal(err)
		}
	}
	feed(0, 2)
	waitFor(t, "two messages posted", stdout, func(out string) bool {
		return strings.Count(out, `"status":"sent"`) == 2
	})
	var accept atomic.Bool
	hs.set(func(_ int, w http.ResponseWriter, r *http.Request) bool {
		if accept.Load() {
			return false
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	feed(2, 40)
	waitFor(t, "a retry and 35 queued alerts", stdout, func(out string) bool {
		return strings.Contains(out, `"status":"retry"`) && strings.Contains(out, `"queued":35`)
	})
	cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck
	cmd.Wait()                          //nolint:errcheck
	noSecret(t, "stdout", []byte(stdout.String()))
	noSecret(t, "stderr", []byte(stderr.String()))

	accept.Store(true)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"notify", "--webhook-ca", hs.ca, "--webhook-file", hookFile, "--spool", spoolDir,
		"--group-window", "0", "--max-per-hour", "0"}, strings.NewReader(""), &out, &errOut, &env{})
	if code != 0 {
		t.Fatalf("restart: exit %d: %s", code, errOut.String())
	}
	checkOnce(t, hs.alerts(t, true), want)
	if p, _ := spool.Open(spoolDir); p != nil {
		pend, _ := p.Pending()
		p.Close()
		if len(pend) != 0 {
			t.Errorf("%d messages still pending", len(pend))
		}
	}
}

// TestWebhookFlags: usage and configuration errors of the webhook flags,
// none of them showing a URL's secret.
func TestWebhookFlags(t *testing.T) {
	dir := t.TempDir()
	twice := filepath.Join(dir, "twice")
	os.WriteFile(twice, []byte("https://h.example/"+secret+"\njson https://h.example/"+secret+"\n"), 0o600) //nolint:errcheck
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("ftp://h.example/"+secret+"\n"), 0o600) //nolint:errcheck
	tmpl := filepath.Join(dir, "t.tmpl")
	os.WriteFile(tmpl, []byte("{{.Nope"), 0o600) //nolint:errcheck
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--webhook-format", "irc", "--webhook", "https://h.example/x"}, 2, `--webhook-format: "irc"`},
		{[]string{"--webhook", "ftp://h.example/" + secret}, 2, `scheme "ftp"`},
		{[]string{"--webhook", "https://h.example/x", "--webhook-format", "json", "--webhook-template", tmpl}, 2, "exclude each other"},
		{[]string{"--webhook", "https://h.example/x", "--webhook-template", tmpl}, 78, "--webhook-template"},
		{[]string{"--webhook-file", twice}, 78, "webhook https://h.example: given twice"},
		{[]string{"--webhook-file", bad}, 78, "bad:1: scheme"},
		{[]string{"--webhook-file", filepath.Join(dir, "none")}, 78, "--webhook-file"},
		{[]string{"--webhook", "https://h.example/x", "--webhook-ca", bad}, 78, "no PEM certificate"},
		{[]string{"--webhook", "https://h.example/x", "--metrics-file", filepath.Join(dir, "m.txt")}, 78, ".prom"},
		{[]string{"--min-level", "3"}, 2, "--to is required (or a webhook)"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"notify", "--spool", t.TempDir()}, c.args...)
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut, &env{})
		if code != c.code || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut.String(), c.code, c.want)
		}
		noSecret(t, "stderr", errOut.Bytes())
	}
}

// connectProxy is an HTTP proxy that tunnels every CONNECT to target (a
// loopback address), whatever host was asked for, and records the hosts.
type connectProxy struct {
	srv    *httptest.Server
	mu     sync.Mutex
	asked  []string
	target string
}

func newConnectProxy(t *testing.T, target string) *connectProxy {
	p := &connectProxy{target: target}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		p.mu.Lock()
		p.asked = append(p.asked, r.Host)
		p.mu.Unlock()
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer up.Close()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n") //nolint:errcheck
		done := make(chan struct{}, 2)
		go func() { io.Copy(up, conn); done <- struct{}{} }() //nolint:errcheck
		go func() { io.Copy(conn, up); done <- struct{}{} }() //nolint:errcheck
		<-done
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// TestWebhookProxy: under the unit's IPAddressAllow=localhost, a webhook
// goes out through a local proxy named by HTTPS_PROXY (docs/notify.md). A
// real notify process posts to https://example.com/... through a CONNECT
// proxy on loopback, which tunnels it to the test server (nothing leaves
// the machine): the server gets the request, TLS checked against the name.
func TestWebhookProxy(t *testing.T) {
	hs := newHookServer(t)
	proxy := newConnectProxy(t, strings.TrimPrefix(hs.srv.URL, "https://"))
	hookFile := filepath.Join(t.TempDir(), "webhooks")
	if err := os.WriteFile(hookFile, []byte("json https://example.com/hook/"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "--webhook-ca", hs.ca, "--webhook-file", hookFile, "--spool", t.TempDir(),
		"--group-window", "0", "--exit-wait", "20s")
	cmd.Env = append(os.Environ(), "QWN_NOTIFY_MAIN=1", "HTTPS_PROXY="+proxy.srv.URL, "NO_PROXY=", "no_proxy=")
	cmd.Stdin = strings.NewReader(alertLine("x1", "proxied", 10))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	if got := hs.alerts(t, true); got["x1"] != 1 {
		t.Errorf("server got %v", got)
	}
	proxy.mu.Lock()
	asked := slices.Clone(proxy.asked)
	proxy.mu.Unlock()
	if len(asked) != 1 || asked[0] != "example.com:443" {
		t.Errorf("proxy asked for %v", asked)
	}
	noSecret(t, "stdout", stdout.Bytes())
	noSecret(t, "stderr", stderr.Bytes())
}
