package notify

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/quietwatch/quietwatch/pkg/mail"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// maxBody caps the alerts a message shows, in bytes of their JSON lines
// plus 256 each (about what the layout adds): Postfix refuses messages
// over 10 MB by default (message_size_limit), and quoted-printable may add
// a third.
const maxBody = 4 << 20

// maxDescription caps the description in a subject (in runes).
const maxDescription = 200

// TemplateData is what a --template sees.
type TemplateData struct {
	Host     string          // --hostname
	Digest   bool            // alerts the hourly limit held back (or left by an earlier run)
	Level    int             // the highest level of the alerts
	Alerts   []*record.Alert // oldest first; strings made single-line and valid UTF-8
	Omitted  int             // alerts left out of the body by the size cap
	MaxMails int             // --max-per-hour
}

// templateFuncs are the functions a --template may call.
var templateFuncs = template.FuncMap{
	// date formats an alert timestamp the way OSSEC writes it in a mail.
	"date": ossecDate,
}

// ParseTemplate parses a --template file's text.
func ParseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
}

// renderer turns outcomes into messages.
type renderer struct {
	host     string
	from     string
	to       []string
	maxMails int
	tmpl     *template.Template // nil: the OSSEC layout
}

func level(a *record.Alert) int {
	if a.Rule == nil {
		return 0
	}
	return a.Rule.Level
}

func description(a *record.Alert) string {
	if a.Rule == nil {
		return ""
	}
	return a.Rule.Description
}

// subject returns the subject for g (its highest level's alert).
func (r *renderer) subject(g *group) string {
	a := g.top().full()
	// Control characters become spaces here (the body shows them escaped):
	// the subject is a summary, and this is the text the mail shows.
	d := mail.HeaderText(description(a))
	if utf8.RuneCountInString(d) > maxDescription {
		d = string([]rune(d)[:maxDescription]) + "…"
	}
	return mail.HeaderText(fmt.Sprintf("quietwatch Alert - %s - Level %d - %s", r.host, level(a), d))
}

// body renders the body of a mail holding items.
func (r *renderer) body(o outcome) (string, error) {
	// The group kept only what fits the size cap; the rest is counted.
	alerts := make([]*record.Alert, 0, len(o.g.items))
	for _, it := range o.g.items {
		alerts = append(alerts, clean(it.full()))
	}
	omitted := o.g.more
	data := TemplateData{Host: r.host, Digest: o.digest, Level: o.g.top().level, Alerts: alerts, Omitted: omitted, MaxMails: r.maxMails}
	if r.tmpl != nil {
		var b bytes.Buffer
		if err := r.tmpl.Execute(&b, data); err != nil {
			return ossecBody(data), err
		}
		return b.String(), nil
	}
	return ossecBody(data), nil
}

// ossecBody lays the alerts out as OSSEC's mails do, oldest first.
func ossecBody(d TemplateData) string {
	var b strings.Builder
	if d.Digest {
		fmt.Fprintf(&b, "quietwatch Digest: %d alert(s) that waited for the hourly mail limit", len(d.Alerts)+d.Omitted)
		if d.MaxMails > 0 {
			fmt.Fprintf(&b, " (%d mails an hour)", d.MaxMails)
		}
		b.WriteString(" or a restart, oldest first.\n\n")
	}
	for i, a := range d.Alerts {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("quietwatch Notification.\n")
		b.WriteString(ossecDate(a.Timestamp))
		b.WriteString("\n\nReceived From: ")
		b.WriteString(d.Host)
		b.WriteString("->")
		b.WriteString(a.Location)
		b.WriteString("\n")
		id := ""
		if a.Rule != nil {
			id = a.Rule.ID
		}
		fmt.Fprintf(&b, "Rule: %s fired (level %d) -> \"%s\"\n", id, level(a), description(a))
		if a.SrcIP != "" {
			b.WriteString("Src IP: " + a.SrcIP + "\n")
		}
		if a.DestIP != "" {
			b.WriteString("Dst IP: " + a.DestIP + "\n")
		}
		b.WriteString("Portion of the log(s):\n\n")
		if a.FullLog != "" {
			b.WriteString(a.FullLog + "\n")
		}
		for _, p := range a.PreviousOutput {
			b.WriteString(p + "\n")
		}
		b.WriteString("\n\n\n --END OF NOTIFICATION\n")
	}
	if d.Omitted > 0 {
		fmt.Fprintf(&b, "\n%d more alert(s) are not shown: the message would exceed %d MiB.\n", d.Omitted, maxBody>>20)
	}
	return b.String()
}

// ossecDate writes an EVE timestamp as OSSEC does: "2020 May 14 22:10:17"
// (the sensor's own time of day). Anything else is returned cleaned.
func ossecDate(ts string) string {
	for _, layout := range []string{"2006-01-02T15:04:05.999999999-0700", time.RFC3339Nano} {
		if t, err := time.Parse(layout, ts); err == nil {
			return t.Format("2006 Jan 02 15:04:05")
		}
	}
	return oneLine(ts)
}

// clean returns a copy of a with every string the body shows made one line
// of valid UTF-8: a log line with CR or LF cannot fake lines of the body.
func clean(a *record.Alert) *record.Alert {
	c := *a
	c.Timestamp = oneLine(a.Timestamp)
	c.SrcIP = oneLine(a.SrcIP)
	c.DestIP = oneLine(a.DestIP)
	c.Proto = oneLine(a.Proto)
	c.FullLog = oneLine(a.FullLog)
	c.Location = oneLine(a.Location)
	c.ID = oneLine(a.ID)
	if a.Rule != nil {
		r := *a.Rule
		r.ID = oneLine(r.ID)
		r.Description = oneLine(r.Description)
		c.Rule = &r
	}
	if a.Alert != nil {
		ea := *a.Alert
		ea.Signature = oneLine(ea.Signature)
		ea.Category = oneLine(ea.Category)
		c.Alert = &ea
	}
	if a.PreviousOutput != nil {
		c.PreviousOutput = make([]string, len(a.PreviousOutput))
		for i, p := range a.PreviousOutput {
			c.PreviousOutput[i] = oneLine(p)
		}
	}
	return &c
}

// oneLine returns s as valid UTF-8 without line breaks or control
// characters: CR is shown as \r, LF as \n, others as \xNN, invalid bytes
// as U+FFFD.
func oneLine(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	s = strings.ReplaceAll(s, "\n", `\n`)
	return mail.Text(s)
}

// message builds the mail for o.
func (r *renderer) message(o outcome, now time.Time, msgID string) (*mail.Message, error) {
	body, err := r.body(o)
	return &mail.Message{
		From:      r.from,
		To:        r.to,
		Date:      now,
		MessageID: msgID,
		Subject:   r.subject(o.g),
		Body:      body,
		Extra:     [][2]string{{"Auto-Submitted", "auto-generated"}, {"X-Quietwatch-Alerts", strconv.Itoa(o.g.count())}},
	}, err
}
