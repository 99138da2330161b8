package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/mail"
	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/spool"
	"github.com/quietwatch/quietwatch/pkg/webhook"
)

// Config is what a notifier needs besides its streams.
type Config struct {
	From       string
	To         []string
	Host       string
	MinLevel   int
	Window     time.Duration
	MaxPerHour int
	Template   *template.Template // nil: the OSSEC layout
	MaxMessage int                // a message's largest wire size (0: mail.MaxMessage; tests lower it)

	SendTimeout time.Duration // a hung MTA is killed after this
	RetryMin    time.Duration // first backoff after a failure
	RetryMax    time.Duration // backoff cap
	ExitWait    time.Duration // at end of input, how long to wait for the MTA
	SyncEvery   time.Duration // journal fsync period
	EventClock  bool          // time is the alerts' own timestamps (replays)

	Webhooks      []*webhook.Hook // besides (or instead of) mail
	WebhookClient *webhook.Client
	// MaxRetryAfter caps how long a webhook's Retry-After may hold its
	// queue (0: an hour).
	MaxRetryAfter time.Duration
}

// notifier is one run of the stage. The reader (run's goroutine) never
// waits for the MTA: it only appends to the journal and, when a group
// closes, writes a message file; a sender goroutine hands messages over.
type notifier struct {
	cfg    Config
	render mail.Renderer
	spool  *spool.Spool // nil in a dry run
	chans  []*channel   // the transports: mail, webhooks (none in a dry run)
	need   []string     // their names: a message is done when each is through with it
	mbox   *mail.Mbox   // the dry run's output
	log    *logWriter   // mail log records (nil in a dry run)
	diag   command.Diag
	now    func() time.Time // the run's clock: wall or event time
	wall   func() time.Time // the wall clock
	newID  func(time.Time) string
	// sleep waits d or until ctx ends (false then): the senders' backoff.
	sleep func(ctx context.Context, d time.Duration) bool

	mu     sync.Mutex
	b      mail.Batcher
	seq    uint64            // entry numbers in a dry run
	fields record.MailFields // the reader's scratch
	err    error             // first fatal error of a timer-driven action
	// stopped closes the gate of the reader: set (under mu) when run
	// returns while the reader goroutine may still be reading stdin, so
	// that it never touches the spool once run's caller may close it.
	stopped bool
	failed  int // messages moved to failed/ in this run (under mu)
	wake    chan struct{}
	evNow   atomic.Int64 // with EventClock: the latest alert time, Unix ns (0: none yet)

	m *stageMetrics
}

func newNotifier(cfg Config, sp *spool.Spool, tr mail.Transport, stdout, stderr io.Writer) *notifier {
	n := &notifier{
		cfg:    cfg,
		render: mail.Renderer{Host: cfg.Host, From: cfg.From, To: cfg.To, MaxMails: cfg.MaxPerHour, Template: cfg.Template, MaxSize: cfg.MaxMessage},
		spool:  sp,
		diag:   command.Diag{Prog: "notify", W: stderr},
		now:    time.Now,
		wall:   time.Now,
		sleep:  sleep,
		b:      mail.Batcher{Window: cfg.Window, Max: cfg.MaxPerHour},
		wake:   make(chan struct{}, 1),
	}
	n.newID = n.messageID
	if cfg.EventClock {
		n.now = n.eventNow
	}
	if sp == nil {
		n.mbox = &mail.Mbox{W: stdout}
		n.m = newStageMetrics(n)
		return n
	}
	defer func() { n.m = newStageMetrics(n) }()
	n.log = &logWriter{w: record.NewWriter(stdout)}
	if tr != nil {
		n.addChannel(&channel{name: "mail",
			send: func(ctx context.Context, e spool.Entry) error {
				return tr.Send(ctx, e.Meta.From, e.Meta.To, e.Msg)
			},
			permanent: mail.IsPermanent})
	}
	for _, h := range cfg.Webhooks {
		n.addChannel(&channel{name: h.Name(), label: h.Label(), host: h.URL.Host,
			send: func(ctx context.Context, e spool.Entry) error {
				return cfg.WebhookClient.Send(ctx, h, n.payload(e))
			},
			permanent: func(err error) bool {
				var we *webhook.Error
				return errors.As(err, &we) && we.Permanent
			}})
	}
	return n
}

