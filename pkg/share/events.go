package share

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/fleet"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// eventSubject is where origin publishes its events.
func eventSubject(origin string) string { return fleet.EventPrefix + "." + origin }

// runPublish copies events from stdin to stdout and publishes each one
// on qw.event.<origin> (plain NATS: the escalation windows are minutes,
// so events are not kept for catch-up; while NATS is away, nats.go's
// reconnect buffer holds what it can).
func runPublish(c *cli.Context, e *env) error {
	if c.NArg() > 0 {
		return command.UsageErrorf("unexpected argument %q", c.Args().First())
	}
	d := newDiags(c.App.ErrWriter, "share publish", e.now)
	defer d.flush()
	s, err := connect(c, e, d, 0, 0)
	if err != nil {
		return err
	}
	defer s.close()
	subj := eventSubject(s.origin)
	out := newOutput(record.NewWriter(c.App.Writer))
	done := make(chan error, 1)
	go func() {
		lr := record.NewReader(c.App.Reader, fleet.MaxBody)
		for {
			line, err := lr.ReadLine()
			var long *record.LineTooLongError
			switch {
			case errors.As(err, &long):
				d.limited("long-line", "stdin:%d: longer than %d bytes, not published", long.Line, fleet.MaxBody)
				continue
			case errors.Is(err, io.EOF):
				done <- nil
				return
			case err != nil:
				done <- err
				return
			}
			if err := out.local(line, lr.Buffered() == 0); err != nil {
				done <- err
				return
			}
			if t := bytes.TrimSpace(line); len(t) == 0 || t[0] != '{' {
				continue
			}
			if err := s.l.nc.Publish(subj, append([]byte(nil), line...)); err != nil {
				d.limited("publish", "publish %s: %v", subj, err)
			}
		}
	}()
	var rerr error
	select {
	case rerr = <-done:
	case <-c.Context.Done():
	}
	ferr := out.flush()
	if s.l.nc.IsConnected() {
		_ = s.l.nc.FlushTimeout(e.drain)
	}
	return endErr(rerr, ferr)
}

func endErr(rerr, ferr error) error {
	if rerr != nil && !command.IsBrokenPipe(rerr) {
		return exitcode.New(exitcode.Failure, fmt.Errorf("read: %w", rerr))
	}
	if ferr != nil && !command.IsBrokenPipe(ferr) {
		return exitcode.New(exitcode.Failure, fmt.Errorf("write: %w", ferr))
	}
	return nil
}

// runSubscribe writes every event the fleet publishes (this server's too)
// to stdout, one line each, until SIGTERM or a closed stdout.
func runSubscribe(c *cli.Context, e *env) error {
	if c.NArg() > 0 {
		return command.UsageErrorf("unexpected argument %q", c.Args().First())
	}
	d := newDiags(c.App.ErrWriter, "share subscribe", e.now)
	defer d.flush()
	s, err := connect(c, e, d, 0, 0)
	if err != nil {
		return err
	}
	defer s.close()
	out := newOutput(record.NewWriter(c.App.Writer))
	sub, err := s.l.nc.Subscribe(fleet.EventPrefix+".*", func(m *nats.Msg) {
		if len(m.Data) > fleet.MaxBody || bytes.ContainsAny(m.Data, "\n\r") || !record.Valid(m.Data) {
			d.limited("bad-event", "bad event on %q: not one JSON line", m.Subject)
			return
		}
		if t := bytes.TrimSpace(m.Data); len(t) == 0 || t[0] != '{' {
			d.limited("bad-event", "bad event on %q: not a JSON object", m.Subject)
			return
		}
		out.peer(m.Data)
	})
	if err != nil {
		return exitcode.Errorf(exitcode.Failure, "nats: subscribe: %v", err)
	}
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	defer func() { _ = sub.Unsubscribe() }()
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-out.fail:
	}
	return endErr(nil, out.flush())
}
