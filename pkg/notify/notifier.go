package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
