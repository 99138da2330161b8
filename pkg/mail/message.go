// Package mail builds RFC 5322 text messages that MTAs accept whatever the
// input held, and hands them to an MTA (sendmail or SMTP) or writes them to
// an mbox. Message, the transports and Mbox know nothing of alerts: callers
// give them a subject and a body.
//
// On top of them, alert mail: a Batcher groups alerts (a fixed window) and
// applies the hourly limit, holding the excess for one digest (batch.go); a
// Renderer lays a group out as OSSEC's mails do or through a template
// (render.go), in several messages when one would exceed MaxMessage
// (parts.go).
//
// Safety rules: nothing from a caller reaches a header raw. Header values
// lose CR, LF and other control characters, invalid UTF-8 becomes U+FFFD,
// non-ASCII subjects are RFC 2047 encoded and long headers are folded. The
// body is valid UTF-8 text; it is sent as 7bit when it is plain ASCII with
// short lines and as quoted-printable otherwise, so no line exceeds the
// 998-byte limit of RFC 5322 and no raw 8-bit byte travels.
package mail

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Message is one mail. Build it, then render it with Bytes.
type Message struct {
	From      string   // an address (user@host) or a bare local part
	To        []string // addresses or bare local parts, at least one
	Date      time.Time
	MessageID string // without angle brackets: "1589494218.4f3a@host"
	Subject   string
	Body      string // text; any bytes: rendering makes it safe
	// Extra headers in order (name, value pairs); values are sanitized.
	Extra [][2]string
}

