package mail

import (
	"bytes"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

var date = time.Date(2026, 11, 28, 21, 0, 0, 0, time.UTC)

func parse(t *testing.T, raw []byte) (*mail.Message, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail cannot read the message: %v\n%s", err, raw)
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
	return m, string(body)
}

// checkWire checks what an MTA needs: 7-bit, lines <= 998, no control
// characters, headers only from the known set.
func checkWire(t *testing.T, raw []byte) {
	t.Helper()
	known := "From To Date Message-ID Subject MIME-Version Content-Type Content-Transfer-Encoding X-Test"
	header := true
	for i, l := range strings.Split(string(raw), "\n") {
		if len(l) > 998 {
			t.Errorf("line %d has %d bytes", i+1, len(l))
		}
		for _, c := range []byte(l) {
			if c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f {
				t.Errorf("line %d: byte %#x", i+1, c)
				break
			}
		}
		if header {
			if l == "" {
				header = false
				continue
			}
			if l[0] == ' ' || l[0] == '\t' {
				continue
			}
			name, _, _ := strings.Cut(l, ":")
			if !strings.Contains(" "+known+" ", " "+name+" ") {
				t.Errorf("unexpected header line %q", l)
			}
		}
	}
}

func TestPlainMessage(t *testing.T) {
	m := &Message{From: "quietwatch@vm", To: []string{"root", "a@example.com"}, Date: date, MessageID: "1.2@vm",
		Subject: "quietwatch Alert - vm - Level 10 - Suricata level 1 alert", Body: "line one\nline two\n"}
	raw := m.Bytes()
	checkWire(t, raw)
	want := "From: quietwatch@vm\nTo: root, a@example.com\nDate: Sat, 28 Nov 2026 21:00:00 +0000\nMessage-ID: <1.2@vm>\n" +
		"Subject: quietwatch Alert - vm - Level 10 - Suricata level 1 alert\nMIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\nline one\nline two\n"
	if string(raw) != want {
		t.Errorf("got\n%s\nwant\n%s", raw, want)
	}
}

func TestHeaderInjection(t *testing.T) {
	for _, subject := range []string{
		"a\r\nBcc: victim@example.com",
		"a\nBcc: victim@example.com",
		"a\rBcc: victim@example.com",
		"a\r\n\r\nbody",
		"a\x00\x1b\x7f\u0085\u2028b",
		"caf\xc3\xa9 \xff\xfe",
		strings.Repeat("x", 3000),
		strings.Repeat("é", 500),
		"=?utf-8?q?Bcc=3A_x?=",
	} {
		m := &Message{From: "a\r\nBcc: x@y", To: []string{"root\nCc: z@y"}, Date: date, MessageID: "x\r\nX-Evil: 1",
			Subject: subject, Body: "b\n", Extra: [][2]string{{"X-Test", "v\r\nX-Evil: 2"}}}
		raw := m.Bytes()
		checkWire(t, raw)
		pm, _ := parse(t, raw)
		for _, h := range []string{"Bcc", "Cc", "X-Evil"} {
			if v := pm.Header.Get(h); v != "" {
				t.Errorf("subject %q: injected %s: %q", subject, h, v)
			}
		}
		got, err := DecodeHeader(pm.Header.Get("Subject"))
		if err != nil {
			t.Errorf("subject %q: %v", subject, err)
		}
		if !utf8.ValidString(got) || strings.ContainsAny(got, "\r\n\x00") {
			t.Errorf("subject %q decodes to %q", subject, got)
		}
	}
}

func TestSubjectRoundTrip(t *testing.T) {
	for _, s := range []string{
		"quietwatch Alert - vm - Level 10 - Suricata level 1 alert",
		"quietwatch Alert - vm - Level 10 - ET SCAN Überprüfung ünd café",
		"long " + strings.Repeat("word ", 60),
		"x" + strings.Repeat("y", 200),
		"Rule =?not?an?encoded?word?=",
	} {
		m := &Message{From: "a@b", To: []string{"root"}, Date: date, MessageID: "1@b", Subject: s, Body: "x\n"}
		raw := m.Bytes()
		checkWire(t, raw)
		pm, _ := parse(t, raw)
		got, err := DecodeHeader(pm.Header.Get("Subject"))
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(s); got != want {
			t.Errorf("subject %q came back %q", s, got)
		}
	}
}

func TestBodyEncoding(t *testing.T) {
	long := strings.Repeat("0123456789", 150)
	cases := []struct {
		name, body, want, cte string
	}{
		{"ascii", "hello\n", "hello\n", "7bit"},
		{"utf8", "café\n", "café\n", "quoted-printable"},
		{"invalid", "a\xff\xfeb\n", "a\ufffd\ufffdb\n", "quoted-printable"},
		{"controls", "a\x00b\x1bc\rd\r\ne\n", `a\x00b\x1bc\rd` + "\ne\n", "7bit"},
		{"long", long + "\n", long + "\n", "quoted-printable"},
		{"from", "From here\n>From there\n", "From here\n>From there\n", "7bit"},
		{"from-qp", "é\nFrom here\n", "é\nFrom here\n", "quoted-printable"},
		{"from-qp-long", "é\nFrom " + long + "\n", "é\nFrom " + long + "\n", "quoted-printable"},
		{"dot", "a\n.\nb\n", "a\n.\nb\n", "7bit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &Message{From: "a@b", To: []string{"root"}, Date: date, MessageID: "1@b", Subject: "s", Body: c.body}
			raw := m.Bytes()
			checkWire(t, raw)
			pm, body := parse(t, raw)
			if got := pm.Header.Get("Content-Transfer-Encoding"); got != c.cte {
				t.Errorf("encoding %s, want %s", got, c.cte)
			}
			// quotedprintable.Reader gives CRLF for hard line breaks
			body = strings.ReplaceAll(body, "\r\n", "\n")
			if body != c.want {
				t.Errorf("body %q, want %q", body, c.want)
			}
			if c.cte == "quoted-printable" {
				_, encoded, _ := strings.Cut(string(raw), "\n\n")
				for _, l := range strings.Split(encoded, "\n") {
					if len(l) > 76 {
						t.Errorf("quoted-printable line of %d characters: %q", len(l), l)
					}
				}
			}
			if c.name == "from-qp" && bytes.Contains(raw, []byte("\nFrom ")) {
				t.Error(`a quoted-printable "From " line is not protected`)
			}
		})
	}
}

