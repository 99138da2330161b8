package notify

import (
	"github.com/quietwatch/quietwatch/pkg/mail"
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
	p.Text = mail.BodyText(e.Msg)
	return p
}
