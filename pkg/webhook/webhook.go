// Package webhook posts quietwatch notifications to chat and push services
// (Slack, Discord, Microsoft Teams, Telegram, ntfy) or to any HTTP(S)
// endpoint as JSON or through a template. A webhook's URL usually holds
// its secret (a token in the path or the query): it is shown in
// diagnostics only as scheme://host, and read from a file rather than the
// command line (see Parse).
package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// Formats are the request bodies a webhook can send.
var Formats = []string{"json", "slack", "discord", "teams", "telegram", "ntfy"}

// Payload is one notification: what every format shows, and what a
// --webhook-template sees.
type Payload struct {
	Host      string    `json:"host"`
	Subject   string    `json:"subject"`
	Text      string    `json:"text"` // the mail's body, as plain text
	Alerts    []string  `json:"alerts"`
	Omitted   int       `json:"omitted,omitempty"`
	MessageID string    `json:"message_id"`
	Digest    bool      `json:"digest,omitempty"`
	Part      int       `json:"part,omitempty"`
	Parts     int       `json:"parts,omitempty"`
	Time      time.Time `json:"time"`
}

// Hook is one webhook endpoint.
type Hook struct {
	URL    *url.URL
	Format string             // one of Formats, or "template"
	Tmpl   *template.Template // with Format "template"
}

// Name is a stable name of the hook that gives nothing of its secret away,
// for the spool's done marks: "webhook-" and the first 12 hex digits of
// the SHA-256 of its URL.
func (h *Hook) Name() string { return "webhook-" + digest(h.URL.String()) }

// Label is how diagnostics show the hook: "webhook https://host".
func (h *Hook) Label() string { return "webhook " + h.URL.Scheme + "://" + h.URL.Host }

// ParseURL checks a webhook URL: http or https, with a host.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		// url's error quotes the URL, secret and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("scheme %q: want https (or http)", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	return u, nil
}

// ReadFile reads a --webhook-file: one webhook a line, "URL" or
// "FORMAT URL" (FORMAT one of Formats; without it, def), blank lines and
// lines starting with # ignored. Errors name the line, never its URL.
func ReadFile(path, def string) ([]*Hook, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hooks []*Hook
	var errs []error
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		format, raw := def, line
		if fs := strings.Fields(line); len(fs) == 2 {
			format, raw = fs[0], fs[1]
			if !validFormat(format) {
				errs = append(errs, fmt.Errorf("%s:%d: format %q: want one of %s", path, n, format, strings.Join(Formats, ", ")))
				continue
			}
		} else if len(fs) > 2 {
			errs = append(errs, fmt.Errorf("%s:%d: want URL or FORMAT URL", path, n))
			continue
		}
		u, err := ParseURL(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %v", path, n, err))
			continue
		}
		hooks = append(hooks, &Hook{URL: u, Format: format})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	return hooks, errors.Join(errs...)
}

func validFormat(f string) bool {
	for _, g := range Formats {
		if f == g {
			return true
		}
	}
	return false
}

// ValidFormat reports whether f is one of Formats.
func ValidFormat(f string) bool { return validFormat(f) }

// ParseTemplate parses a --webhook-template: its output is the request
// body (sent as application/json). Besides text/template's own, it may
// call json (a value as JSON: a string quoted and escaped).
func ParseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := record.Marshal(v)
			return string(b), err
		},
	}).Option("missingkey=error").Parse(text)
}

// Client sends notifications.
type Client struct {
	http *http.Client
}

// NewClient returns a client that trusts the system's CAs, or only the
// PEM certificates in caFile when caFile is not empty. It never follows a
// redirect (a webhook that moved is a configuration to fix: a permanent
// failure).
func NewClient(caFile string) (*Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	tr.MaxIdleConnsPerHost = 2
	tr.ResponseHeaderTimeout = 0 // the caller's context bounds the whole request
	return &Client{http: &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}, nil
}

// Error is a failed delivery.
type Error struct {
	Status     int           // the HTTP status (0: no answer)
	Permanent  bool          // sending it again cannot help (a 4xx other than 408 and 429, a 3xx)
	RetryAfter time.Duration // the server's Retry-After (0: none)
	Msg        string        // the reason, secrets removed
}

func (e *Error) Error() string { return e.Msg }

