package mail

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// MaxShown caps the alerts a group keeps to show (the others are counted),
// in bytes of their JSON lines plus 256 each (about what the layout adds):
// it bounds memory under a flood. It does not bound a message's size:
// quoted-printable may triple a non-ASCII log. MaxMessage does.
const MaxShown = 4 << 20

// MaxMessage caps the size of a message as the MTA receives it: headers
// and encoded body, every line end counted as CRLF. It is under half of
// Postfix's default message_size_limit (10,240,000 bytes, which also
// counts the headers Postfix adds), so no message is refused for its size.
// A group whose message would be larger goes out as several messages
// ("part 1 of 3"), and an alert too large for a message on its own is
// shown cut, saying so. Renderer.MaxSize lowers it (tests).
const MaxMessage = 5_000_000

// partSlack is what a part may grow by between its measure and its final
// rendering (its real part numbers instead of the widest ones).
const partSlack = 1 << 10

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
	// Part and Parts: this message is part Part of Parts of one
	// notification that did not fit in one message (0 and 0 when it did).
	Part, Parts int
	Total       int // alerts in the whole notification (all parts, shown or not)
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

// Renderer turns the batcher's outcomes into messages.
type Renderer struct {
	Host     string // in subjects and bodies
	From     string
	To       []string
	MaxMails int                // the hourly limit a digest names (0: none)
	Template *template.Template // nil: the OSSEC layout
	MaxSize  int                // a message's largest wire size (0: MaxMessage)
}

func (r *Renderer) maxSize() int {
	if r.MaxSize <= 0 {
		return MaxMessage
	}
	return r.MaxSize
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

// Subject returns the subject for g (its highest level's alert).
func (r *Renderer) Subject(g *Group) string {
	a := g.Top().full()
	// Control characters become spaces here (the body shows them escaped):
	// the subject is a summary, and this is the text the mail shows.
	d := HeaderText(description(a))
	if utf8.RuneCountInString(d) > maxDescription {
		d = string([]rune(d)[:maxDescription]) + "…"
	}
	return HeaderText(fmt.Sprintf("quietwatch Alert - %s - Level %d - %s", r.Host, level(a), d))
}

// view is what one message of an outcome shows.
type view struct {
	alerts      []*record.Alert // cleaned
	omitted     int
	part, parts int  // 0, 0: the outcome's only message
	builtin     bool // the OSSEC layout even with a --template
}

// body renders the body of a message.
func (r *Renderer) body(o Outcome, v view) (string, error) {
	data := TemplateData{Host: r.Host, Digest: o.Digest, Level: o.G.Top().Level, Alerts: v.alerts, Omitted: v.omitted,
		MaxMails: r.MaxMails, Part: v.part, Parts: v.parts, Total: o.G.Count()}
	if r.Template != nil && !v.builtin {
		var b bytes.Buffer
		if err := r.Template.Execute(&b, data); err != nil {
			return ossecBody(data), err
		}
		return b.String(), nil
	}
	return ossecBody(data), nil
}

// ossecBody lays the alerts out as OSSEC's mails do, oldest first.
func ossecBody(d TemplateData) string {
	var b strings.Builder
	if d.Parts > 1 {
		fmt.Fprintf(&b, "quietwatch: part %d of %d of one notification: its alerts did not fit in one mail.\n\n", d.Part, d.Parts)
	}
	if d.Digest {
		fmt.Fprintf(&b, "quietwatch Digest: %d alert(s) that waited for the hourly mail limit", d.Total)
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
		fmt.Fprintf(&b, "\n%d more alert(s) are not shown: the message would exceed %d MiB.\n", d.Omitted, MaxShown>>20)
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
	c.EventType = oneLine(a.EventType)
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
		ea.Action = oneLine(ea.Action)
		ea.FastAction = oneLine(ea.FastAction)
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
	return Text(s)
}

// build renders one message of o.
func (r *Renderer) build(o Outcome, v view, now time.Time, msgID string) (*Message, []byte, error) {
	body, err := r.body(o, v)
	subject := r.Subject(o.G)
	if v.parts > 1 {
		subject += fmt.Sprintf(" (%d/%d)", v.part, v.parts)
	}
	m := &Message{
		From:      r.From,
		To:        r.To,
		Date:      now,
		MessageID: msgID,
		Subject:   subject,
		Body:      body,
		Extra:     [][2]string{{"Auto-Submitted", "auto-generated"}, {"X-Quietwatch-Alerts", strconv.Itoa(len(v.alerts) + v.omitted)}},
	}
	return m, m.Bytes(), err
}