// use takes the clock, Message-IDs and backoff of e where it sets them.
func (n *notifier) use(e *env) {
	n.wall = e.Clock()
	if !n.cfg.EventClock {
		n.now = n.wall
	}
	if e.newID != nil {
		n.newID = e.newID
	}
	if e.sleep != nil {
		n.sleep = e.sleep
	}
}

func (n *notifier) addChannel(c *channel) {
	c.q.init()
	n.chans = append(n.chans, c)
	n.need = append(n.need, c.name)
}

// push queues a spooled message on each transport not yet through with it.
func (n *notifier) push(e spool.Entry) {
	for _, c := range n.chans {
		if e.Meta.Done[c.name] == "" {
			c.q.push(e)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// messageID returns "<unix nanoseconds>.<random>@host".
func (n *notifier) messageID(now time.Time) string {
	var r [6]byte
	rand.Read(r[:]) //nolint:errcheck // never fails
	return strconv.FormatInt(now.UnixNano(), 36) + "." + hex.EncodeToString(r[:]) + "@" + idHost(n.cfg.Host)
}

// eventNow is the clock of --clock event: the latest alert timestamp seen
// (wall time before the first).
func (n *notifier) eventNow() time.Time {
	if ns := n.evNow.Load(); ns != 0 {
		return time.Unix(0, ns).UTC()
	}
	return n.wall()
}

// advance moves the event clock to an alert's timestamp (never back).
func (n *notifier) advance(ts []byte) {
	if us, ok := record.ParseTime(ts); ok {
		if ns := us * 1000; ns > n.evNow.Load() {
			n.evNow.Store(ns)
		}
	}
}

// idHost makes host usable on the right of a Message-ID.
func idHost(host string) string {
	var b strings.Builder
	for _, c := range host {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' {
			b.WriteRune(c)
		}
	}
	s := strings.Trim(b.String(), ".")
	if s == "" || strings.Contains(s, "..") {
		return "localhost"
	}
	return s
}

// recover loads what an earlier run left in the spool: messages go to the
// sender, unmailed alerts are held for a digest, the limit's history is
// restored.
func (n *notifier) recover() error {
	if n.spool == nil {
		return nil
	}
	st := n.spool.State()
	n.b.Sent = st.Sent
	pending, err := n.spool.Pending()
	if err != nil {
		return err
	}
	for _, e := range pending {
		n.push(e)
	}
	err = n.spool.EachUnconsumed(func(l spool.Line) error {
		var f record.MailFields
		if err := record.ScanMailFields(l.Data, &f); err != nil || !f.HasRule {
			n.diag.Printf("spool journal entry %d: not an alert (skipped)", l.Seq)
			return nil
		}
		n.b.Hold(&mail.Item{Seq: l.Seq, Level: f.Level, ID: f.ID, Raw: l.Data, Borrowed: true})
		return nil
	})
	if err != nil {
		return err
	}
	if len(pending) > 0 || n.b.HeldCount() > 0 {
		n.diag.Printf("spool: %d message(s) and %d alert(s) left by an earlier run", len(pending), n.b.HeldCount())
	}
	return nil
}

// selected reports whether an alert is to be mailed: rule.mail decides
// when the rule has it (alert_by_email true, no_email_alert false), the
// level threshold otherwise.
func (n *notifier) selected(f *record.MailFields) bool {
	if !f.HasRule {
		return false
	}
	if f.Mail >= 0 {
		return f.Mail == 1
	}
	return f.Level >= n.cfg.MinLevel
}

// add takes one input line.
func (n *notifier) add(line []byte, lineNo int) error {
	// Intake decodes only what selection needs; the whole alert is decoded
	// when a message shows it.
	f := &n.fields
	n.m.read.Inc()
	if err := record.ScanMailFields(line, f); err != nil {
		n.m.refused.WithLabelValues("unparsable").Inc()
		n.diag.Printf("stdin:%d: %v, skipped", lineNo, err)
		return nil
	}
	if !n.selected(f) {
		return nil
	}
	n.m.selected.Inc()
	if n.cfg.EventClock {
		n.advance(f.Timestamp)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return errStopped
	}
	if n.err != nil { // a timer-driven action failed (the spool): stop
		return n.err
	}
	var seq uint64
	if n.spool != nil {
		s, err := n.spool.Append(line)
		if err != nil {
			return err
		}
		seq = s
	} else {
		n.seq++
		seq = n.seq
	}
	wasIdle := n.b.Idle()
	it := &mail.Item{Seq: seq, Level: f.Level, ID: f.ID, Raw: line, Borrowed: true}
	outs := n.b.Add(n.now(), it)
	if wasIdle || len(outs) > 0 {
		n.poke() // the ticker's next deadline may have changed
	}
	return n.apply(outs)
}

func (n *notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// apply carries out the batcher's decisions. Called with n.mu held.
func (n *notifier) apply(outs []mail.Outcome) error {
	for _, o := range outs {
		if err := n.apply1(o); err != nil {
			return err
		}
	}
	return nil
}

func (n *notifier) apply1(o mail.Outcome) error {
	now := n.now()
	ids := alertIDs(o.G.Items)
	if o.Held {
		// The record says these alerts are queued: make it true even if
		// the process is killed right after it.
		if n.spool != nil {
			if err := n.spool.Flush(); err != nil {
				return err
			}
		}
		n.log.write(now, record.MailInfo{Status: "queued", To: n.cfg.To, Subject: n.render.Subject(o.G),
			Alerts: ids, Omitted: o.G.More, Queued: n.b.HeldCount()})
		return nil
	}
	parts, err := n.render.Messages(o, now, n.newID)
	if err != nil {
		n.diag.Printf("template: %v (the message uses the built-in layout)", err)
	}
	for k, p := range parts {
		if n.spool == nil {
			if err := n.mbox.Write(n.cfg.From, now, p.Raw); err != nil {
				return err
			}
			continue
		}
		// Each part takes the journal entries up to its last alert, the
		// last one all of the group's: a crash between two parts leaves
		// the alerts of the later ones in the journal (the next run
		// mails them), none in two messages.
		meta := spool.Meta{Upto: o.G.Upto, Created: now, From: n.cfg.From, To: n.cfg.To,
			Subject: p.Msg.Subject, MessageID: p.Msg.MessageID, Alerts: alertIDs(p.Items), Omitted: o.G.More, Digest: o.Digest}
		if len(parts) > 1 {
			meta.Part, meta.Parts = k+1, len(parts)
			if k < len(parts)-1 {
				meta.Upto, meta.Omitted = p.Items[len(p.Items)-1].Seq, 0
			}
		}
		e, err := n.spool.Put(meta, p.Raw)
		if err != nil {
			return err
		}
		n.push(e)
	}
	return nil
}

func alertIDs(items []*mail.Item) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return ids
}

// ticker runs the batcher's timers until ctx ends.
func (n *notifier) ticker(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.mu.Lock()
		now := n.now()
		if err := n.apply(n.b.Tick(now)); err != nil && n.err == nil {
			n.diag.Printf("%v", err)
			n.err = exitcode.Reported(exitcode.Failure)
		}
		next, ok := n.b.Next(now)
		n.mu.Unlock()
		wait := time.Hour
		if ok {
			wait = max(next.Sub(now), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-timer.C:
		}
	}
}

// syncer makes the journal durable every SyncEvery.
func (n *notifier) syncer(ctx context.Context) {
	if n.spool == nil {
		return
	}
	t := time.NewTicker(n.cfg.SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.spool.Sync(); err != nil {
				n.diag.Printf("%v", err)
			}
		}
	}
}

// errStopped is what the reader gets once run has returned.
var errStopped = errors.New("stopped")

// run reads alerts from in until its end or ctx's, then waits (at most
// ExitWait) for the MTA to take what is spooled.
func (n *notifier) run(ctx context.Context, in io.Reader) error {
	if err := n.recover(); err != nil {
		return err
	}
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stopTick := n.start(bg, &wg)
	defer func() {
		stopBG()
		wg.Wait()
	}()

	readErr := make(chan error, 1)
	go func() { readErr <- n.read(in) }()
	var err error
	select {
	case err = <-readErr:
	case <-ctx.Done():
		stopTick()
		return n.stop()
	}
	stopTick()
	if err != nil {
		return err
	}
	held, err := n.endOfInput()
	if err != nil || n.spool == nil {
		return err
	}
	if held > 0 {
		n.diag.Printf("%d alert(s) held back by the hourly limit stay in the spool for the next run", held)
	}
	if err := n.spool.Sync(); err != nil {
		return err
	}
	if n.waitIdle(ctx, bg) {
		return n.failedErr()
	}
	stopBG()
	wg.Wait()
	return n.leftPending(ctx, held)
}

// start starts, under bg, the senders and the journal's syncer (with a
// spool) and the ticker (on the wall clock: event time moves only with the
// alerts). stopTick stops the ticker alone.
func (n *notifier) start(bg context.Context, wg *sync.WaitGroup) (stopTick func()) {
	if n.spool != nil {
		wg.Add(1 + len(n.chans))
		for _, c := range n.chans {
			go func() { defer wg.Done(); n.sender(bg, c) }()
		}
		go func() { defer wg.Done(); n.syncer(bg) }()
	}
	tickCtx, stopTick := context.WithCancel(bg)
	if !n.cfg.EventClock {
		wg.Add(1)
		go func() { defer wg.Done(); n.ticker(tickCtx) }()
	}
	return stopTick
}

// stop ends a run cut short (SIGTERM): what was read is in the journal;
// the next run mails it.
func (n *notifier) stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopped = true // the reader may still be in a read: it must not append once run returns
	if n.spool != nil {
		return n.spool.Sync()
	}
	return nil
}

