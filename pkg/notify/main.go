// Package notify is the notify stage of quietwatch: it reads alerts (JSON
// Lines from correlate) and mails the ones that matter, grouped and
// rate-limited, through sendmail or SMTP, without ever making the pipe wait
// for the MTA. Every message is spooled on disk before it is handed over.
// The package holds the flags and the wiring (main.go) and the loop: a run's
// start, timers and end (notifier.go), the reader's intake (intake.go), one
// sender per transport (sender.go); grouping, the hourly limit and the
// messages' layout are pkg/mail's. See docs/notify.md.
package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/template"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/mail"
	"github.com/quietwatch/quietwatch/pkg/metrics"
	"github.com/quietwatch/quietwatch/pkg/spool"
	"github.com/quietwatch/quietwatch/pkg/webhook"
)

// DefaultSpool is the spool directory when --spool is not given.
const DefaultSpool = "/var/lib/quietwatch/notify"

const usageText = `notify --to ADDRESS [options] < alerts.jsonl

   Mails the alerts of level >= --min-level (or whose rule says
   alert_by_email), grouped and limited per hour; writes one mail log
   record per message on stdout.

   fastparse -f /var/log/suricata/fast.log | correlate -r local_rules.xml |
     tee >(notify --to root --max-per-hour 6) | block

   correlate -r local_rules.xml < old-events.jsonl | notify --to root --dry-run > would-send.mbox

   ... | notify --to root --webhook-file /etc/quietwatch/webhooks   (lines: FORMAT URL; see docs/notify.md)`

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := command.SignalContext(context.Background())
	defer stop()
	hooks, stopHooks := command.ProcessHooks()
	defer stopHooks()
	return run(ctx, args, stdin, stdout, stderr, &env{Hooks: hooks})
}

// env is what a run takes from outside besides its streams and flags: the
// clock and SIGHUP (Main's come from the process; nil Hup: no SIGHUP
// handling), and what tests replace. A nil field is the real thing.
type env struct {
	command.Hooks
	newID     func(time.Time) string                          // Message-IDs (nil: time and random bytes)
	transport mail.Transport                                  // instead of --sendmail or --smtp
	sleep     func(ctx context.Context, d time.Duration) bool // the senders' backoff
	// maxMessage lowers mail.MaxMessage (tests of messages in parts).
	maxMessage int
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, e *env) int {
	if e == nil {
		e = &env{}
	}
	host, _ := os.Hostname()
	app := &cli.App{
		Name:      "notify",
		Usage:     "mail quietwatch alerts through sendmail or SMTP (and post them to webhooks), grouped, rate-limited, spooled",
		UsageText: usageText,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "to", Usage: "recipient `ADDRESS` (repeatable; required without a webhook): user@host or a local name such as root"},
			&cli.StringFlag{Name: "from", Usage: "sender `ADDRESS` (default: quietwatch@HOSTNAME)"},
			&cli.StringFlag{Name: "hostname", Value: host, Usage: "the host `NAME` in subjects and bodies"},
			&cli.IntFlag{Name: "min-level", Value: 9, Usage: "mail alerts of this `LEVEL` and above (OSSEC's email_alert_level)"},
			&cli.DurationFlag{Name: "group-window", Value: 10 * time.Second, Usage: "alerts within this `DURATION` of a group's first go out as one mail (0: one mail each)"},
			&cli.IntFlag{Name: "max-per-hour", Value: 12, Usage: "at most `N` mails in any 60 minutes; the excess is queued and sent as a digest (0: no limit)"},
			&cli.StringFlag{Name: "sendmail", Value: "/usr/sbin/sendmail", Usage: "hand messages to this sendmail `PROGRAM` (run as PROGRAM -t -i)"},
			&cli.StringFlag{Name: "smtp", Usage: "send by SMTP to `HOST:PORT` instead of sendmail (STARTTLS when offered)"},
			&cli.StringFlag{Name: "spool", Value: DefaultSpool, Usage: "`DIR` of the durable queue of messages and unmailed alerts"},
			&cli.StringFlag{Name: "template", Usage: "Go text/template `FILE` for the body (see docs/notify.md)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "write the messages to stdout as an mbox instead of sending them (no spool)"},
			&cli.StringFlag{Name: "clock", Value: "wall", Usage: "`wall`: time is arrival time; event: the alerts' own timestamps (replays: groups and the hourly limit as they would have been)"},
			&cli.DurationFlag{Name: "send-timeout", Value: 60 * time.Second, Usage: "kill a sendmail (or drop an SMTP session) that takes longer than `DURATION`, and retry"},
			&cli.DurationFlag{Name: "retry-min", Value: time.Second, Usage: "first wait after a failed handover; doubles each time"},
			&cli.DurationFlag{Name: "retry-max", Value: 5 * time.Minute, Usage: "longest wait between retries"},
			&cli.DurationFlag{Name: "exit-wait", Value: 30 * time.Second, Usage: "at end of input, wait at most `DURATION` for the MTA; what is left stays spooled (exit 75)"},
			&cli.StringSliceFlag{Name: "webhook", Usage: "also post each message to `URL` (repeatable); ps shows it: a URL with a token goes in --webhook-file"},
			&cli.StringFlag{Name: "webhook-file", Usage: "`FILE` of webhooks, one a line: URL or FORMAT URL (# comments); keep it 0600/0640"},
			&cli.StringFlag{Name: "webhook-format", Value: "json", Usage: "the webhooks' `FORMAT`: json, slack, discord, teams, telegram or ntfy"},
			&cli.StringFlag{Name: "webhook-template", Usage: "Go text/template `FILE` whose output is the JSON body of every webhook's request"},
			&cli.StringFlag{Name: "metrics-file", Usage: "write Prometheus metrics to `PATH` (*.prom, for node_exporter's textfile collector) every 5 s and at exit"},
			&cli.StringFlag{Name: "webhook-ca", Usage: "trust only the CA certificates in PEM `FILE` for webhooks (default: the system's)"},
		},
		Action: func(c *cli.Context) error { return action(c, stdin, stdout, stderr, e) },
	}
	return command.Run(ctx, app, args, stdin, stdout, stderr)
}

