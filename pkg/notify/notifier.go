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

	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/mail"
	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/spool"
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

	SendTimeout time.Duration // a hung MTA is killed after this
	RetryMin    time.Duration // first backoff after a failure
	RetryMax    time.Duration // backoff cap
	ExitWait    time.Duration // at end of input, how long to wait for the MTA
	SyncEvery   time.Duration // journal fsync period
	EventClock  bool          // time is the alerts' own timestamps (replays)
}

// notifier is one run of the stage. The reader (run's goroutine) never
// waits for the MTA: it only appends to the journal and, when a group
// closes, writes a message file; a sender goroutine hands messages over.
type notifier struct {
	cfg    Config
	render renderer
	spool  *spool.Spool   // nil in a dry run
	tr     mail.Transport // nil in a dry run
	mbox   *mail.Mbox     // the dry run's output
	log    *logWriter     // mail log records (nil in a dry run)
	stderr io.Writer
	now    func() time.Time
	newID  func(time.Time) string

	mu     sync.Mutex
	b      batcher
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

	q sendQueue
}

func newNotifier(cfg Config, sp *spool.Spool, tr mail.Transport, stdout, stderr io.Writer) *notifier {
	n := &notifier{
		cfg:    cfg,
		render: renderer{host: cfg.Host, from: cfg.From, to: cfg.To, maxMails: cfg.MaxPerHour, tmpl: cfg.Template},
		spool:  sp,
		tr:     tr,
		stderr: stderr,
		now:    time.Now,
		b:      batcher{window: cfg.Window, max: cfg.MaxPerHour},
		wake:   make(chan struct{}, 1),
	}
	n.newID = n.messageID
	if cfg.EventClock {
		n.now = n.eventNow
	}
	if tr == nil {
		n.mbox = &mail.Mbox{W: stdout}
	} else {
		n.log = &logWriter{w: record.NewWriter(stdout)}
	}
	n.q.init()
	return n
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
	return time.Now()
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
	n.b.sent = st.Sent
	pending, err := n.spool.Pending()
	if err != nil {
		return err
	}
	for _, e := range pending {
		n.q.push(e)
	}
	err = n.spool.EachUnconsumed(func(l spool.Line) error {
		var f record.MailFields
		if err := record.ScanMailFields(l.Data, &f); err != nil || !f.HasRule {
			fmt.Fprintf(n.stderr, "notify: spool journal entry %d: not an alert (skipped)\n", l.Seq)
			return nil
		}
		n.b.hold(&item{seq: l.Seq, level: f.Level, id: f.ID, raw: l.Data, borrowed: true})
		return nil
	})
	if err != nil {
		return err
	}
	if len(pending) > 0 || n.b.heldCount() > 0 {
		fmt.Fprintf(n.stderr, "notify: spool: %d message(s) and %d alert(s) left by an earlier run\n", len(pending), n.b.heldCount())
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
	if err := record.ScanMailFields(line, f); err != nil {
		fmt.Fprintf(n.stderr, "notify: stdin:%d: %v, skipped\n", lineNo, err)
		return nil
	}
	if !n.selected(f) {
		return nil
	}
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
	wasIdle := n.b.open == nil
	it := &item{seq: seq, level: f.Level, id: f.ID, raw: line, borrowed: true}
	outs := n.b.add(n.now(), it)
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
func (n *notifier) apply(outs []outcome) error {
	for _, o := range outs {
		if err := n.apply1(o); err != nil {
			return err
		}
	}
	return nil
}

func (n *notifier) apply1(o outcome) error {
	now := n.now()
	ids := alertIDs(o.g.items)
	if o.held {
		// The record says these alerts are queued: make it true even if
		// the process is killed right after it.
		if n.spool != nil {
			if err := n.spool.Flush(); err != nil {
				return err
			}
		}
		n.log.write(now, record.MailInfo{Status: "queued", To: n.cfg.To, Subject: n.render.subject(o.g),
			Alerts: ids, Omitted: o.g.more, Queued: n.b.heldCount()})
		return nil
	}
	parts, err := n.render.messages(o, now, n.newID)
	if err != nil {
		fmt.Fprintf(n.stderr, "notify: template: %v (the message uses the built-in layout)\n", err)
	}
	for k, p := range parts {
		if n.spool == nil {
			if err := n.mbox.Write(n.cfg.From, now, p.raw); err != nil {
				return err
			}
			continue
		}
		// Each part takes the journal entries up to its last alert, the
		// last one all of the group's: a crash between two parts leaves
		// the alerts of the later ones in the journal (the next run
		// mails them), none in two messages.
		meta := spool.Meta{Upto: o.g.upto, Created: now, From: n.cfg.From, To: n.cfg.To,
			Subject: p.msg.Subject, MessageID: p.msg.MessageID, Alerts: alertIDs(p.items), Omitted: o.g.more, Digest: o.digest}
		if len(parts) > 1 {
			meta.Part, meta.Parts = k+1, len(parts)
			if k < len(parts)-1 {
				meta.Upto, meta.Omitted = p.items[len(p.items)-1].seq, 0
			}
		}
		e, err := n.spool.Put(meta, p.raw)
		if err != nil {
			return err
		}
		n.q.push(e)
	}
	return nil
}

func alertIDs(items []*item) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.id
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
		if err := n.apply(n.b.tick(now)); err != nil && n.err == nil {
			fmt.Fprintf(n.stderr, "notify: %v\n", err)
			n.err = exitcode.Reported(exitcode.Failure)
		}
		next, ok := n.b.next(now)
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
				fmt.Fprintf(n.stderr, "notify: %v\n", err)
			}
		}
	}
}