// endOfInput closes the open group at once (a dry run also writes the
// digest that would follow) and returns how many alerts the hourly limit
// still holds back.
func (n *notifier) endOfInput() (held int, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	var outs []mail.Outcome
	if n.spool == nil {
		outs = n.b.Drain(now) // the digest that would follow
	} else {
		outs = n.b.Finish(now)
	}
	if err := n.apply(outs); err != nil {
		return 0, err
	}
	return n.b.HeldCount(), n.err
}

// waitIdle waits until every transport has taken what is queued for it
// (true), or ExitWait passes or ctx ends (false).
func (n *notifier) waitIdle(ctx, bg context.Context) bool {
	wait := time.NewTimer(n.cfg.ExitWait)
	defer wait.Stop()
	idle := make(chan struct{})
	go func() {
		for _, c := range n.chans {
			select {
			case <-c.q.idleCh():
			case <-bg.Done():
				return
			}
		}
		close(idle)
	}()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
	case <-wait.C:
	}
	return false
}

// leftPending writes a "pending" record for each message the transports
// did not take in time (the senders stopped): they stay in the spool for
// the next run. Exit 75 unless ctx ended (SIGTERM is a normal end).
func (n *notifier) leftPending(ctx context.Context, held int) error {
	left, err := n.spool.Pending()
	if err != nil {
		return err
	}
	if len(left) == 0 {
		return n.failedErr()
	}
	for _, e := range left {
		n.log.write(n.now(), info("pending", e, held, 0, ""))
	}
	if ctx.Err() != nil {
		return nil
	}
	return exitcode.Errorf(exitcode.TempFail, "%d message(s) not accepted by %s within --exit-wait %s: they stay in the spool for the next run", len(left), n.who(), n.cfg.ExitWait)
}

