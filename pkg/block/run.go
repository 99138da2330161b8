package block

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/allowlist"
	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/metrics"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// maxBatch bounds how many alerts already waiting are decided together
// (one backend call and one state commit for the lot).
const maxBatch = 1024

// policy reads the flags of the main command. Every configuration error is
// written to stderr before the stage gives up with exit 78.
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

// output writes decisions to stdout and the ar-log.
type output struct {
	w       *record.Writer
	ar      *os.File
	arPath  string
	program string
	now     func() time.Time
	stderr  io.Writer
	// skips: write skip decisions too (--log-skips); by default they are
	// not written (a port scan makes tens of thousands of below-level
	// ones).
	skips bool
	m     *stageMetrics // nil: no metrics (the subcommands)
}

func (o *output) openAR() error {
	if o.arPath == "" {
		return nil
	}
	f, err := os.OpenFile(o.arPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("--ar-log: %w", err) // on SIGHUP: the old file stays in use
	}
	if o.ar != nil {
		o.ar.Close()
	}
	o.ar = f
	return nil
}

func (o *output) close() {
	if o.ar != nil {
		o.ar.Close()
	}
}

// write writes decisions; the caller flushes.
func (o *output) write(ds []record.Decision) error {
	o.m.count(ds, o.now())
	var ar []byte
	for i := range ds {
		if ds[i].Ban.Action == "skip" && !o.skips {
			continue
		}
		b, err := record.Marshal(&ds[i])
		if err != nil {
			return err
		}
		if err := o.w.WriteLine(b); err != nil {
			return err
		}
		if o.ar != nil {
			if l := ban.ARLine(ds[i], o.now(), o.program); l != "" {
				ar = append(ar, l...)
				ar = append(ar, '\n')
			}
		}
	}
	if len(ar) > 0 {
		if _, err := o.ar.Write(ar); err != nil {
			fmt.Fprintf(o.stderr, "block: --ar-log: %v\n", err)
		}
	}
	return nil
}

func (o *output) flush() error { return o.w.Flush() }

// diag writes err on stderr, one line for each line of it (errors.Join
// joins with newlines); blank lines (a program's output ending in one) are
// left out.
func diag(w io.Writer, err error) {
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			fmt.Fprintf(w, "block: %s\n", l)
		}
	}
}

// oneLine returns err for command.Run to print, or, when its text has
// several lines (errors joined, a program's output), writes them with diag
// and returns an error that only carries the exit code: every stderr line
// is "block: ...".
func oneLine(c *cli.Context, err error) error {
	if err == nil || !strings.Contains(err.Error(), "\n") || exitcode.IsReported(err) || command.IsBrokenPipe(err) {
		return err
	}
	diag(c.App.ErrWriter, err)
	return exitcode.Reported(exitcode.Of(err))
}

