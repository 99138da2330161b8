package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"mime"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// requirePostfix skips (fails in CI) unless a local Postfix is running and
// listening on 127.0.0.1:25.
func requirePostfix(t *testing.T) {
	t.Helper()
	hosttest.Require(t, "postfix", "postqueue", "sendmail")
	if err := exec.Command("postfix", "status").Run(); err != nil {
		hosttest.Missing(t, "postfix not running (postfix start)")
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:25", 2*time.Second)
	if err != nil {
		hosttest.Missing(t, "nothing listens on 127.0.0.1:25: %v", err)
	}
	c.Close()
}

// mailbox returns the messages of /var/mail/root whose Subject holds tag,
// waiting (with a deadline) until n arrived. It does not wait for an empty
// queue: other tests may leave deferred mail in it.
func mailbox(t *testing.T, tag string, n int) []*mail.Message {
	t.Helper()
	return mailboxAt(t, "/var/mail/root", tag, n)
}

// mailboxAt is mailbox for the mailbox file path.
func mailboxAt(t *testing.T, path, tag string, n int) []*mail.Message {
	t.Helper()
	var msgs []*mail.Message
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs = msgs[:0]
		data, _ := os.ReadFile(path)
		for _, raw := range splitMbox(data) {
			if !bytes.Contains(raw, []byte(tag)) {
				continue
			}
			m, err := mail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("unparseable message in %s: %v", path, err)
			}
			if strings.Contains(m.Header.Get("Subject"), tag) {
				msgs = append(msgs, m)
			}
		}
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			out, _ := exec.Command("postqueue", "-p").CombinedOutput()
			t.Fatalf("after 60s: %d of %d messages tagged %s in %s; postqueue -p:\n%s", len(msgs), n, tag, path, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// splitMbox splits an mbox into messages (without their "From " lines).
func splitMbox(data []byte) [][]byte {
	var out [][]byte
	for _, part := range bytes.Split(data, []byte("\nFrom ")) {
		if i := bytes.IndexByte(part, '\n'); i >= 0 {
			out = append(out, part[i+1:])
		}
	}
	return out
}

func uniqueTag(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:]) //nolint:errcheck
	return "qwn" + hex.EncodeToString(b[:])
}

// checkScenario checks the how-to scenario's mails as Postfix delivered
// them: recipients, subjects, bodies with the logs.
func checkScenario(t *testing.T, msgs []*mail.Message, tag string, levels ...string) {
	t.Helper()
	scenario, err := os.ReadFile("../../testdata/notify/scenario.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var bodies strings.Builder
	var subjects []string
	for _, m := range msgs {
		// Postfix qualifies the local name: root becomes root@$myorigin.
		if got := m.Header.Get("To"); got != "root" && !strings.HasPrefix(got, "root@") {
			t.Errorf("To: %q", got)
		}
		if got := m.Header.Get("Delivered-To"); !strings.HasPrefix(got, "root@") {
			t.Errorf("Delivered-To: %q", got)
		}
		var raw bytes.Buffer
		raw.WriteString("Subject: " + m.Header.Get("Subject") + "\nContent-Transfer-Encoding: " +
			m.Header.Get("Content-Transfer-Encoding") + "\n\n")
		raw.ReadFrom(m.Body) //nolint:errcheck
		subject, body := decodedBody(t, raw.Bytes())
		subjects = append(subjects, subject)
		bodies.WriteString(body)
	}
	all := bodies.String()
	for _, level := range levels {
		want := "quietwatch Alert - " + tag + " - Level " + level
		found := false
		for _, s := range subjects {
			found = found || s == want
		}
		if !found {
			t.Errorf("no subject %q in %q", want, subjects)
		}
	}
	for _, want := range []string{
		"Received From: " + tag + "->/var/log/suricata/fast.log",
		`Rule: 300012 fired (level 11) -> "Many high-severity Suricata alerts"`,
		"Src IP: 203.0.113.12",
		"Src IP: 192.0.2.241",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("bodies lack %q", want)
		}
	}
	// Every mailed log line is there: 6 alerts, 4 of them repeated as the
	// composite's previous_output; the level-8 alert is not mailed.
	for _, l := range strings.Split(strings.TrimSpace(string(scenario)), "\n") {
		fl := l[strings.Index(l, `"full_log":"`)+len(`"full_log":"`):]
		fl = fl[:strings.Index(fl, `"`)]
		n := strings.Count(all, fl)
		switch {
		case strings.Contains(l, `"level":8`):
			if n != 0 {
				t.Errorf("level-8 alert mailed: %s", fl)
			}
		case n == 0:
			t.Errorf("log line not mailed: %s", fl)
		}
	}
}

// TestPostfixSendmail: the how-to scenario's alerts go through notify,
// the real sendmail and Postfix into /var/mail/root, one mail each.
func TestPostfixSendmail(t *testing.T) {
	requirePostfix(t)
	tag := uniqueTag(t)
	in, err := os.Open("../../testdata/notify/scenario.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--hostname", tag, "--spool", t.TempDir(),
		"--group-window", "0", "--max-per-hour", "0"}, in, &stdout, &stderr, &env{})
	if code != 0 || stderr.Len() > 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if n := strings.Count(stdout.String(), `"status":"sent"`); n != 6 {
		t.Fatalf("%d sent records, want 6:\n%s", n, stdout.String())
	}
	checkScenario(t, mailbox(t, tag, 6), tag, "10 - Suricata level 1 alert", "11 - Many high-severity Suricata alerts")
}