// errStopped is what the reader gets once run has returned.
var errStopped = errors.New("stopped")

// permanentTries is how many permanent failures in a row (an SMTP 5xx, a
// sendmail EX_NOUSER, ...) move a message to failed/. More than one, so
// that a server answering 5xx by mistake for a moment (a reload, a
// misconfiguration fixed within seconds) does not fail a message; a
// temporary failure in between starts the count again.
const permanentTries = 3

// sender hands spooled messages to the MTA in order, retrying each with
// exponential backoff until it is accepted, it is refused for good
// (permanentTries permanent failures in a row: it is moved to failed/ and
// the next one goes), or ctx ends (the message then stays in the spool).
func (n *notifier) sender(ctx context.Context) {
	for {
		e, ok := n.q.pop(ctx)
		if !ok {
			return
		}
		permanent := 0
		for attempt := 1; ; attempt++ {
			sctx, cancel := context.WithTimeoutCause(ctx, n.cfg.SendTimeout,
				fmt.Errorf("no answer within --send-timeout %s", n.cfg.SendTimeout))
			err := n.tr.Send(sctx, e.Meta.From, e.Meta.To, e.Msg)
			cancel()
			if err == nil {
				if rerr := n.spool.Remove(e); rerr != nil {
					fmt.Fprintf(n.stderr, "notify: %v (a restart would send it again)\n", rerr)
				}
				n.mu.Lock()
				queued := n.b.heldCount()
				n.mu.Unlock()
				n.log.write(n.now(), info("sent", e, queued, attempt, ""))
				n.q.done()
				break
			}
			if ctx.Err() != nil {
				return
			}
			if mail.IsPermanent(err) {
				permanent++
			} else {
				permanent = 0
			}
			n.mu.Lock()
			queued := n.b.heldCount()
			n.mu.Unlock()
			if permanent >= permanentTries {
				n.fail(e, queued, attempt, err)
				n.q.done()
				break
			}
			n.log.write(n.now(), info("retry", e, queued, attempt, err.Error()))
			fmt.Fprintf(n.stderr, "notify: %s: %v (will retry)\n", e.Meta.MessageID, err)
			backoff := n.cfg.RetryMin << min(attempt-1, 30)
			if backoff > n.cfg.RetryMax || backoff <= 0 {
				backoff = n.cfg.RetryMax
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// fail moves a message the MTA refused for good to the spool's failed/
// (kept for the admin, never sent again) and says so.
func (n *notifier) fail(e spool.Entry, queued, attempt int, err error) {
	path, ferr := n.spool.Fail(e)
	if ferr != nil && path == "" {
		// Still in msg/: the next run tries it again.
		fmt.Fprintf(n.stderr, "notify: %s: refused for good: %v; %v (it stays in the spool)\n", e.Meta.MessageID, err, ferr)
	} else {
		if ferr != nil {
			fmt.Fprintf(n.stderr, "notify: %v\n", ferr)
		}
		fmt.Fprintf(n.stderr, "notify: %s: refused for good: %v (kept in %s, not sent again)\n", e.Meta.MessageID, err, path)
	}
	n.mu.Lock()
	n.failed++
	n.mu.Unlock()
	rec := info("failed", e, queued, attempt, err.Error())
	rec.File = path
	n.log.write(n.now(), rec)
}

func info(status string, e spool.Entry, queued, attempt int, errText string) record.MailInfo {
	alerts := e.Meta.Alerts
	if alerts == nil {
		alerts = []string{}
	}
	return record.MailInfo{Status: status, To: e.Meta.To, Subject: e.Meta.Subject, Alerts: alerts,
		Omitted: e.Meta.Omitted, Queued: queued, MessageID: e.Meta.MessageID, Digest: e.Meta.Digest,
		Part: e.Meta.Part, Parts: e.Meta.Parts, Attempt: attempt, Error: errText}
}

// run reads alerts from in until its end or ctx's, then waits (at most
// ExitWait) for the MTA to take what is spooled.
func (n *notifier) run(ctx context.Context, in io.Reader) error {
	if err := n.recover(); err != nil {
		return err
	}
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if n.tr != nil {
		wg.Add(2)
		go func() { defer wg.Done(); n.sender(bg) }()
		go func() { defer wg.Done(); n.syncer(bg) }()
	}
	tickCtx, stopTick := context.WithCancel(bg)
	if !n.cfg.EventClock { // event time moves only with the alerts
		wg.Add(1)
		go func() { defer wg.Done(); n.ticker(tickCtx) }()
	}
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
		// SIGTERM: what was read is in the journal; the next run mails it.
		stopTick()
		n.mu.Lock()
		defer n.mu.Unlock()
		n.stopped = true // the reader may still be in a read: it must not append once we return
		if n.spool != nil {
			return n.spool.Sync()
		}
		return nil
	}
	stopTick()
	if err != nil {
		return err
	}
	n.mu.Lock()
	now := n.now()
	var outs []outcome
	if n.tr == nil {
		outs = n.b.drain(now) // the digest that would follow
	} else {
		outs = n.b.finish(now)
	}
	err = n.apply(outs)
	if err == nil {
		err = n.err
	}
	held := n.b.heldCount()
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if n.tr == nil {
		return nil
	}
	if held > 0 {
		fmt.Fprintf(n.stderr, "notify: %d alert(s) held back by the hourly limit stay in the spool for the next run\n", held)
	}
	if err := n.spool.Sync(); err != nil {
		return err
	}
	wait := time.NewTimer(n.cfg.ExitWait)
	defer wait.Stop()
	select {
	case <-n.q.idleCh():
		return n.failedErr()
	case <-ctx.Done():
	case <-wait.C:
	}
	stopBG()
	wg.Wait()
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
	return exitcode.Errorf(exitcode.TempFail, "%d message(s) not accepted by the MTA within --exit-wait %s: they stay in the spool for the next run", len(left), n.cfg.ExitWait)
}

// failedErr is run's result when everything else went well: exit 1 if a
// message was refused for good.
func (n *notifier) failedErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failed == 0 {
		return nil
	}
	return exitcode.Errorf(exitcode.Failure, "%d message(s) refused for good by the MTA: kept in the spool's failed/ directory, not sent again", n.failed)
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
			fmt.Fprintf(n.stderr, "notify: stdin:%d: %v\n", long.Line, err)
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

// sendQueue is the sender's queue of spooled messages: unbounded, so the
// reader never waits for it.
type sendQueue struct {
	mu     sync.Mutex
	items  []spool.Entry
	busy   int           // queued plus in flight
	signal chan struct{} // a push happened
	idle   chan struct{} // closed while busy == 0
}

func (q *sendQueue) init() {
	q.signal = make(chan struct{}, 1)
	q.idle = make(chan struct{})
	close(q.idle)
}

func (q *sendQueue) push(e spool.Entry) {
	q.mu.Lock()
	q.items = append(q.items, e)
	if q.busy == 0 {
		q.idle = make(chan struct{})
	}
	q.busy++
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *sendQueue) pop(ctx context.Context) (spool.Entry, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			e := q.items[0]
			q.items = q.items[1:]
			q.mu.Unlock()
			return e, true
		}
		q.mu.Unlock()
		select {
		case <-q.signal:
		case <-ctx.Done():
			return spool.Entry{}, false
		}
	}
}

func (q *sendQueue) done() {
	q.mu.Lock()
	q.busy--
	if q.busy == 0 {
		close(q.idle)
	}
	q.mu.Unlock()
}

func (q *sendQueue) idleCh() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.idle
}
