package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// alertLine returns a level-10 alert whose log line carries tag.
func alertLine(id, tag string, level int) string {
	return fmt.Sprintf(`{"timestamp":"2020-05-14T22:10:17.391373+0000","event_type":"alert","src_ip":"198.51.100.241","dest_ip":"198.51.100.44","proto":"TCP",`+
		`"full_log":"05/14/2020-22:10:17.391373  [**] [1:2024364:3] ET SCAN tag=%s [**] [Priority: 1] {TCP} 198.51.100.241:1 -> 198.51.100.44:80",`+
		`"location":"/var/log/suricata/fast.log","rule":{"id":"300011","level":%d,"description":"Suricata level 1 alert"},"id":"%s"}`+"\n", tag, level, id)
}

// fakeMTA is a Transport that keeps what it is given.
type fakeMTA struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (f *fakeMTA) Send(_ context.Context, _ string, _ []string, msg []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, append([]byte(nil), msg...))
	return nil
}

func (f *fakeMTA) messages() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.msgs...)
}

var tagRE = regexp.MustCompile(`tag=([A-Za-z0-9_-]+)`)

// decodedBody parses msg and returns its subject and decoded body.
func decodedBody(t *testing.T, msg []byte) (string, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("unparseable message: %v\n%s", err, msg)
	}
	var body []byte
	if m.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
		body, err = io.ReadAll(quotedprintable.NewReader(m.Body))
	} else {
		body, err = io.ReadAll(m.Body)
	}
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return subject, string(body)
}

// tags returns the tags of the alerts in a body, in order.
func tags(body string) []string {
	var out []string
	for _, m := range tagRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// mailLog parses notify's stdout.
func mailLog(t *testing.T, out []byte) []record.MailLog {
	t.Helper()
	var recs []record.MailLog
	for _, l := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var r record.MailLog
		if err := record.Unmarshal(l, &r); err != nil {
			t.Fatalf("bad mail log line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestHourlyLimit: 20 alerts, one every 3 minutes, with --max-per-hour 6
// give 6 mails, then one digest holding the 14 others as soon as the first
// mail is an hour old. The clock is synctest's: the hour passes at once.
func TestHourlyLimit(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		mta := &fakeMTA{}
		pr, pw := io.Pipe()
		go func() {
			for i := range 20 {
				io.WriteString(pw, alertLine(fmt.Sprintf("a%02d", i), fmt.Sprintf("a%02d", i), 10))
				time.Sleep(3 * time.Minute)
			}
			time.Sleep(time.Hour) // stdin stays open past the digest
			pw.Close()
		}()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"notify", "--to", "root", "--hostname", "vm",
			"--spool", dir, "--max-per-hour", "6"}, pr, &stdout, &stderr, &env{transport: mta})
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		msgs := mta.messages()
		if len(msgs) != 7 {
			t.Fatalf("%d messages, want 6 mails and 1 digest", len(msgs))
		}
		var all []string
		for i, m := range msgs {
			_, body := decodedBody(t, m)
			got := tags(body)
			if i < 6 && len(got) != 1 {
				t.Errorf("mail %d holds %v", i, got)
			}
			if i == 6 && (len(got) != 14 || !strings.Contains(body, "quietwatch Digest: 14 alert(s)")) {
				t.Errorf("digest holds %d alerts:\n%s", len(got), body)
			}
			all = append(all, got...)
		}
		if !sort.StringsAreSorted(all) || len(all) != 20 {
			t.Errorf("alerts mailed: %v", all)
		}
		var sent, queued int
		for _, r := range mailLog(t, stdout.Bytes()) {
			switch r.Mail.Status {
			case "sent":
				sent++
			case "queued":
				queued++
			default:
				t.Errorf("unexpected record %+v", r)
			}
		}
		if sent != 7 || queued != 14 {
			t.Errorf("mail log: %d sent, %d queued records; want 7 and 14", sent, queued)
		}
		if stderr.Len() > 0 {
			t.Errorf("stderr: %s", stderr.String())
		}
	})
}

// TestHeldStayInSpool: alerts the limit holds at the end of input stay in
// the spool, and the next run mails them as a digest (the limit's history
// is in the spool too, so a restart does not reset it).
func TestHeldStayInSpool(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		mta := &fakeMTA{}
		var in strings.Builder
		for i := range 4 {
			in.WriteString(alertLine(fmt.Sprintf("h%d", i), fmt.Sprintf("h%d", i), 10))
		}
		args := []string{"notify", "--to", "root", "--spool", dir, "--max-per-hour", "1", "--group-window", "0"}
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(in.String()), &stdout, &stderr, &env{transport: mta}); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if n := len(mta.messages()); n != 1 {
			t.Fatalf("first run: %d messages", n)
		}
		if !strings.Contains(stderr.String(), "3 alert(s) held back by the hourly limit stay in the spool") {
			t.Errorf("stderr: %s", stderr.String())
		}
		// A second run at once: the limit is still used up.
		stdout.Reset()
		stderr.Reset()
		if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, &env{transport: mta}); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if n := len(mta.messages()); n != 1 {
			t.Fatalf("second run sent at once: %d messages", n)
		}
		// An hour later: the digest.
		time.Sleep(time.Hour)
		stderr.Reset()
		if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, &env{transport: mta}); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		msgs := mta.messages()
		if len(msgs) != 2 {
			t.Fatalf("third run: %d messages", len(msgs))
		}
		_, body := decodedBody(t, msgs[1])
		if got := strings.Join(tags(body), ","); got != "h1,h2,h3" {
			t.Errorf("digest holds %s", got)
		}
	})
}