// TestPostfixSMTP: the same through SMTP to 127.0.0.1:25, grouped (the
// default window): one mail with the six alerts.
func TestPostfixSMTP(t *testing.T) {
	requirePostfix(t)
	tag := uniqueTag(t)
	in, err := os.Open("../../testdata/notify/scenario.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--hostname", tag, "--spool", t.TempDir(),
		"--smtp", "127.0.0.1:25"}, in, &stdout, &stderr, &env{})
	if code != 0 || stderr.Len() > 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	msgs := mailbox(t, tag, 1)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want one group", len(msgs))
	}
	checkScenario(t, msgs, tag, "11 - Many high-severity Suricata alerts") // the group's highest
	if got := msgs[0].Header.Get("X-Quietwatch-Alerts"); got != "6" {
		t.Errorf("X-Quietwatch-Alerts: %q", got)
	}
}

// TestPostfixHostile: the hostile golden alert (CR/LF, bad bytes in the
// description and the log) through sendmail -t: Postfix delivers it to
// root alone (its log shows one recipient for the message: an injected Bcc
// would be a second), with no injected header and a decodable subject.
func TestPostfixHostile(t *testing.T) {
	requirePostfix(t)
	tag := uniqueTag(t)
	ar, err := txtar.ParseFile("../../testdata/notify/hostile.txtar")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ar.Files, func(f txtar.File) bool { return f.Name == "input" })
	if i < 0 {
		t.Fatal("hostile.txtar: no input section")
	}
	input := ar.Files[i].Data
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--hostname", tag, "--spool", t.TempDir()},
		bytes.NewReader(input), &stdout, &stderr, &env{})
	if code != 0 || stderr.Len() > 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// The tag is in the subject's encoded-words; search for its raw form.
	msgs := mailbox(t, tag, 1)
	m := msgs[0]
	for _, h := range []string{"Bcc", "X-Evil"} {
		if v := m.Header.Get(h); v != "" {
			t.Errorf("injected header %s: %q", h, v)
		}
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || !strings.Contains(subject, "Nmap Bcc: victim@example.com fake body") {
		t.Errorf("subject %q (%v)", subject, err)
	}
	// Postfix's log: cleanup names the queue id of our Message-ID, qmgr the
	// number of recipients of that queue id.
	plog, err := os.ReadFile("/var/log/postfix.log")
	if err != nil {
		hosttest.Missing(t, "no /var/log/postfix.log (postconf -e maillog_file=/var/log/postfix.log)")
	}
	qid := ""
	for _, l := range strings.Split(string(plog), "\n") {
		if strings.Contains(l, "message-id="+m.Header.Get("Message-ID")) {
			f := strings.Fields(l)
			qid = strings.TrimSuffix(f[len(f)-2], ":")
		}
	}
	if qid == "" {
		t.Fatalf("message %s not in /var/log/postfix.log", m.Header.Get("Message-ID"))
	}
	found := false
	for _, l := range strings.Split(string(plog), "\n") {
		if strings.Contains(l, qid+": from=<") {
			found = true
			if !strings.Contains(l, "nrcpt=1 ") {
				t.Errorf("more than one recipient: %s", l)
			}
		}
	}
	if !found {
		t.Fatalf("no qmgr line for %s in /var/log/postfix.log", qid)
	}
}

// TestPostfixMessageSize: the size test with the real Postfix and its
// default message_size_limit (10,240,000): 7 alerts with 700 kB non-ASCII
// logs, one group, by SMTP. The old notify made one 13.1 MB message:
// Postfix answered 552, the message went to failed/, nothing arrived. Now
// every part arrives, each under the limit, and together they show every
// alert the group kept. The mail goes to the user nobody, whose mailbox
// the test removes: 13 MB more in root's would slow down every test that
// reads it.
func TestPostfixMessageSize(t *testing.T) {
	requirePostfix(t)
	const box = "/var/mail/nobody"
	os.Remove(box)                       //nolint:errcheck // no other test mails nobody
	t.Cleanup(func() { os.Remove(box) }) //nolint:errcheck
	out, err := exec.Command("postconf", "-h", "message_size_limit").Output()
	if err != nil || strings.TrimSpace(string(out)) != "10240000" {
		t.Fatalf("postconf message_size_limit: %q, %v; the test wants Postfix's default, 10240000", out, err)
	}
	tag := uniqueTag(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "nobody", "--hostname", tag, "--spool", t.TempDir(),
		"--smtp", "127.0.0.1:25", "--retry-min", "10ms"}, strings.NewReader(bigAlerts(7, 700_000, "pf")), &stdout, &stderr, &env{})
	if code != 0 || stderr.Len() > 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	recs := mailLog(t, stdout.Bytes())
	if len(recs) < 2 {
		t.Fatalf("%d records, want the group in parts: %s", len(recs), stdout.String())
	}
	var want []string
	for _, r := range recs {
		if r.Mail.Status != "sent" {
			t.Fatalf("record %+v", r.Mail)
		}
		want = append(want, r.Mail.Alerts...)
	}
	msgs := mailboxAt(t, box, tag, len(recs))
	var got []string
	for _, m := range msgs {
		var raw bytes.Buffer
		raw.WriteString("Subject: " + m.Header.Get("Subject") + "\nContent-Transfer-Encoding: " +
			m.Header.Get("Content-Transfer-Encoding") + "\n\n")
		raw.ReadFrom(m.Body) //nolint:errcheck
		subject, body := decodedBody(t, raw.Bytes())
		if !strings.HasPrefix(subject, "quietwatch Alert - "+tag+" - Level 10 - Suricata level 1 alert (") {
			t.Errorf("subject %q", subject)
		}
		got = append(got, tags(body)...)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") || len(got) < 5 {
		t.Errorf("delivered %v, want %v", got, want)
	}
}
