package mail

import (
	"bytes"
	"io"
	"time"
)

// Mbox writes messages in mboxrd format: a "From sender date" separator
// line, the message with every line that matches ">*From " quoted with one
// more ">", and a blank line.
type Mbox struct {
	W io.Writer
}

// Write appends msg (LF line ends, as Message.Bytes renders it) in one
// Write call.
func (m Mbox) Write(sender string, date time.Time, msg []byte) error {
	var b bytes.Buffer
	b.Grow(len(msg) + 128)
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	b.WriteString("From ")
	b.WriteString(cleanHeader(sender))
	b.WriteByte(' ')
	b.WriteString(date.UTC().Format("Mon Jan _2 15:04:05 2006"))
	b.WriteByte('\n')
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		msg = msg[len(line):]
		if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
			b.WriteByte('>')
		}
		b.Write(line)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	_, err := m.W.Write(b.Bytes())
	return err
}