// TestFlood: a group far bigger than a mail can carry is one message that
// shows the first alerts (about 4 MiB) and counts the others; the mail log
// accounts for every alert (listed or counted), and nothing is left in the
// spool.
func TestFlood(t *testing.T) {
	const n = 20000
	var in strings.Builder
	for i := range n {
		in.WriteString(alertLine(fmt.Sprintf("f%05d", i), fmt.Sprintf("f%05d", i), 10))
	}
	dir := t.TempDir()
	mta := &fakeMTA{}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--spool", dir}, strings.NewReader(in.String()),
		&stdout, &stderr, &env{transport: mta})
	if code != 0 || stderr.Len() > 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	msgs := mta.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	if len(msgs[0]) > 6<<20 {
		t.Errorf("message of %d bytes", len(msgs[0]))
	}
	_, body := decodedBody(t, msgs[0])
	shown := len(tags(body))
	recs := mailLog(t, stdout.Bytes())
	if len(recs) != 1 || recs[0].Mail.Status != "sent" {
		t.Fatalf("%+v", recs)
	}
	m := recs[0].Mail
	if len(m.Alerts) != shown || m.Omitted != n-shown || shown < 1000 {
		t.Errorf("shown %d, listed %d, omitted %d", shown, len(m.Alerts), m.Omitted)
	}
	if !strings.Contains(body, fmt.Sprintf("%d more alert(s) are not shown", n-shown)) {
		t.Error("the body does not count the alerts it leaves out")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "journal-*")); len(left) != 0 {
		t.Errorf("journal left: %v", left)
	}
}

// TestLevelWrittenOtherwise: rule.level as 10.0, 1e1 or "10" (a jq step's
// doing) is level 10: mailed, shown as "level 10". A level that is not an
// integer is skipped with a diagnostic that says so, not "malformed JSON".
func TestLevelWrittenOtherwise(t *testing.T) {
	var in strings.Builder
	for i, lv := range []string{"10.0", "1e1", `"10"`, "10.5", `"high"`, "8.0"} {
		in.WriteString(strings.Replace(alertLine(fmt.Sprintf("a%d", i), fmt.Sprintf("t%d", i), 10), `"level":10`, `"level":`+lv, 1))
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--hostname", "vm", "--dry-run", "--group-window", "0"},
		strings.NewReader(in.String()), &stdout, &stderr, &env{})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	wantErr := "notify: stdin:4: rule.level is not an integer: 10.5, skipped\n" +
		"notify: stdin:5: rule.level is not an integer: \"high\", skipped\n"
	if stderr.String() != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), wantErr)
	}
	msgs := strings.Split(stdout.String(), "\nFrom quietwatch@vm ")
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3 (levels 10.0, 1e1, \"10\"):\n%s", len(msgs), stdout.String())
	}
	for i, m := range msgs {
		m = m[strings.IndexByte(m, '\n')+1:]
		subject, body := decodedBody(t, []byte(m))
		if subject != "quietwatch Alert - vm - Level 10 - Suricata level 1 alert" {
			t.Errorf("message %d: subject %q", i, subject)
		}
		if !strings.Contains(body, `Rule: 300011 fired (level 10) -> "Suricata level 1 alert"`) ||
			!strings.Contains(body, fmt.Sprintf("tag=t%d ", i)) || !strings.Contains(body, "Src IP: 198.51.100.241") {
			t.Errorf("message %d: body\n%s", i, body)
		}
	}
}

// TestSubjectControlCharacters: control characters in a description
// become spaces in the Subject header (a one-line summary; runs collapse),
// as docs/notify.md says, while the body shows them escaped. The mail log
// records the subject the mail shows.
func TestSubjectControlCharacters(t *testing.T) {
	desc := `Nmap\r\nBcc: x@example.com\u001b[31m\u0000red\t \u0085end\u2028 `
	line := strings.Replace(alertLine("a1", "t1", 10), `"description":"Suricata level 1 alert"`, `"description":"`+desc+`"`, 1)
	mta := &fakeMTA{}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--hostname", "vm", "--spool", t.TempDir(), "--group-window", "0"},
		strings.NewReader(line), &stdout, &stderr, &env{transport: mta})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	msgs := mta.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	const want = "quietwatch Alert - vm - Level 10 - Nmap Bcc: x@example.com [31m red end"
	subject, body := decodedBody(t, msgs[0])
	if subject != want {
		t.Errorf("subject %q\n   want %q", subject, want)
	}
	if recs := mailLog(t, stdout.Bytes()); len(recs) != 1 || recs[0].Mail.Subject != want {
		t.Errorf("mail log %+v, want subject %q", recs, want)
	}
	if !strings.Contains(body, `-> "Nmap\r\nBcc: x@example.com\x1b[31m\x00red`) {
		t.Errorf("body does not show the description escaped:\n%s", body)
	}
}
