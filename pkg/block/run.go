package block

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/allowlist"
	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/firewall"
	"github.com/quietwatch/quietwatch/pkg/metrics"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// maxBatch bounds how many alerts already waiting are decided together
// (one backend call and one state commit for the lot).
const maxBatch = 1024

// policy reads the ban policy's flags and returns every problem found.
func policy(c *cli.Context) (ban.Policy, []string) {
	var errs []string
	p := ban.Policy{MinLevel: c.Int("min-level"), Timeout: c.Duration("timeout"), IPv6Prefix: c.Int("ipv6-prefix")}
	if p.Timeout <= 0 {
		errs = append(errs, fmt.Sprintf("--timeout %s: want a positive duration", p.Timeout))
	}
	if s := strings.TrimSpace(c.String("repeat-timeouts")); s != "" {
		for _, f := range strings.Split(s, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Sprintf("--repeat-timeouts %q: %q is not a positive duration", s, f))
				continue
			}
			p.Repeat = append(p.Repeat, d)
		}
	}
	for _, a := range c.StringSlice("allow") {
		pr, err := allowlist.Parse(a)
		if err != nil {
			errs = append(errs, fmt.Sprintf("--allow %q: %v", a, err))
			continue
		}
		p.Allow = append(p.Allow, pr)
	}
	if f := c.String("allow-file"); f != "" {
		ps, ferrs := allowlist.ReadFile(f)
		p.Allow = append(p.Allow, ps...)
		errs = append(errs, ferrs...)
	}
	return p, errs
}

// item is one line read from stdin, or the read error that ended input.
type item struct {
	alert *record.Alert
	err   error
}

// stageRun is one run of the stage (block without a subcommand): what its
// parts share from the start to the end.
type stageRun struct {
	c *cli.Context
	e *env
	// diag writes on a stderr shared with the reader's and the control
	// socket's goroutines.
	diag    command.Diag
	policy  ban.Policy
	m       *ban.Manager
	out     *output
	ctl     *server  // nil: no --socket
	closers []func() // what open took, released by close last first
}

// runStage runs block: the flags, then the backends and the state, the
// start (the firewall brought in line with the state), and the loop.
func runStage(c *cli.Context, e *env) error {
	r := &stageRun{c: c, e: e, diag: diagTo(&lockedWriter{w: c.App.ErrWriter})}
	if err := r.config(); err != nil {
		return err
	}
	defer r.close()
	if err := r.open(); err != nil {
		return err
	}
	if err := r.start(); err != nil {
		return err
	}
	return r.loop()
}

// config reads the flags of the main command. Every configuration error
// is written to stderr before the stage gives up with exit 78.
func (r *stageRun) config() error {
	c := r.c
	if c.NArg() > 0 {
		return exitcode.Errorf(exitcode.Usage, "unknown command %q", c.Args().First())
	}
	if n := c.Int("ipv6-prefix"); n < ban.MinIPv6Prefix || n > ban.MaxIPv6Prefix {
		return exitcode.Errorf(exitcode.Usage, "--ipv6-prefix %d: want %d to %d", n, ban.MinIPv6Prefix, ban.MaxIPv6Prefix)
	}
	p, errs := policy(c)
	if len(errs) > 0 {
		for _, m := range errs {
			r.diag.Printf("%s", m)
		}
		return exitcode.Reported(exitcode.Config)
	}
	r.policy = p
	return nil
}

func (r *stageRun) onClose(f func()) { r.closers = append(r.closers, f) }