func TestCheckAddress(t *testing.T) {
	for _, ok := range []string{"root", "admin.team", "ops+alerts", "root@example.com", "a.b@mail.example.com"} {
		if err := CheckAddress(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "root\n", "Root <root@x>", "a@b, c@d", "<a@b>", "a\r\nBcc: x", strings.Repeat("a", 250) + "@b.cd"} {
		if err := CheckAddress(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMbox(t *testing.T) {
	var b bytes.Buffer
	mb := Mbox{W: &b}
	if err := mb.Write("quietwatch@vm", date, []byte("Subject: s\n\nFrom me\n>From you\nx")); err != nil {
		t.Fatal(err)
	}
	want := "From quietwatch@vm Sat Nov 28 21:00:00 2026\nSubject: s\n\n>From me\n>>From you\nx\n\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}

// FuzzMessage: whatever the subject and body, the message is 7-bit, has
// short lines, only the headers it should, and parses back.
func FuzzMessage(f *testing.F) {
	f.Add("quietwatch Alert - vm - Level 10 - x", "line\n")
	f.Add("a\r\nBcc: v@x", "From x\r\n.\r\n\xff")
	f.Add(strings.Repeat("é", 100), strings.Repeat("y", 2000))
	f.Fuzz(func(t *testing.T, subject, body string) {
		m := &Message{From: "a@b", To: []string{"root"}, Date: date, MessageID: "1@b", Subject: subject, Body: body}
		raw := m.Bytes()
		checkWire(t, raw)
		pm, _ := parse(t, raw)
		if _, err := DecodeHeader(pm.Header.Get("Subject")); err != nil {
			t.Errorf("subject does not decode: %v", err)
		}
	})
}

// textByRune is Text as it was written first, one rune at a time: the
// reference for Text, which copies runs of clean text whole.
func textByRune(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\r' && i+1 < len(s) && s[i+1] == '\n':
			case c == '\r':
				b.WriteString(`\r`)
			case (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f:
				fmt.Fprintf(&b, `\x%02x`, c)
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString("\ufffd")
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func FuzzText(f *testing.F) {
	f.Add("plain ascii\n\ttab")
	f.Add("a\r\nb\rc\x00d\x7f\xc2\x85e\u2028\xff\xfeé")
	f.Add("\r")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Text(s), textByRune(s); got != want {
			t.Errorf("Text(%q) = %q, want %q", s, got, want)
		}
	})
}

// TestBodyText: the body of a rendered message comes back as the text it
// was given, whether it went out as 7bit or quoted-printable; no message
// gives "".
func TestBodyText(t *testing.T) {
	for _, body := range []string{"plain ascii\nsecond line\n", "caf\u00e9 =3D " + strings.Repeat("x", 1200) + "\n"} {
		m := &Message{From: "quietwatch@vm", To: []string{"root"}, Date: date, MessageID: "1.a@vm", Subject: "s", Body: body}
		if got, want := BodyText(m.Bytes()), strings.TrimRight(body, "\n"); got != want {
			t.Errorf("BodyText = %.80q, want %.80q", got, want)
		}
	}
	if got := BodyText([]byte("no header line\n")); got != "" {
		t.Errorf("BodyText of no message = %q", got)
	}
}