// Request returns the request h sends for p: method POST, the body and
// its content type, and the URL (Telegram's chat_id moves from the URL's
// query to the body).
func (h *Hook) Request(p *Payload) (target *url.URL, body []byte, header http.Header, err error) {
	header = http.Header{"Content-Type": {"application/json"}, "User-Agent": {"quietwatch-notify"}}
	target = h.URL
	title := p.Subject
	switch h.Format {
	case "template":
		var b bytes.Buffer
		if err := h.Tmpl.Execute(&b, p); err != nil {
			return nil, nil, nil, fmt.Errorf("--webhook-template: %w", err)
		}
		body = b.Bytes()
	case "json":
		body, err = record.Marshal(p)
	case "slack":
		// Slack's mrkdwn: &, < and > escaped, so that an alert cannot
		// mention <!channel> or make links.
		text := "*" + slackEscape(title) + "*\n```\n" + slackEscape(cut(p.Text, 3500)) + "\n```"
		body, err = record.Marshal(map[string]any{"text": text})
	case "discord":
		// Discord caps content at 2000 characters; mentions are off, so
		// that an alert's @everyone pings nobody.
		text := "**" + cut(title, 200) + "**\n```\n" + strings.ReplaceAll(cut(p.Text, 1700), "```", "'''") + "\n```"
		body, err = record.Marshal(map[string]any{"content": text, "allowed_mentions": map[string]any{"parse": []string{}}})
	case "teams":
		// An Adaptive Card in a message, as Teams' workflows take it.
		card := map[string]any{
			"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
			"type":    "AdaptiveCard", "version": "1.4",
			"body": []any{
				map[string]any{"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": true},
				map[string]any{"type": "TextBlock", "text": cut(p.Text, 20000), "fontType": "Monospace", "wrap": true},
			},
		}
		body, err = record.Marshal(map[string]any{"type": "message", "attachments": []any{
			map[string]any{"contentType": "application/vnd.microsoft.card.adaptive", "content": card},
		}})
	case "telegram":
		// https://api.telegram.org/bot<token>/sendMessage?chat_id=<id>:
		// plain text (no parse_mode: nothing in an alert is markup).
		q := h.URL.Query()
		chat := q.Get("chat_id")
		if chat == "" {
			return nil, nil, nil, errors.New("telegram: no chat_id in the URL's query")
		}
		q.Del("chat_id")
		u := *h.URL
		u.RawQuery = q.Encode()
		target = &u
		body, err = record.Marshal(map[string]any{"chat_id": chat, "text": cut(title+"\n\n"+p.Text, 4000), "disable_web_page_preview": true})
	case "ntfy":
		// The message is the body; the title a header (RFC 2047 when not
		// ASCII, which ntfy decodes).
		header.Set("Content-Type", "text/plain; charset=utf-8")
		header.Set("Title", mime.BEncoding.Encode("utf-8", title))
		header.Set("Tags", "warning")
		body = []byte(cut(p.Text, 4000))
	default:
		return nil, nil, nil, fmt.Errorf("format %q: want one of %s", h.Format, strings.Join(Formats, ", "))
	}
	return target, body, header, err
}

// Send posts p to h. It returns nil once the endpoint answered 2xx, an
// *Error otherwise (an error without a URL: the reason, its secrets
// replaced by "…").
func (c *Client) Send(ctx context.Context, h *Hook, p *Payload) error {
	target, body, header, err := h.Request(p)
	if err != nil {
		return &Error{Permanent: true, Msg: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return &Error{Permanent: true, Msg: h.redact(err.Error())}
	}
	req.Header = header
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return &Error{Msg: h.redact(err.Error())}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // reuse the connection when cheap
	if resp.StatusCode/100 == 2 {
		return nil
	}
	e := &Error{Status: resp.StatusCode}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	default:
		e.Permanent = true
	}
	e.Msg = h.redact(fmt.Sprintf("HTTP %s%s", resp.Status, oneLine(snippet)))
	return e
}

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

// redact replaces what of h's URL may be secret (userinfo, path, query)
// in s by "…".
func (h *Hook) redact(s string) string {
	secrets := []string{h.URL.String(), h.URL.RawQuery, h.URL.EscapedPath(), h.URL.Path}
	if h.URL.User != nil {
		secrets = append(secrets, h.URL.User.String())
		if pw, ok := h.URL.User.Password(); ok {
			secrets = append(secrets, pw)
		}
	}
	for _, q := range h.URL.Query() {
		secrets = append(secrets, q...)
	}
	secrets = append(secrets, strings.Split(h.URL.Path, "/")...)
	for _, sec := range secrets {
		if len(sec) >= 4 { // short pieces ("v1", "api") are no secrets, and would garble the text
			s = strings.ReplaceAll(s, sec, "…")
		}
	}
	return s
}

// oneLine makes an endpoint's answer a short single line for a diagnostic.
func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
	var out strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			continue
		}
		out.WriteRune(r)
	}
	s = cut(out.String(), 200)
	if s == "" {
		return ""
	}
	return ": " + s
}

// cut shortens s to at most max runes, saying so.
func cut(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	const mark = "\n… (cut)"
	r := []rune(s)
	return string(r[:max-utf8.RuneCountInString(mark)]) + mark
}

func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
