package notify

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/quietwatch/quietwatch/pkg/mail"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// maxBody caps the alerts a group keeps to show (the others are counted),
// in bytes of their JSON lines plus 256 each (about what the layout adds):
// it bounds memory under a flood. It does not bound a message's size:
// quoted-printable may triple a non-ASCII log. maxMessage does.
const maxBody = 4 << 20

// maxMessage caps the size of a message as the MTA receives it: headers
// and encoded body, every line end counted as CRLF. It is under half of
// Postfix's default message_size_limit (10,240,000 bytes, which also
// counts the headers Postfix adds), so no message is refused for its size.
// A group whose message would be larger goes out as several messages
// ("part 1 of 3"), and an alert too large for a message on its own is
// shown cut, saying so. A variable so that tests can lower it.
var maxMessage = 5_000_000

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

// view is what one message of an outcome shows.
type view struct {
	alerts      []*record.Alert // cleaned
	omitted     int
	part, parts int  // 0, 0: the outcome's only message
	builtin     bool // the OSSEC layout even with a --template
}

// body renders the body of a message.
func (r *renderer) body(o outcome, v view) (string, error) {
	data := TemplateData{Host: r.host, Digest: o.digest, Level: o.g.top().level, Alerts: v.alerts, Omitted: v.omitted,
		MaxMails: r.maxMails, Part: v.part, Parts: v.parts, Total: o.g.count()}
	if r.tmpl != nil && !v.builtin {
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
	return mail.Text(s)
}

// build renders one message of o.
func (r *renderer) build(o outcome, v view, now time.Time, msgID string) (*mail.Message, []byte, error) {
	body, err := r.body(o, v)
	subject := r.subject(o.g)
	if v.parts > 1 {
		subject += fmt.Sprintf(" (%d/%d)", v.part, v.parts)
	}
	m := &mail.Message{
		From:      r.from,
		To:        r.to,
		Date:      now,
		MessageID: msgID,
		Subject:   subject,
		Body:      body,
		Extra:     [][2]string{{"Auto-Submitted", "auto-generated"}, {"X-Quietwatch-Alerts", strconv.Itoa(len(v.alerts) + v.omitted)}},
	}
	return m, m.Bytes(), err
}

// wireSize is the size of a rendered message (LF line ends) as the MTA
// receives it, with CRLF line ends.
func wireSize(raw []byte) int { return len(raw) + bytes.Count(raw, []byte{'\n'}) }

// part is one message of an outcome: the alerts it shows.
type part struct {
	items []*item
	msg   *mail.Message
	raw   []byte
}

// shown is an alert as a message shows it.
type shown struct {
	it *item
	a  *record.Alert
	// builtin: a --template made this alert too large even cut, so its
	// message uses the OSSEC layout.
	builtin bool
}

// messages renders o as one message, or as several when one would exceed
// maxMessage: the alerts in order, as many in each part as fit; an alert
// too large for a message of its own is cut (see cutAlert). The last part
// says how many alerts are not shown (o.g.more). The first error is a
// --template's (that message then uses the OSSEC layout).
func (r *renderer) messages(o outcome, now time.Time, newID func(time.Time) string) ([]part, error) {
	items := o.g.items
	if !sort.SliceIsSorted(items, func(i, j int) bool { return items[i].seq < items[j].seq }) {
		// Never so (a group keeps the first alerts it is given, in
		// order), but the parts' journal numbers rely on it.
		items = append([]*item(nil), items...)
		sort.SliceStable(items, func(i, j int) bool { return items[i].seq < items[j].seq })
	}
	all := make([]shown, len(items))
	alerts := make([]*record.Alert, len(items))
	for i, it := range items {
		alerts[i] = clean(it.full())
		all[i] = shown{it: it, a: alerts[i]}
	}
	if r.tmpl != nil || logsAtLeast(alerts) <= maxMessage {
		m, raw, err := r.build(o, view{alerts: alerts, omitted: o.g.more}, now, newID(now))
		if wireSize(raw) <= maxMessage {
			return []part{{items: items, msg: m, raw: raw}}, err
		}
	}
	chunks := r.split(o, all, now)
	parts := make([]part, len(chunks))
	var firstErr error
	for k, c := range chunks {
		v := view{part: k + 1, parts: len(chunks)}
		if k == len(chunks)-1 {
			v.omitted = o.g.more
		}
		for _, sh := range c {
			v.alerts = append(v.alerts, sh.a)
			v.builtin = v.builtin || sh.builtin
			parts[k].items = append(parts[k].items, sh.it)
		}
		m, raw, err := r.build(o, v, now, newID(now))
		if firstErr == nil {
			firstErr = err
		}
		parts[k].msg, parts[k].raw = m, raw
	}
	return parts, firstErr
}

// logsAtLeast returns a lower bound of the encoded size of the logs the
// OSSEC layout shows for alerts: each byte, and two more for each
// non-ASCII byte (quoted-printable writes it =XX). It saves rendering a
// message known to be too large.
func logsAtLeast(alerts []*record.Alert) int {
	n := 0
	count := func(s string) {
		n += len(s)
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				n += 2
			}
		}
	}
	for _, a := range alerts {
		count(a.FullLog)
		for _, p := range a.PreviousOutput {
			count(p)
		}
	}
	return n
}