func runStage(c *cli.Context, e *env) error {
	if c.NArg() > 0 {
		return exitcode.Errorf(exitcode.Usage, "unknown command %q", c.Args().First())
	}
	if n := c.Int("ipv6-prefix"); n < ban.MinIPv6Prefix || n > ban.MaxIPv6Prefix {
		return exitcode.Errorf(exitcode.Usage, "--ipv6-prefix %d: want %d to %d", n, ban.MinIPv6Prefix, ban.MaxIPv6Prefix)
	}
	stderr := &lockedWriter{w: c.App.ErrWriter}
	p, errs := policy(c)
	if len(errs) > 0 {
		for _, m := range errs {
			fmt.Fprintf(stderr, "block: %s\n", m)
		}
		return exitcode.Reported(exitcode.Config)
	}
	cm, err := setup(c, e)
	if err != nil {
		return err
	}
	defer cm.unlock()
	store, closeStore, err := openState(cm.state, e)
	if err != nil {
		return err
	}
	defer closeStore()
	remember(c, store, stderr)
	m := ban.NewManager(p, cm.backends, store)
	e.manage(m, cm.state)
	own, err := e.ownAddrs()
	if err != nil {
		return fmt.Errorf("own addresses: %w", err)
	}
	m.SetOwn(own)
	out := &output{w: record.NewWriter(c.App.Writer), arPath: cm.arLog, program: e.program, now: e.now, stderr: stderr, skips: c.Bool("log-skips")}
	if err := out.openAR(); err != nil {
		return exitcode.New(exitcode.Config, err)
	}
	defer out.close()
	if path := c.String("metrics-file"); path != "" {
		if err := metrics.Check(path); err != nil {
			return exitcode.Errorf(exitcode.Config, "--metrics-file: %w", err)
		}
		var names []string
		for _, b := range cm.backends {
			names = append(names, b.Name())
		}
		out.m = newStageMetrics(m.Bans, names)
		stop := metrics.Start(out.m.reg, path, func(err error) { fmt.Fprintf(stderr, "block: --metrics-file: %v\n", err) })
		defer func() {
			out.m.recount(e.now(), true) // (the loop has ended: no race with it)
			if err := stop(); err != nil {
				fmt.Fprintf(stderr, "block: --metrics-file: %v\n", err)
			}
		}()
	}
	// Served from here on: a subcommand that finds no socket finds the
	// state unlocked. Calls wait for the loop below.
	ctl, err := serve(socketPath(c.String("socket"), cm.state, c.IsSet("socket")), cm.state, stderr)
	if err != nil {
		return err
	}
	defer ctl.close()

	ds, err := m.Reconcile(e.now())
	if werr := out.write(ds); werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	// A kept ban on an address refused now (allow-listed, or this host's
	// own, since the last run) is lifted, as SIGHUP lifts it: a restart
	// instead of a reload must not keep banning the admin.
	ds, err = m.LiftRefused(e.now())
	if werr := out.write(ds); werr != nil {
		return werr
	}
	if err != nil {
		diag(stderr, err)
	}
	if err := out.flush(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	items := make(chan item, maxBatch)
	go read(ctx, c.App.Reader, items, stderr)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	eof := false
	var readErr error
	batch := make([]*record.Alert, 0, maxBatch)
	for {
		var expiry <-chan time.Time
		next, ok := m.NextExpiry()
		if !ok && eof {
			return out.flush()
		}
		// Old offense counts are forgotten by the reaper too, but block
		// does not wait for that at the end of its input.
		if f, fok := m.NextForget(); fok && !eof && (!ok || f.Before(next)) {
			next, ok = f, true
		}
		if ok {
			timer.Reset(max(0, next.Sub(e.now())))
			expiry = timer.C
		}
		in := items
		if eof {
			in = nil
		}
		select {
		case <-ctx.Done():
			// SIGTERM/SIGINT: every decision is saved already; live bans
			// stay in place for the next start.
			return out.flush()
		case <-e.hup:
			if own, err := e.ownAddrs(); err == nil {
				m.SetOwn(own)
			} else {
				fmt.Fprintf(stderr, "block: own addresses: %v\n", err)
			}
			if f := c.String("allow-file"); f != "" {
				if p2, errs := policy(c); len(errs) == 0 {
					m.SetAllow(p2.Allow)
				} else {
					for _, m := range errs {
						fmt.Fprintf(stderr, "block: %s (allow list kept)\n", m)
					}
				}
			}
			if err := out.openAR(); err != nil {
				fmt.Fprintf(stderr, "block: %v\n", err)
			}
			// A ban on an address that is now our own (or allow-listed)
			// is lifted at once.
			ds, err := m.LiftRefused(e.now())
			if werr := out.write(ds); werr != nil {
				return werr
			}
			if err != nil {
				diag(stderr, err)
			}
			if err := out.flush(); err != nil {
				return err
			}
		case cl := <-ctl.requests():
			if err := handle(cl, m, out, p.Timeout, e.now(), stderr); err != nil {
				return err
			}
		case <-expiry:
			ds, err := m.Reap(e.now())
			if werr := out.write(ds); werr != nil {
				return werr
			}
			if err != nil {
				diag(stderr, err)
			}
			if err := out.flush(); err != nil {
				return err
			}
		case it, ok := <-in:
			if !ok {
				eof = true
				continue
			}
			batch = batch[:0]
			if it.alert != nil {
				batch = append(batch, it.alert)
			}
			if it.err != nil {
				readErr = it.err
			}
		drain:
			for len(batch) < maxBatch {
				select {
				case it, ok := <-items:
					if !ok {
						eof = true
						break drain
					}
					if it.alert != nil {
						batch = append(batch, it.alert)
					}
					if it.err != nil {
						readErr = it.err
					}
				default:
					break drain
				}
			}
			if len(batch) == 0 && readErr == nil {
				continue
			}
			if len(batch) > 0 {
				ds, err := m.Handle(e.now(), batch)
				if werr := out.write(ds); werr != nil {
					return werr
				}
				if err != nil {
					diag(stderr, err)
				}
			}
			if readErr != nil {
				// Like SIGTERM: every decision is saved, live bans stay
				// in place for the next start; but the input broke.
				if err := out.flush(); err != nil {
					return err
				}
				return exitcode.New(exitcode.Failure, fmt.Errorf("stdin: %w", readErr))
			}
			if len(items) == 0 {
				if err := out.flush(); err != nil {
					return err
				}
			}
		}
	}
}

// read decodes alerts from r and sends them on items until the end of
// input or ctx is done. Lines that are not alerts are reported on stderr
// and skipped.
func read(ctx context.Context, r io.Reader, items chan<- item, stderr io.Writer) {
	defer close(items)
	lr := record.NewReader(r, 0)
	for {
		line, err := lr.ReadLine()
		if err == io.EOF {
			return
		}
		var ll *record.LineTooLongError
		if errors.As(err, &ll) {
			fmt.Fprintf(stderr, "block: stdin:%d: %v\n", ll.Line, err)
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
			fmt.Fprintf(stderr, "block: stdin:%d: not a JSON object, skipped\n", lr.Line())
			continue
		}
		a, err := record.DecodeBanAlert(line)
		if err != nil {
			fmt.Fprintf(stderr, "block: stdin:%d: not an alert, skipped: %s\n", lr.Line(), firstLine(err.Error()))
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