func loadTemplate(file string) (*template.Template, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--template: %w", err)
	}
	t, err := mail.ParseTemplate(file, string(text))
	if err != nil {
		return nil, fmt.Errorf("--template: %w", err)
	}
	return t, nil
}

// action wires the stage from its flags and runs it.
func action(c *cli.Context, stdin io.Reader, stdout, stderr io.Writer, e *env) error {
	diag := command.Diag{Prog: "notify", W: stderr}
	cfg, err := config(c, diag)
	if err != nil {
		return err
	}
	cfg.MaxMessage = e.maxMessage
	var tr mail.Transport
	var sp *spool.Spool
	if !c.Bool("dry-run") {
		if cfg.WebhookClient, err = webhookClient(c, cfg.Webhooks); err != nil {
			return err
		}
		if tr, err = transport(c, cfg, e); err != nil {
			return err
		}
		if sp, err = openSpool(c); err != nil {
			return err
		}
	} else {
		cfg.Webhooks = nil
	}
	n := newNotifier(cfg, sp, tr, stdout, stderr)
	n.use(e)
	defer reloadOnHUP(e.Hup, c.String("template"), n)()
	defer writeMetrics(c.String("metrics-file"), n)()
	err = n.run(c.Context, stdin)
	if sp != nil {
		if cerr := sp.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	return err
}

// config checks the flags and makes them a Config (the webhooks parsed,
// their client not yet made).
func config(c *cli.Context, diag command.Diag) (Config, error) {
	if c.NArg() > 0 {
		return Config{}, command.UsageErrorf("unexpected argument %q: notify reads alerts from stdin", c.Args().First())
	}
	hooks, err := webhooks(c, diag)
	if err != nil {
		return Config{}, err
	}
	to, from, host, err := addresses(c, len(hooks) > 0)
	if err != nil {
		return Config{}, err
	}
	if err := checkLimits(c); err != nil {
		return Config{}, err
	}
	clock := c.String("clock")
	if clock != "wall" && clock != "event" {
		return Config{}, command.UsageErrorf("--clock: %q: want wall or event", clock)
	}
	cfg := Config{
		EventClock: clock == "event",
		From:       from, To: to, Host: host,
		MinLevel: c.Int("min-level"), Window: c.Duration("group-window"), MaxPerHour: c.Int("max-per-hour"),
		SendTimeout: c.Duration("send-timeout"), RetryMin: c.Duration("retry-min"), RetryMax: c.Duration("retry-max"),
		ExitWait: c.Duration("exit-wait"), SyncEvery: time.Second,
		Webhooks: hooks,
	}
	if cfg.SendTimeout == 0 {
		cfg.SendTimeout = 60 * time.Second
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = time.Second
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	if file := c.String("template"); file != "" {
		t, err := loadTemplate(file)
		if err != nil {
			return Config{}, exitcode.New(exitcode.Config, err)
		}
		cfg.Template = t
	}
	return cfg, nil
}

// addresses returns the recipients (--to: required without a webhook),
// the sender and the host name, checked.
func addresses(c *cli.Context, webhooks bool) (to []string, from, host string, err error) {
	to = c.StringSlice("to")
	if len(to) == 0 && !webhooks {
		return nil, "", "", command.UsageErrorf("--to is required (or a webhook)")
	}
	for _, t := range to {
		if err := mail.CheckAddress(t); err != nil {
			return nil, "", "", command.UsageErrorf("--to: %v", err)
		}
	}
	host = c.String("hostname")
	if host == "" {
		host = "localhost"
	}
	from = c.String("from")
	if from == "" {
		from = "quietwatch@" + idHost(host)
	}
	if err := mail.CheckAddress(from); err != nil {
		return nil, "", "", command.UsageErrorf("--from: %v", err)
	}
	return to, from, host, nil
}

// checkLimits checks the durations, the hourly limit, the transport flags
// and --metrics-file.
func checkLimits(c *cli.Context) error {
	for _, f := range []string{"group-window", "send-timeout", "retry-min", "retry-max", "exit-wait"} {
		if c.Duration(f) < 0 {
			return command.UsageErrorf("--%s: negative duration", f)
		}
	}
	if c.Int("max-per-hour") < 0 {
		return command.UsageErrorf("--max-per-hour: negative")
	}
	if c.IsSet("smtp") && c.IsSet("sendmail") {
		return command.UsageErrorf("--smtp and --sendmail exclude each other")
	}
	if c.IsSet("smtp") {
		if _, _, err := net.SplitHostPort(c.String("smtp")); err != nil {
			return command.UsageErrorf("--smtp: %v (want HOST:PORT)", err)
		}
	}
	if path := c.String("metrics-file"); path != "" {
		if err := metrics.Check(path); err != nil {
			return exitcode.Errorf(exitcode.Config, "--metrics-file: %w", err)
		}
	}
	return nil
}

// webhookClient returns the HTTPS client of the webhooks (nil without
// any).
func webhookClient(c *cli.Context, hooks []*webhook.Hook) (*webhook.Client, error) {
	if len(hooks) == 0 {
		return nil, nil
	}
	cl, err := webhook.NewClient(c.String("webhook-ca"))
	if err != nil {
		return nil, exitcode.Errorf(exitcode.Config, "--webhook-ca: %w", err)
	}
	return cl, nil
}

// transport returns the mail transport: the env's, SMTP or sendmail (nil:
// webhooks only).
func transport(c *cli.Context, cfg Config, e *env) (mail.Transport, error) {
	switch {
	case len(cfg.To) == 0:
		return nil, nil
	case e.transport != nil:
		return e.transport, nil
	case c.IsSet("smtp"):
		return mail.SMTP{Addr: c.String("smtp"), Hello: idHost(cfg.Host)}, nil
	}
	path := c.String("sendmail")
	if err := mail.CheckSendmail(path); err != nil {
		return nil, exitcode.New(exitcode.Unavailable, err)
	}
	return mail.Sendmail{Path: path}, nil
}

// openSpool opens --spool; another notify holding it is a temporary
// failure.
func openSpool(c *cli.Context) (*spool.Spool, error) {
	sp, err := spool.Open(c.String("spool"))
	switch {
	case errors.Is(err, spool.ErrLocked):
		return nil, exitcode.New(exitcode.TempFail, err)
	case err != nil && !c.IsSet("spool"):
		return nil, exitcode.Errorf(exitcode.Config, "--spool (default %s): %w (give --spool DIR, or --dry-run)", DefaultSpool, err)
	case err != nil:
		return nil, exitcode.Errorf(exitcode.Config, "--spool: %w", err)
	}
	return sp, nil
}

// reloadOnHUP reloads the template on each SIGHUP from hup (a broken one
// keeps the old; without --template a SIGHUP does nothing) until the
// returned stop is called. A SIGHUP never ends the stage.
func reloadOnHUP(hup <-chan os.Signal, file string, n *notifier) (stop func()) {
	if hup == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-hup:
			}
			if file == "" {
				continue
			}
			t, err := loadTemplate(file)
			if err != nil {
				n.diag.Printf("SIGHUP: %v (keeping the old template)", err)
				continue
			}
			n.mu.Lock()
			n.render.Template = t
			n.mu.Unlock()
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// writeMetrics writes n's metrics to path (none if empty) every 5 s and
// when the returned stop is called.
func writeMetrics(path string, n *notifier) (stop func()) {
	if path == "" {
		return func() {}
	}
	stopMetrics := metrics.Start(n.m.reg, path, func(err error) { n.diag.Printf("--metrics-file: %v", err) })
	return func() {
		if err := stopMetrics(); err != nil {
			n.diag.Printf("--metrics-file: %v", err)
		}
	}
}

// webhooks returns the webhooks of --webhook and --webhook-file, each with
// its format.
func webhooks(c *cli.Context, diag command.Diag) ([]*webhook.Hook, error) {
	format := c.String("webhook-format")
	if !webhook.ValidFormat(format) {
		return nil, command.UsageErrorf("--webhook-format: %q: want one of %s", format, strings.Join(webhook.Formats, ", "))
	}
	var tmpl *template.Template
	if file := c.String("webhook-template"); file != "" {
		if c.IsSet("webhook-format") {
			return nil, command.UsageErrorf("--webhook-format and --webhook-template exclude each other")
		}
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, exitcode.Errorf(exitcode.Config, "--webhook-template: %w", err)
		}
		if tmpl, err = webhook.ParseTemplate(file, string(text)); err != nil {
			return nil, exitcode.Errorf(exitcode.Config, "--webhook-template: %w", err)
		}
		format = "template"
	}
	var hooks []*webhook.Hook
	for i, raw := range c.StringSlice("webhook") {
		u, err := webhook.ParseURL(raw)
		if err != nil {
			return nil, command.UsageErrorf("--webhook (number %d): %v", i+1, err)
		}
		hooks = append(hooks, &webhook.Hook{URL: u, Format: format})
	}
	if file := c.String("webhook-file"); file != "" {
		if st, err := os.Stat(file); err == nil && st.Mode().Perm()&0o004 != 0 {
			diag.Printf("--webhook-file %s: readable by every user (mode %04o): its tokens are no secret (chmod o-r)", file, st.Mode().Perm())
		}
		fromFile, err := webhook.ReadFile(file, format)
		if err != nil {
			return nil, exitcode.Errorf(exitcode.Config, "--webhook-file: %w", err)
		}
		hooks = append(hooks, fromFile...)
	}
	seen := map[string]bool{}
	for _, h := range hooks {
		if tmpl != nil && h.Format == format {
			h.Tmpl = tmpl
		}
		if seen[h.Name()] {
			return nil, exitcode.Errorf(exitcode.Config, "%s: given twice", h.Label())
		}
		seen[h.Name()] = true
	}
	return hooks, nil
}
