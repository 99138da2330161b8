package notify

import (
	"errors"
	"fmt"
	"io"

	"github.com/quietwatch/quietwatch/pkg/mail"
	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/spool"
)

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

// errStopped is what the reader gets once run has returned.
var errStopped = errors.New("stopped")
