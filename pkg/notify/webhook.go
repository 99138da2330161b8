package notify

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"strings"

	"github.com/quietwatch/quietwatch/pkg/spool"
	"github.com/quietwatch/quietwatch/pkg/webhook"
)

// payload makes a spooled message a webhook's notification: its subject,
// and its body decoded to plain text.
func (n *notifier) payload(e spool.Entry) *webhook.Payload {
	p := &webhook.Payload{Host: n.cfg.Host, Subject: e.Meta.Subject, Alerts: e.Meta.Alerts, Omitted: e.Meta.Omitted,
		MessageID: e.Meta.MessageID, Digest: e.Meta.Digest, Part: e.Meta.Part, Parts: e.Meta.Parts, Time: e.Meta.Created.UTC()}
	if p.Alerts == nil {
		p.Alerts = []string{}
	}
	p.Text = messageText(e.Msg)
	return p
}

// messageText returns the body of a message notify made, decoded.
func messageText(msg []byte) string {
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
