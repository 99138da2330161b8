package share

import (
	"net/netip"
	"sync"
	"time"

	"github.com/quietwatch/quietwatch/pkg/fleet"
)

// receiver turns peers' ban messages into records for block: it checks
// each message (fleet.Decode), drops this server's own and those already
// written (a retry, or the same ban from the live path and the catch-up),
// applies the guards and writes the record marked with its origin.
type receiver struct {
	mu     sync.Mutex
	origin string
	guard  *fleet.Guard
	// seen maps the message ids written to the end of their ban.
	seen    map[string]time.Time
	maxSeen int
	now     func() time.Time
	out     *output
	diag    *diags
	buf     []byte
	written int
	m       *stageMetrics
}

func newReceiver(origin string, g *fleet.Guard, maxSeen int, now func() time.Time, out *output, d *diags) *receiver {
	return &receiver{origin: origin, guard: g, seen: map[string]time.Time{}, maxSeen: maxSeen, now: now, out: out, diag: d}
}

// handle takes one message; stored is when JetStream stored it (catch-up)
// or zero for a message that arrived live.
func (r *receiver) handle(subj, ttl, exp string, data []byte, stored time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	p, err := fleet.Decode(subj, ttl, data)
	if err != nil {
		r.m.refuse("bad-message")
		r.diag.limited("bad-message", "bad ban message on %q: %v", subj, err)
		return
	}
	if p.Origin == r.origin {
		return
	}
	id := fleet.MsgID(p.Origin, data)
	if until, ok := r.seen[id]; ok && until.After(now) {
		return
	}
	start := now
	if !stored.IsZero() && stored.Before(now) {
		start = stored
	}
	end := start.Add(p.TTL)
	if e, ok := fleet.ParseExpires(exp); ok && e.Before(end) {
		end = e
	}
	expires, reason := r.guard.Admit(p.Origin, p.Prefix, end, now)
	if reason == fleet.ReasonExpired {
		return
	}
	// A refused message is remembered too, so the catch-up after a
	// reconnect does not weigh it again (nor count it again).
	r.remember(id, expires, now)
	if reason != "" {
		r.m.refuse(string(reason))
		r.diag.limited("refused "+p.Origin+" "+reason, "peer %s: ban of %s refused: %s", p.Origin, fleet.PrefixString(p.Prefix), reason)
		return
	}
	line, err := fleet.AppendMarked(r.buf[:0], data, fleet.Mark{Origin: p.Origin, Received: now, Expires: expires})
	if err != nil {
		r.diag.limited("bad-message", "bad ban message on %q: %v", subj, err)
		return
	}
	r.buf = line
	r.written++
	r.m.peer()
	r.out.peer(line)
}

// remember notes that message id was handled, until its ban ends.
func (r *receiver) remember(id string, until, now time.Time) {
	if len(r.seen) >= r.maxSeen {
		for k, t := range r.seen {
			if !t.After(now) {
				delete(r.seen, k)
			}
		}
		if len(r.seen) >= r.maxSeen {
			clear(r.seen) // at worst a ban is written twice; block extends it
		}
	}
	r.seen[id] = until
}

// setAllow replaces the guard's allow list and own addresses.
func (r *receiver) setAllow(allow []netip.Prefix, own []netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.guard.SetAllow(allow, own)
}

// setMetrics makes r count into m.
func (r *receiver) setMetrics(m *stageMetrics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m = m
}
