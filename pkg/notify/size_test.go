package notify

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/mail"
	"github.com/quietwatch/quietwatch/pkg/spool"
)

// postfixLimit is Postfix's default message_size_limit.
const postfixLimit = 10_240_000

// bigAlerts returns n alerts whose log carries tag=<prefix>NN and about
// logBytes bytes of "é" (two bytes each, six once quoted-printable).
func bigAlerts(n, logBytes int, prefix string) string {
	var b strings.Builder
	filler := strings.Repeat("é", logBytes/2)
	for i := range n {
		tag := fmt.Sprintf("%s%02d", prefix, i)
		b.WriteString(strings.Replace(alertLine(tag, tag, 10), "ET SCAN tag="+tag+" ", "ET SCAN tag="+tag+" "+filler+" ", 1))
	}
	return b.String()
}

// TestMessageSizeCap: 7 alerts with 700 kB non-ASCII logs in one group.
// Quoted-printable triples such a log; the old notify capped the JSON
// bytes only (4 MiB: 6 of these alerts) and made one 13.1 MB message, which
// Postfix (message_size_limit 10,240,000 by default) refuses for good: none
// of the alerts was mailed.
// Now no message exceeds maxMessage on the wire (CRLF counted): the alerts
// the group keeps go out in parts, one per message here, each saying so,
// the last one counting the alert not shown; the parts count as one mail
// for the hourly limit.
func TestMessageSizeCap(t *testing.T) {
	const total = 7
	dir := t.TempDir()
	mta := &fakeMTA{}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--hostname", "vm", "--spool", dir, "--max-per-hour", "2"},
		strings.NewReader(bigAlerts(total, 700_000, "big")), &stdout, &stderr, &env{transport: mta})
	if code != 0 || stderr.Len() > 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	msgs := mta.messages()
	recs := mailLog(t, stdout.Bytes())
	if len(msgs) < 2 || len(recs) != len(msgs) {
		t.Fatalf("%d messages, %d records: want the group in several parts", len(msgs), len(recs))
	}
	var shown []string
	for i, m := range msgs {
		if size := mail.WireSize(m); size > mail.MaxMessage || size > postfixLimit/2 {
			t.Errorf("message %d: %d bytes on the wire", i, size)
		}
		subject, body := decodedBody(t, m)
		suffix := fmt.Sprintf(" (%d/%d)", i+1, len(msgs))
		if subject != "quietwatch Alert - vm - Level 10 - Suricata level 1 alert"+suffix {
			t.Errorf("message %d: subject %q", i, subject)
		}
		if !strings.HasPrefix(body, fmt.Sprintf("quietwatch: part %d of %d of one notification", i+1, len(msgs))) {
			t.Errorf("message %d: body starts %.80q", i, body)
		}
		got := tags(body)
		shown = append(shown, got...)
		r := recs[i].Mail
		if r.Status != "sent" || r.Part != i+1 || r.Parts != len(msgs) || strings.Join(r.Alerts, ",") != strings.Join(got, ",") {
			t.Errorf("record %d: %+v; body shows %v", i, r, got)
		}
		last := i == len(msgs)-1
		if notShown := strings.Contains(body, fmt.Sprintf("%d more alert(s) are not shown", total-len(shown))); last != notShown || last != (r.Omitted > 0) {
			t.Errorf("message %d (last %v): omitted %d; body counts the others: %v", i, last, r.Omitted, notShown)
		}
		if strings.Contains(body, "not shown: it is too large") {
			t.Errorf("message %d: an alert was cut; it fits alone", i)
		}
	}
	// The group kept the first alerts (its memory budget) and shows them
	// all, in order; the rest are counted.
	if len(shown) < 5 || len(shown) == total || recs[len(recs)-1].Mail.Omitted != total-len(shown) {
		t.Errorf("shown %v, last record %+v", shown, recs[len(recs)-1].Mail)
	}
	for i, tag := range shown {
		if tag != fmt.Sprintf("big%02d", i) {
			t.Errorf("shown %v: not the first alerts in order", shown)
			break
		}
	}
	sp, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if st := sp.State(); len(st.Sent) != 1 || st.Consumed != total {
		t.Errorf("state %+v: want one mail for the limit, all alerts consumed", st)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "journal-*")); len(left) != 0 {
		t.Errorf("journal left: %v", left)
	}
}