// close releases what open took, last first.
func (r *stageRun) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// open takes, in this order, the backends and their instance locks, the
// state, this host's addresses, the output (stdout, --ar-log), the
// metrics and the control socket.
func (r *stageRun) open() error {
	c, e := r.c, r.e
	cm, err := setup(c, e)
	if err != nil {
		return err
	}
	r.onClose(cm.unlock)
	st, err := openState(cm.state, e, r.diag)
	if err != nil {
		return err
	}
	r.onClose(func() { st.close() })
	remember(c, st.store, r.diag)
	r.m = ban.NewManager(r.policy, cm.backends, st.store)
	e.manage(r.m, st, r.diag)
	own, err := e.ownAddrs()
	if err != nil {
		return fmt.Errorf("own addresses: %w", err)
	}
	r.m.SetOwn(own)
	r.out = &output{w: record.NewWriter(c.App.Writer), arPath: cm.arLog, program: e.program, now: e.now, diag: r.diag, skips: c.Bool("log-skips")}
	if err := r.out.openAR(); err != nil {
		return exitcode.New(exitcode.Config, err)
	}
	r.onClose(r.out.close)
	if err := r.startMetrics(cm.backends); err != nil {
		return err
	}
	// Served from here on: a subcommand that finds no socket finds the
	// state unlocked. Calls wait for the loop.
	ctl, err := serve(socketPath(c.String("socket"), cm.state, c.IsSet("socket")), cm.state, r.diag)
	if err != nil {
		return err
	}
	r.ctl = ctl
	r.onClose(ctl.close)
	return nil
}

// startMetrics writes --metrics-file from now on, and a last time at the
// end.
func (r *stageRun) startMetrics(backends []firewall.Backend) error {
	path := r.c.String("metrics-file")
	if path == "" {
		return nil
	}
	if err := metrics.Check(path); err != nil {
		return exitcode.Errorf(exitcode.Config, "--metrics-file: %w", err)
	}
	var names []string
	for _, b := range backends {
		names = append(names, b.Name())
	}
	r.out.m = newStageMetrics(r.m.Bans, names)
	stop := metrics.Start(r.out.m.reg, path, func(err error) { r.diag.Printf("--metrics-file: %v", err) })
	r.onClose(func() {
		r.out.m.recount(r.e.now(), true) // (the loop has ended: no race with it)
		if err := stop(); err != nil {
			r.diag.Printf("--metrics-file: %v", err)
		}
	})
	return nil
}

// start brings the firewall in line with the state (live bans put back,
// ended ones lifted) before any alert is read.
func (r *stageRun) start() error {
	ds, err := r.m.Reconcile(r.e.now())
	if werr := r.out.write(ds); werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	// A kept ban on an address refused now (allow-listed, or this host's
	// own, since the last run) is lifted, as SIGHUP lifts it: a restart
	// instead of a reload must not keep banning the admin.
	return r.settle(r.m.LiftRefused(r.e.now()))
}

// settle writes the decisions ds, reports err (the decisions stand) and
// flushes stdout.
func (r *stageRun) settle(ds []record.Decision, err error) error {
	if werr := r.out.write(ds); werr != nil {
		return werr
	}
	if err != nil {
		printErr(r.diag, err)
	}
	return r.out.flush()
}

// loop decides the alerts read, lifts bans as they end and answers SIGHUP
// and the control socket, until input has ended and the last ban is
// lifted, or a signal ends block.
func (r *stageRun) loop() error {
	ctx, cancel := context.WithCancel(r.c.Context)
	defer cancel()
	items := make(chan item, maxBatch)
	go read(ctx, r.c.App.Reader, items, r.diag)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	eof := false
	batch := make([]*record.Alert, 0, maxBatch)
	for {
		var expiry <-chan time.Time
		next, ok := r.wake(eof)
		if !ok && eof {
			return r.out.flush()
		}
		if ok {
			timer.Reset(max(0, next.Sub(r.e.now())))
			expiry = timer.C
		}
		in := items
		if eof {
			in = nil
		}
		var err error
		select {
		case <-ctx.Done():
			// SIGTERM/SIGINT: every decision is saved already; live bans
			// stay in place for the next start.
			return r.out.flush()
		case <-r.e.Hup:
			err = r.reload()
		case cl := <-r.ctl.requests():
			err = handle(cl, r.m, r.out, r.policy.Timeout, r.e.now(), r.diag)
		case <-expiry:
			err = r.settle(r.m.Reap(r.e.now()))
		case it, ok := <-in:
			if !ok {
				eof = true
				continue
			}
			var readErr error
			batch, eof, readErr = gather(it, items, batch[:0])
			err = r.decide(batch, readErr, items)
		}
		if err != nil {
			return err
		}
	}
}

