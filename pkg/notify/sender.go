package notify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/spool"
	"github.com/quietwatch/quietwatch/pkg/webhook"
)

// channel is one transport with its own queue and sender, so that one
// transport failing or hanging never holds up another.
type channel struct {
	name  string // the spool's done mark: "mail", "webhook-<digest>"
	label string // how records and diagnostics name it ("" for mail: its records say nothing more)
	host  string // a webhook's host[:port] (metrics)
	send  func(ctx context.Context, e spool.Entry) error
	// permanent reports whether err is a refusal that sending again cannot help.
	permanent func(err error) bool
	q         sendQueue
}

// permanentTries is how many permanent failures in a row (an SMTP 5xx, a
// sendmail EX_NOUSER, a webhook's 4xx, ...) make a transport give up a
// message. More than one, so that a server answering 5xx (or 4xx) by
// mistake for a moment (a reload, a misconfiguration fixed within
// seconds) does not fail a message; a temporary failure in between starts
// the count again.
const permanentTries = 3

// maxRetryAfter is the default cap of a webhook's Retry-After.
const maxRetryAfter = time.Hour

// sender hands spooled messages to one transport in order, retrying each
// with exponential backoff (or the server's Retry-After, if longer) until
// it is accepted, it is refused for good (permanentTries permanent
// failures in a row: the transport gives it up and the next one goes), or
// ctx ends (the message then stays in the spool). The spool marks the
// message done for this transport; it leaves the spool when every
// transport is through with it (a refusal by one moves it to failed/).
func (n *notifier) sender(ctx context.Context, c *channel) {
	for {
		e, ok := c.q.pop(ctx)
		if !ok || !n.deliver(ctx, c, e) {
			return
		}
		c.q.done()
	}
}

// deliver hands e to c until it is accepted or refused for good (true), or
// ctx ends (false: e stays in the spool).
func (n *notifier) deliver(ctx context.Context, c *channel, e spool.Entry) bool {
	permanent := 0
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeoutCause(ctx, n.cfg.SendTimeout,
			fmt.Errorf("no answer within --send-timeout %s", n.cfg.SendTimeout))
		err := c.send(sctx, e)
		cancel()
		if err == nil {
			n.m.retrying.WithLabelValues(c.labels()...).Set(0)
			n.m.sent.WithLabelValues(c.labels()...).Inc()
			n.mark(c, e, "sent", attempt, nil)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if c.permanent(err) {
			permanent++
		} else {
			permanent = 0
		}
		if permanent >= permanentTries {
			n.m.retrying.WithLabelValues(c.labels()...).Set(0)
			n.m.failed.WithLabelValues(c.labels()...).Inc()
			n.mark(c, e, "failed", attempt, err)
			return true
		}
		n.retrying(c, e, attempt, err)
		if !n.sleep(ctx, n.backoff(attempt, err)) {
			return false
		}
	}
}

// retrying reports a failed handover that will be retried: metrics, a
// "retry" record and a diagnostic.
func (n *notifier) retrying(c *channel, e spool.Entry, attempt int, err error) {
	n.mu.Lock()
	queued := n.b.HeldCount()
	n.mu.Unlock()
	n.m.retries.WithLabelValues(c.labels()...).Inc()
	n.m.retrying.WithLabelValues(c.labels()...).Set(1)
	rec := info("retry", e, queued, attempt, err.Error())
	rec.Via = c.label
	n.log.write(n.now(), rec)
	n.diag.Printf("%s%s: %v (will retry)", e.Meta.MessageID, via(c), err)
}

// backoff returns the wait before attempt+1: RetryMin doubled each time up
// to RetryMax, or the server's Retry-After (capped) if longer.
func (n *notifier) backoff(attempt int, err error) time.Duration {
	backoff := n.cfg.RetryMin << min(attempt-1, 30)
	if backoff > n.cfg.RetryMax || backoff <= 0 {
		backoff = n.cfg.RetryMax
	}
	if we := (*webhook.Error)(nil); errors.As(err, &we) && we.RetryAfter > 0 {
		limit := n.cfg.MaxRetryAfter
		if limit <= 0 {
			limit = maxRetryAfter
		}
		backoff = max(backoff, min(we.RetryAfter, limit))
	}
	return backoff
}

func via(c *channel) string {
	if c.label == "" {
		return ""
	}
	return " (" + c.label + ")"
}

// mark records the outcome of a transport's handover in the spool and the
// mail log.
func (n *notifier) mark(c *channel, e spool.Entry, status string, attempt int, sendErr error) {
	final, path, err := n.spool.Mark(e.Name, c.name, status, n.need)
	n.mu.Lock()
	queued := n.b.HeldCount()
	if status == "failed" {
		n.failed++
	}
	n.mu.Unlock()
	errText := ""
	if sendErr != nil {
		errText = sendErr.Error()
	}
	rec := info(status, e, queued, attempt, errText)
	rec.Via = c.label
	switch {
	case err != nil && status == "sent":
		n.diag.Printf("%v (a restart would send it again%s)", err, via(c))
	case err != nil && path == "":
		n.diag.Printf("%s%s: refused for good: %v; %v (it stays in the spool)", e.Meta.MessageID, via(c), sendErr, err)
	case status == "failed":
		if err != nil {
			n.diag.Printf("%v", err)
		}
		if final == "failed" {
			n.diag.Printf("%s%s: refused for good: %v (kept in %s, not sent again)", e.Meta.MessageID, via(c), sendErr, path)
		} else {
			n.diag.Printf("%s%s: refused for good: %v (moved to the spool's failed/ once the other transports are through with it)", e.Meta.MessageID, via(c), sendErr)
		}
		rec.File = path
	case final == "failed" && path != "":
		// Another transport had refused it: this one was the last.
		n.diag.Printf("%s: refused for good by another transport (kept in %s)", e.Meta.MessageID, path)
	}
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

// who names the transports in messages: "the MTA", "a webhook" or both.
func (n *notifier) who() string {
	mail, hooks := false, false
	for _, c := range n.chans {
		if c.label == "" {
			mail = true
		} else {
			hooks = true
		}
	}
	switch {
	case mail && hooks:
		return "the MTA or a webhook"
	case hooks:
		return "a webhook"
	}
	return "the MTA"
}

// failedErr is run's result when everything else went well: exit 1 if a
// message was refused for good.
func (n *notifier) failedErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failed == 0 {
		return nil
	}
	return exitcode.Errorf(exitcode.Failure, "%d message(s) refused for good by %s: kept in the spool's failed/ directory, not sent again", n.failed, n.who())
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