// TestMessagePartsCrash: the parts of one notification are separate
// spooled messages, each holding the journal up to its last alert: if
// notify stops after spooling the first, the next run sends it and mails
// the other alerts from the journal, none twice.
func TestMessagePartsCrash(t *testing.T) {
	const maxMessage = 40_000
	dir := t.TempDir()
	sp, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := newNotifier(Config{From: "quietwatch@vm", To: []string{"root"}, Host: "vm", MinLevel: 9, Window: 0, MaxMessage: maxMessage}, sp, &fakeMTA{}, &bytes.Buffer{}, &bytes.Buffer{})
	g := &mail.Group{}
	in := bigAlerts(6, 10_000, "p")
	for i, l := range strings.Split(strings.TrimSpace(in), "\n") {
		seq, err := sp.Append([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		g.Add(&mail.Item{Seq: seq, Level: 10, ID: fmt.Sprintf("p%02d", i), Raw: []byte(l)}, mail.MaxShown)
	}
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	parts, err := n.render.Messages(mail.Outcome{G: g}, t0, n.newID)
	if err != nil || len(parts) < 3 {
		t.Fatalf("%d parts, %v", len(parts), err)
	}
	// What apply1 does for the first part only; then a "crash".
	first := parts[0]
	if _, err := sp.Put(spool.Meta{Upto: first.Items[len(first.Items)-1].Seq, Created: t0, To: []string{"root"},
		MessageID: first.Msg.MessageID, Part: 1, Parts: len(parts), Alerts: alertIDs(first.Items)}, first.Raw); err != nil {
		t.Fatal(err)
	}
	sp.Close()

	mta := &fakeMTA{}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"notify", "--to", "root", "--hostname", "vm", "--spool", dir, "--max-per-hour", "0"},
		strings.NewReader(""), &stdout, &stderr, &env{transport: mta, maxMessage: maxMessage})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	count := map[string]int{}
	for _, m := range mta.messages() {
		if mail.WireSize(m) > maxMessage {
			t.Errorf("message of %d bytes", mail.WireSize(m))
		}
		_, body := decodedBody(t, m)
		for _, tag := range tags(body) {
			count[tag]++
		}
	}
	for i := range 6 {
		if tag := fmt.Sprintf("p%02d", i); count[tag] != 1 {
			t.Errorf("%s mailed %d times (%v)", tag, count[tag], count)
		}
	}
}

// TestAlertTooLargeAlone: an alert that does not fit in a message on its
// own is cut, and its message says how much is not shown; with a
// --template that makes it larger still, too.
func TestAlertTooLargeAlone(t *testing.T) {
	const maxMessage = 100_000
	tmpl := filepath.Join(t.TempDir(), "t.tmpl")
	if err := os.WriteFile(tmpl, []byte("{{range .Alerts}}{{.FullLog}}\n{{.FullLog}}\n{{.FullLog}}\n{{range .PreviousOutput}}{{.}}\n{{end}}{{end}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{nil, {"--template", tmpl}} {
		mta := &fakeMTA{}
		var stdout, stderr bytes.Buffer
		in := bigAlerts(1, 500_000, "cut") + alertLine("small", "small", 10)
		code := run(context.Background(), append([]string{"notify", "--to", "root", "--hostname", "vm", "--spool", t.TempDir()}, args...),
			strings.NewReader(in), &stdout, &stderr, &env{transport: mta, maxMessage: maxMessage})
		if code != 0 || stderr.Len() > 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
		}
		msgs := mta.messages()
		var all string
		for _, m := range msgs {
			if size := mail.WireSize(m); size > maxMessage {
				t.Errorf("%v: message of %d bytes", args, size)
			}
			_, body := decodedBody(t, m)
			all += body
		}
		if len(msgs) == 0 || !strings.Contains(all, "tag=cut00 éé") || !strings.Contains(all, "tag=small") {
			t.Errorf("%v: %d messages:\n%.300s", args, len(msgs), all)
		}
		if !strings.Contains(all, " bytes of this alert not shown: it is too large for one mail]") {
			t.Errorf("%v: the cut alert does not say so", args)
		}
	}
}