// wake returns when the loop must wake with no input: the end of the next
// ban, or, while input lasts, the next offense count to forget; false when
// there is nothing to wait for.
func (r *stageRun) wake(eof bool) (time.Time, bool) {
	next, ok := r.m.NextExpiry()
	if eof {
		return next, ok
	}
	// Old offense counts are forgotten by the reaper too, but block does
	// not wait for that at the end of its input.
	if f, fok := r.m.NextForget(); fok && (!ok || f.Before(next)) {
		next, ok = f, true
	}
	return next, ok
}

// reload is SIGHUP: this host's addresses and --allow-file are read again
// (a bad file keeps the list in use), --ar-log is reopened, and a ban on
// an address that is now our own (or allow-listed) is lifted at once.
func (r *stageRun) reload() error {
	if own, err := r.e.ownAddrs(); err == nil {
		r.m.SetOwn(own)
	} else {
		r.diag.Printf("own addresses: %v", err)
	}
	if f := r.c.String("allow-file"); f != "" {
		if p, errs := policy(r.c); len(errs) == 0 {
			r.m.SetAllow(p.Allow)
		} else {
			for _, m := range errs {
				r.diag.Printf("%s (allow list kept)", m)
			}
		}
	}
	if err := r.out.openAR(); err != nil {
		r.diag.Printf("%v", err)
	}
	return r.settle(r.m.LiftRefused(r.e.now()))
}

// gather appends first's alert and those already waiting on items to
// batch, up to maxBatch in all. It returns the batch, whether items was
// found closed (the end of input), and the read error that ended input, if
// one came.
func gather(first item, items <-chan item, batch []*record.Alert) ([]*record.Alert, bool, error) {
	readErr := first.err
	if first.alert != nil {
		batch = append(batch, first.alert)
	}
	for len(batch) < maxBatch {
		select {
		case it, ok := <-items:
			if !ok {
				return batch, true, readErr
			}
			if it.alert != nil {
				batch = append(batch, it.alert)
			}
			if it.err != nil {
				readErr = it.err
			}
		default:
			return batch, false, readErr
		}
	}
	return batch, false, readErr
}

// decide bans for a batch of alerts (one backend call and one state commit
// for the lot) and flushes stdout when no more input waits on items. A
// read error ends the stage once the batch is decided.
func (r *stageRun) decide(batch []*record.Alert, readErr error, items <-chan item) error {
	if len(batch) == 0 && readErr == nil {
		return nil
	}
	if len(batch) > 0 {
		ds, err := r.m.Handle(r.e.now(), batch)
		if werr := r.out.write(ds); werr != nil {
			return werr
		}
		if err != nil {
			printErr(r.diag, err)
		}
	}
	if readErr != nil {
		// Like SIGTERM: every decision is saved, live bans stay in place
		// for the next start; but the input broke.
		if err := r.out.flush(); err != nil {
			return err
		}
		return exitcode.New(exitcode.Failure, fmt.Errorf("stdin: %w", readErr))
	}
	if len(items) == 0 {
		return r.out.flush()
	}
	return nil
}

// read decodes alerts from r and sends them on items until the end of
// input or ctx is done. Lines that are not alerts are reported on stderr
// and skipped.
func read(ctx context.Context, r io.Reader, items chan<- item, d command.Diag) {
	defer close(items)
	lr := record.NewReader(r, 0)
	for {
		line, err := lr.ReadLine()
		if err == io.EOF {
			return
		}
		var ll *record.LineTooLongError
		if errors.As(err, &ll) {
			d.Printf("stdin:%d: %v", ll.Line, err)
			continue
		}
		if err != nil {
			// Not the end of input: the stage fails (exit 1) once the
			// alerts read so far are decided.
			select {
			case items <- item{err: err}:
			case <-ctx.Done():
			}
			return
		}
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		if t := strings.TrimSpace(string(line)); !strings.HasPrefix(t, "{") || !record.Valid(line) {
			d.Printf("stdin:%d: not a JSON object, skipped", lr.Line())
			continue
		}
		a, err := record.DecodeBanAlert(line)
		if err != nil {
			d.Printf("stdin:%d: not an alert, skipped: %s", lr.Line(), firstLine(err.Error()))
			continue
		}
		select {
		case items <- item{alert: a}:
		case <-ctx.Done():
			return
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s, _, _ = strings.Cut(s, ", error found")
	s, _, _ = strings.Cut(s, ": unexpected character")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