// read feeds the input's lines to add, flushing the journal whenever the
// input has nothing more buffered.
func (n *notifier) read(in io.Reader) error {
	r := record.NewReader(in, 0)
	for {
		line, err := r.ReadLine()
		var long *record.LineTooLongError
		switch {
		case err == nil:
			if len(line) == 0 {
				continue
			}
			if err := n.add(line, r.Line()); err != nil {
				return err
			}
		case errors.As(err, &long):
			n.m.read.Inc()
			n.m.refused.WithLabelValues("too_long").Inc()
			n.diag.Printf("stdin:%d: %v", long.Line, err)
		case errors.Is(err, io.EOF):
			if n.spool != nil {
				return n.spool.Flush()
			}
			return nil
		default:
			return fmt.Errorf("stdin: %w", err)
		}
		if r.Buffered() == 0 && n.spool != nil {
			if err := n.spool.Flush(); err != nil {
				return err
			}
		}
	}
}

// logWriter writes mail log records, one Write per record.
type logWriter struct {
	mu sync.Mutex
	w  *record.Writer
}

func (l *logWriter) write(now time.Time, m record.MailInfo) {
	if l == nil {
		return
	}
	if m.Alerts == nil {
		m.Alerts = []string{}
	}
	rec, err := record.AppendMailLog(nil, &record.MailLog{Timestamp: now.Format(record.TimeLayout), Mail: m})
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.WriteLine(rec) == nil {
		l.w.Flush() //nolint:errcheck // a closed stdout must not stop the mail
	}
}