// localPart is what Postfix and sendmail accept as an unqualified address
// (they append $myorigin): "root", "admin.team", "ops+alerts".
var localPart = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+/=?^_{|}~.-]+$`)

// CheckAddress reports whether addr may be used in From or To: an RFC 5322
// address without a display name, or a bare local part such as "root".
func CheckAddress(addr string) error {
	if addr == "" {
		return fmt.Errorf("empty address")
	}
	if len(addr) > 254 { // RFC 5321's limit for a path
		return fmt.Errorf("address %.20q...: longer than 254 bytes", addr)
	}
	if localPart.MatchString(addr) {
		return nil
	}
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if a.Name != "" || a.Address != addr {
		return fmt.Errorf("address %q: give only the address (user@host), no name or brackets", addr)
	}
	return nil
}

// Bytes renders the message with LF line endings (sendmail and mbox want
// LF; the SMTP transport converts to CRLF).
func (m *Message) Bytes() []byte {
	var b bytes.Buffer
	b.Grow(len(m.Body) + 512)
	writeHeader(&b, "From", cleanHeader(m.From))
	to := make([]string, len(m.To))
	for i, t := range m.To {
		to[i] = cleanHeader(t)
	}
	writeHeader(&b, "To", strings.Join(to, ", "))
	writeHeader(&b, "Date", m.Date.Format(time.RFC1123Z))
	writeHeader(&b, "Message-ID", "<"+cleanHeader(m.MessageID)+">")
	writeHeader(&b, "Subject", EncodeHeader(m.Subject))
	for _, h := range m.Extra {
		writeHeader(&b, h[0], EncodeHeader(h[1]))
	}
	body := Text(m.Body)
	writeHeader(&b, "MIME-Version", "1.0")
	writeHeader(&b, "Content-Type", "text/plain; charset=utf-8")
	if needsQP(body) {
		writeHeader(&b, "Content-Transfer-Encoding", "quoted-printable")
		b.WriteByte('\n')
		writeQP(&b, body)
	} else {
		writeHeader(&b, "Content-Transfer-Encoding", "7bit")
		b.WriteByte('\n')
		b.WriteString(body)
	}
	if b.Len() > 0 && b.Bytes()[b.Len()-1] != '\n' {
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// writeHeader writes "Name: value", folded at spaces so that lines stay
// under 78 characters where a space allows it (RFC 5322 2.2.3).
func writeHeader(b *bytes.Buffer, name, value string) {
	line := name + ": "
	col := len(line)
	b.WriteString(line)
	words := strings.Split(value, " ")
	for i, w := range words {
		if i > 0 {
			if col+1+len(w) > 78 && col > len(name)+2 {
				b.WriteString("\n ")
				col = 1
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteByte('\n')
}

// HeaderText returns s as a header shows it: valid UTF-8 (invalid bytes
// become U+FFFD), every control character (CR and LF included: they would
// start a new header) and white space made a space, runs of them collapsed
// to one, none at either end. A header is a one-line summary: escapes such
// as the body's \r or \x1b would only clutter it. Message.Bytes applies it
// to every header; callers use it to know the text a header will show
// (notify's mail log records the subject as the mail shows it).
func HeaderText(s string) string { return cleanHeader(s) }

// cleanHeader is HeaderText.
func cleanHeader(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range strings.ToValidUTF8(s, "\ufffd") {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// maxWord is the longest run of non-space ASCII a header value may carry
// unencoded; longer runs could not be folded under 78 characters.
const maxWord = 60

// EncodeHeader returns s cleaned (see cleanHeader) and, if it is not plain
// printable ASCII in foldable words, encoded as RFC 2047 encoded-words
// (Q encoding, UTF-8), each at most 75 characters, separated by spaces.
func EncodeHeader(s string) string {
	s = cleanHeader(s)
	plain := !strings.Contains(s, "=?")
	for _, w := range strings.Split(s, " ") {
		if len(w) > maxWord {
			plain = false
		}
	}
	for i := 0; i < len(s) && plain; i++ {
		if s[i] >= utf8.RuneSelf {
			plain = false
		}
	}
	if plain {
		return s
	}
	return encodeWords(s)
}

// encodeWords encodes s as Q encoded-words of at most 75 characters. The
// standard library's encoder leaves ASCII alone, which would keep a long
// word or a literal "=?" unencoded, so this always encodes.
func encodeWords(s string) string {
	const prefix, suffix = "=?utf-8?q?", "?="
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, prefix+cur.String()+suffix)
			cur.Reset()
		}
	}
	for _, r := range s {
		var enc string
		switch {
		case r == ' ':
			enc = "_"
		case r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!*+-/", r)):
			enc = string(r)
		default:
			var buf [utf8.UTFMax]byte
			n := utf8.EncodeRune(buf[:], r)
			var e strings.Builder
			for _, c := range buf[:n] {
				fmt.Fprintf(&e, "=%02X", c)
			}
			enc = e.String()
		}
		if len(prefix)+cur.Len()+len(enc)+len(suffix) > 75 {
			flush()
		}
		cur.WriteString(enc)
	}
	flush()
	return strings.Join(out, " ")
}

// DecodeHeader decodes RFC 2047 encoded-words in a header value (for tests
// and readers of the mbox).
func DecodeHeader(s string) (string, error) {
	return new(mime.WordDecoder).DecodeHeader(s)
}

// Text makes s safe as body text: invalid UTF-8 becomes U+FFFD, CRLF
// becomes LF, a lone CR (an invisible line break in some readers) is shown
// as "\r", and other control characters but tab and LF as \xNN. Callers
// build bodies with "\n" line ends.
func Text(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	// Runs of text that stay as they are are copied whole: a log is
	// mostly such a run.
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != 0x7f || c == '\n' || c == '\t' {
				i++
				continue
			}
			b.WriteString(s[start:i])
			switch {
			case c == '\r' && i+1 < len(s) && s[i+1] == '\n':
				// CRLF: a line end written the other way
			case c == '\r':
				b.WriteString(`\r`)
			default:
				fmt.Fprintf(&b, `\x%02x`, c)
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(s[start:i])
			b.WriteString("\ufffd")
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			b.WriteString(s[start:i])
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b.WriteString(s[start:])
	return b.String()
}

// needsQP reports whether body cannot travel as 7bit: a non-ASCII byte or
// a line longer than 998 bytes.
func needsQP(body string) bool {
	line := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c >= utf8.RuneSelf {
			return true
		}
		if c == '\n' {
			line = 0
			continue
		}
		line++
		if line > 998 {
			return true
		}
	}
	return false
}

// writeQP writes body quoted-printable with LF line ends. A line that
// starts with "From " is written "=46rom " so an mbox never mangles it.
func writeQP(b *bytes.Buffer, body string) {
	var q bytes.Buffer
	w := quotedprintable.NewWriter(&q)
	lines := strings.SplitAfter(body, "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "From ") {
			// The writer would copy "F" as is; encode it by hand. The
			// previous line ended with its newline, so the writer holds
			// nothing: close it, write "=46" and a soft line break (so the
			// fresh writer's 76-character count stays true), go on.
			w.Close() //nolint:errcheck // bytes.Buffer never fails
			q.WriteString("=46=\r\n")
			w = quotedprintable.NewWriter(&q)
			l = l[1:]
		}
		w.Write([]byte(l)) //nolint:errcheck
	}
	w.Close() //nolint:errcheck
	// CRLF to LF in place, copied run by run.
	out := q.Bytes()
	for len(out) > 0 {
		i := bytes.Index(out, []byte("\r\n"))
		if i < 0 {
			b.Write(out)
			break
		}
		b.Write(out[:i+1])
		b.Bytes()[b.Len()-1] = '\n'
		out = out[i+2:]
	}
}

// BodyText returns the body of a message Bytes rendered, decoded to
// plain text (LF line ends, no trailing newline); "" if msg is no message.
func BodyText(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	var r io.Reader = m.Body
	switch strings.ToLower(m.Header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	body, err := io.ReadAll(r)
	if err != nil && len(body) == 0 {
		return ""
	}
	return strings.TrimRight(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n")
}