// measure returns the wire size of a part showing c, rendered with the
// widest part numbers and the omitted count (so the final rendering is no
// larger, give or take partSlack).
func (r *renderer) measure(o outcome, c []shown, now time.Time) int {
	v := view{part: 9999, parts: 9999, omitted: o.g.more}
	for _, sh := range c {
		v.alerts = append(v.alerts, sh.a)
		v.builtin = v.builtin || sh.builtin
	}
	_, raw, _ := r.build(o, v, now, "9999999999999.000000000000@measure")
	return wireSize(raw)
}

// split packs the alerts, in order, into parts that each fit maxMessage.
// Sizes are measured by rendering (the layout or a --template is not
// additive in general): each alert alone first, for a greedy packing, then
// each part, which is halved until it fits.
func (r *renderer) split(o outcome, all []shown, now time.Time) [][]shown {
	limit := maxMessage - partSlack
	base := r.measure(o, nil, now)
	var packed [][]shown
	var cur []shown
	used := base
	for i := range all {
		size := r.measure(o, all[i:i+1], now)
		if size > limit {
			all[i] = r.cutToFit(o, all[i], limit, now)
			size = r.measure(o, all[i:i+1], now)
		}
		cost := size - base
		if len(cur) > 0 && used+cost > limit {
			packed = append(packed, cur)
			cur, used = nil, base
		}
		cur = append(cur, all[i])
		used += cost
	}
	if len(cur) > 0 {
		packed = append(packed, cur)
	}
	var out [][]shown
	var fit func(c []shown)
	fit = func(c []shown) {
		if len(c) == 1 || r.measure(o, c, now) <= limit {
			out = append(out, c)
			return
		}
		fit(c[:len(c)/2])
		fit(c[len(c)/2:])
	}
	for _, c := range packed {
		fit(c)
	}
	return out
}

// cutToFit cuts an alert's text until a message showing it alone fits
// limit: its logs share a budget, other strings are cut at 1 KiB. If a
// --template still makes it too large, the OSSEC layout shows it.
func (r *renderer) cutToFit(o outcome, sh shown, limit int, now time.Time) shown {
	orig := sh.a
	for budget := limit / 4; ; budget /= 2 {
		sh.a = cutAlert(orig, budget)
		if r.measure(o, []shown{sh}, now) <= limit {
			return sh
		}
		if budget < 1<<10 {
			if sh.builtin {
				return sh // cannot happen: 1 KiB of log and the layout fit
			}
			sh.builtin, budget = true, limit/2 // doubled back to limit/4
		}
	}
}

// maxCutField is the most an alert's single strings (description,
// location, ...) show when the alert is too large for one message.
const maxCutField = 1 << 10

// cutAlert returns a copy of a (cleaned) whose logs (full_log, then
// previous_output) show at most budget bytes in all and whose other
// strings show at most maxCutField bytes each, cut at character
// boundaries, with a last log line saying how much was left out.
func cutAlert(a *record.Alert, budget int) *record.Alert {
	c := *a
	removed := 0
	field := func(s string, max int) string {
		t := cutString(s, max)
		removed += len(s) - len(t)
		return t
	}
	c.Timestamp = field(c.Timestamp, maxCutField)
	c.SrcIP = field(c.SrcIP, maxCutField)
	c.DestIP = field(c.DestIP, maxCutField)
	c.Proto = field(c.Proto, maxCutField)
	c.Location = field(c.Location, maxCutField)
	c.EventType = field(c.EventType, maxCutField)
	c.ID = field(c.ID, maxCutField)
	if a.Rule != nil {
		r := *a.Rule
		r.ID = field(r.ID, maxCutField)
		r.Description = field(r.Description, maxCutField)
		c.Rule = &r
	}
	if a.Alert != nil {
		ea := *a.Alert
		ea.Signature = field(ea.Signature, maxCutField)
		ea.Category = field(ea.Category, maxCutField)
		ea.Action = field(ea.Action, maxCutField)
		ea.FastAction = field(ea.FastAction, maxCutField)
		c.Alert = &ea
	}
	c.FullLog = field(c.FullLog, budget)
	budget -= len(c.FullLog)
	c.PreviousOutput = nil
	for _, p := range a.PreviousOutput {
		if budget <= 0 {
			removed += len(p)
			continue
		}
		q := field(p, budget)
		budget -= len(q)
		c.PreviousOutput = append(c.PreviousOutput, q)
	}
	if removed > 0 {
		c.PreviousOutput = append(c.PreviousOutput,
			fmt.Sprintf("[quietwatch: %d bytes of this alert not shown: it is too large for one mail]", removed))
	}
	return &c
}

// cutString returns the longest prefix of s of at most max bytes that
// ends at a character boundary.
func cutString(s string, max int) string {
	if len(s) <= max {
		return s
	}
	if max <= 0 {
		return ""
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
