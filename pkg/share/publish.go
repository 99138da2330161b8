package share

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quietwatch/quietwatch/pkg/fleet"
)

// outgoing is one ban waiting to be published.
type outgoing struct {
	subject string
	body    []byte
	id      string
	expires time.Time
	// notBefore holds a retry back after a failure.
	notBefore time.Time
}

type flight struct {
	f  jetstream.PubAckFuture
	it outgoing
}

// repeatAfter are the delays after a ban's first publish at which it goes
// out once more on the live path alone: a peer that was reconnecting at
// the first one (its NATS server was just killed, say) gets it then,
// without waiting for a catch-up from a stream that may be electing a new
// leader. The peers and JetStream drop the copies (same message id).
var repeatAfter = []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond}

type repeat struct {
	it   outgoing
	at   time.Time
	next int // index in repeatAfter of the following repeat
}

// publisher sends local bans to the fleet. Its queue is bounded and kept
// across reconnects: what could not go out while NATS was away goes out
// on reconnect if it is still live. A publish reaches the peers' live
// subscriptions at once; JetStream's acknowledgement only decides whether
// the catch-up log has it, and a failed one is retried with the same
// message id (JetStream drops the duplicate, so do the peers).
type publisher struct {
	l       *link
	in      chan outgoing
	max     int
	queue   []outgoing
	flying  []flight
	repeats []repeat
	now     func() time.Time
	diag    *diags
	dropped atomic.Int64
	done    chan struct{}
}

func newPublisher(l *link, max int, now func() time.Time, d *diags) *publisher {
	return &publisher{l: l, in: make(chan outgoing, max), max: max, now: now, diag: d, done: make(chan struct{})}
}

// offer queues a ban without ever blocking the local pipeline.
func (p *publisher) offer(it outgoing) {
	select {
	case p.in <- it:
	default:
		p.dropped.Add(1)
		p.diag.limited("publish-queue-full", "publish queue full (%d): ban of %s not shared", p.max, it.subject)
	}
}

// run publishes until in is closed and everything queued has gone out,
// or until ctx ends, or drain has passed since in was closed.
func (p *publisher) run(ctx context.Context, drain time.Duration) {
	defer close(p.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	in := p.in
	var deadline <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case it, ok := <-in:
			if !ok {
				in = nil
				deadline = time.After(drain)
				break
			}
			p.push(it)
			for more := true; more; {
				select {
				case it, ok := <-in:
					if !ok {
						in = nil
						deadline = time.After(drain)
						more = false
						break
					}
					p.push(it)
				default:
					more = false
				}
			}
		case <-p.l.wake:
		case <-tick.C:
		case <-deadline:
			if n := len(p.queue) + len(p.flying); n > 0 {
				p.diag.printf("%d bans not confirmed by the fleet at exit", n)
			}
			return
		}
		p.reap()
		if p.l.nc.IsConnected() && p.l.publishable() {
			p.send()
			p.repeat()
		}
		if in == nil && len(p.queue) == 0 && len(p.flying) == 0 {
			return
		}
	}
}

func (p *publisher) push(it outgoing) {
	if len(p.queue) >= p.max {
		// Keep the newest: the oldest end first.
		p.queue = p.queue[1:]
		p.dropped.Add(1)
		p.diag.limited("publish-queue-full", "publish queue full (%d): oldest ban not shared", p.max)
	}
	p.queue = append(p.queue, it)
}

func (p *publisher) send() {
	now := p.now()
	keep := p.queue[:0]
	stalled := false
	for _, it := range p.queue {
		if !it.expires.After(now) {
			continue
		}
		if stalled || it.notBefore.After(now) {
			keep = append(keep, it)
			continue
		}
		ttl := it.expires.Sub(now)
		ttl = max(fleet.MinTTL, (ttl+time.Second-1)/time.Second*time.Second)
		msg := &nats.Msg{Subject: it.subject, Data: it.body, Header: nats.Header{}}
		msg.Header.Set(fleet.ExpiresHeader, strconv.FormatInt(it.expires.UnixMilli(), 10))
		f, err := p.l.js.PublishMsgAsync(msg, jetstream.WithMsgID(it.id), jetstream.WithMsgTTL(ttl))
		if err != nil {
			stalled = true
			keep = append(keep, it)
			continue
		}
		p.flying = append(p.flying, flight{f: f, it: it})
		if it.notBefore.IsZero() && len(p.repeats) < p.max {
			p.repeats = append(p.repeats, repeat{it: it, at: now.Add(repeatAfter[0]), next: 1})
		}
	}
	p.queue = keep
}

// repeat sends the live-path copies that are due.
func (p *publisher) repeat() {
	now := p.now()
	keep := p.repeats[:0]
	for _, r := range p.repeats {
		if !r.it.expires.After(now) {
			continue
		}
		if r.at.After(now) {
			keep = append(keep, r)
			continue
		}
		ttl := max(fleet.MinTTL, (r.it.expires.Sub(now)+time.Second-1)/time.Second*time.Second)
		msg := &nats.Msg{Subject: r.it.subject, Data: r.it.body, Header: nats.Header{}}
		msg.Header.Set(fleet.ExpiresHeader, strconv.FormatInt(r.it.expires.UnixMilli(), 10))
		msg.Header.Set(fleet.TTLHeader, ttl.String())
		msg.Header.Set(fleet.MsgIDHeader, r.it.id)
		_ = p.l.nc.PublishMsg(msg) // best effort: the first publish and the log carry the ban
		if r.next < len(repeatAfter) {
			r.at = now.Add(repeatAfter[r.next] - repeatAfter[r.next-1])
			r.next++
			keep = append(keep, r)
		}
	}
	clear(p.repeats[len(keep):])
	p.repeats = keep
}

func (p *publisher) reap() {
	now := p.now()
	keep := p.flying[:0]
	for _, fl := range p.flying {
		select {
		case <-fl.f.Ok():
		case err := <-fl.f.Err():
			p.diag.limited("publish-retry", "publish %s: %v (retrying while the ban is live)", fl.it.subject, err)
			fl.it.notBefore = now.Add(500 * time.Millisecond)
			p.queue = append(p.queue, fl.it)
		default:
			keep = append(keep, fl)
		}
	}
	clear(p.flying[len(keep):])
	p.flying = keep
}
