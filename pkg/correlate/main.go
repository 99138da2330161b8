// Package correlate is the correlate stage of quietwatch: it reads events
// (JSON Lines from fastparse), walks them through OSSEC-compatible rules
// (the built-in IDS set and the user's XML files) and writes one alert per
// event that ends at a rule of level 1 or more: the event's bytes
// unchanged plus "rule", "id" and, for composites, "previous_output".
// See docs/correlate.md.
package correlate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/rule"
	"github.com/quietwatch/quietwatch/pkg/seen"
	"github.com/quietwatch/quietwatch/pkg/window"
)

const usageText = `correlate [-r RULES]... [options] [FILE...] < events.jsonl > alerts.jsonl

   Turns fastparse's events into leveled alerts with OSSEC-compatible rules:
   the built-in IDS rules plus every -r file (or directory of *.xml).
   Reads FILEs, or stdin when there are none.

   fastparse -f /var/log/suricata/fast.log | correlate -r /etc/quietwatch/local_rules.xml |
     tee >(notify --to root) | block

   correlate -t -r local_rules.xml          # check the rules only (ExecStartPre=)
   fastparse old-fast.log | correlate -r local_rules.xml --explain > alerts.jsonl`

// Defaults of the flags.
const (
	DefaultMaxKeys = 100000
	DefaultMaxFTS  = 1000000
)

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := command.SignalContext(context.Background())
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return run(ctx, args, stdin, stdout, stderr, hooks{wall: time.Now, hup: hup})
}

// hooks let tests replace the wall clock and deliver SIGHUP.
type hooks struct {
	wall func() time.Time
	hup  <-chan os.Signal
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, h hooks) int {
	app := &cli.App{
		Name:      "correlate",
		Usage:     "turn IDS events into leveled alerts with OSSEC-compatible rules",
		UsageText: usageText,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "rules", Aliases: []string{"r"}, Usage: "load rules from `FILE`, or every *.xml in a directory (repeatable; after the built-in rules)"},
			&cli.BoolFlag{Name: "no-builtin", Usage: "leave out the built-in IDS rules (20100 first time seen, 20101 IDS alert, ...)"},
			&cli.BoolFlag{Name: "check", Aliases: []string{"t"}, Usage: "check the rules and exit (0 ok, 78 with every problem listed)"},
			&cli.StringFlag{Name: "clock", Value: "event", Usage: "`event`: time is each event's timestamp (replays give the same alerts); wall: the time it arrives"},
			&cli.StringFlag{Name: "state", Usage: "keep first-time-seen keys in `DIR` across restarts"},
			&cli.IntFlag{Name: "max-keys", Value: DefaultMaxKeys, Usage: "track at most `N` keys (source, signature) for composite rules; the least recently used is forgotten"},
			&cli.IntFlag{Name: "max-fts", Value: DefaultMaxFTS, Usage: "remember at most about `N` first-time-seen keys; the longest unseen are forgotten"},
			&cli.IntFlag{Name: "min-level", Value: 1, Usage: "write alerts of this `LEVEL` and above (OSSEC's log_alert_level)"},
			&cli.BoolFlag{Name: "explain", Usage: "for each event, write the rules tried and why each matched or not on stderr"},
			&cli.StringFlag{Name: "hostname", Usage: "add \"hostname\":`NAME` to every alert (unless the event has one)"},
		},
		Action: func(c *cli.Context) error { return action(ctx, c, stdin, stdout, stderr, h) },
	}
	return command.Run(ctx, app, args, stdin, stdout, stderr)
}

// config is what the flags say.
type config struct {
	minLevel int
	explain  bool
	wall     func() time.Time // nil: event clock
	hostname string
}

func action(ctx context.Context, c *cli.Context, stdin io.Reader, stdout, stderr io.Writer, h hooks) error {
	cfg := config{minLevel: c.Int("min-level"), explain: c.Bool("explain"), hostname: c.String("hostname")}
	switch c.String("clock") {
	case "event":
	case "wall":
		cfg.wall = h.wall
	default:
		return command.UsageErrorf("--clock: %q is neither event nor wall", c.String("clock"))
	}
	if c.Int("max-keys") < 1 || c.Int("max-fts") < 2 {
		return command.UsageErrorf("--max-keys and --max-fts must be positive")
	}
	if c.Bool("no-builtin") && len(c.StringSlice("rules")) == 0 {
		return command.UsageErrorf("no rules: give -r FILE or leave out --no-builtin")
	}
	rules, builtin := c.StringSlice("rules"), !c.Bool("no-builtin")
	set, ok := loadRules(rules, builtin, stderr)
	if !ok {
		return exitcode.Reported(exitcode.Config)
	}
	if c.Bool("check") {
		if c.NArg() > 0 {
			return command.UsageErrorf("--check takes no input files")
		}
		return nil
	}

	fts := seen.New(c.Int("max-fts"))
	var ftsPath string
	if dir := c.String("state"); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return exitcode.Errorf(exitcode.Config, "--state: %w", err)
		}
		ftsPath = filepath.Join(dir, "first-time-seen")
		s, err := seen.Load(ftsPath, c.Int("max-fts"))
		if err != nil {
			fmt.Fprintf(stderr, "correlate: %v; starting with no first-time-seen memory\n", err)
		} else {
			fts = s
		}
	}
	maxKeys := c.Int("max-keys")
	eng := newEngine(set, window.NewStore(maxKeys), fts)

	inputs := []string{"-"}
	if c.NArg() > 0 {
		inputs = c.Args().Slice()
	}
	p := &pipeline{eng: eng, cfg: cfg, out: record.NewWriter(stdout), diag: bufio.NewWriter(stderr), hup: h.hup}
	// SIGHUP reloads the rules; with a mistake in them, the old rules stay.
	p.reload = func() {
		set, ok := loadRules(rules, builtin, p.diag)
		if !ok {
			p.diagf("rules not reloaded: the ones loaded before stay in force")
			return
		}
		p.eng = newEngine(set, window.NewStore(maxKeys), fts)
		p.diagf("rules reloaded (%d rules); composite counts start afresh", len(set.Rules))
	}
	err := p.run(ctx, inputs, stdin)
	if ftsPath != "" {
		if serr := fts.Save(ftsPath); serr != nil {
			fmt.Fprintf(stderr, "correlate: saving first-time-seen keys: %v\n", serr)
			if err == nil {
				err = exitcode.Reported(exitcode.Failure)
			}
		}
	}
	return err
}

// loadRules reads the built-in set and the -r paths; it reports every
// problem on stderr and returns ok false if there was any.
func loadRules(paths []string, builtin bool, stderr io.Writer) (*rule.Set, bool) {
	var srcs []rule.Source
	if builtin {
		srcs = append(srcs, rule.Builtin())
	}
	ok := true
	for _, p := range paths {
		files := []string{p}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			files, _ = filepath.Glob(filepath.Join(p, "*.xml"))
			sort.Strings(files)
			if len(files) == 0 {
				fmt.Fprintf(stderr, "correlate: %s: no *.xml rule files in the directory\n", p)
				ok = false
			}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				fmt.Fprintf(stderr, "correlate: %v\n", err)
				ok = false
				continue
			}
			srcs = append(srcs, rule.Source{Name: f, Data: data})
		}
	}
	set, errs := rule.Load(srcs)
	for _, e := range errs {
		fmt.Fprintf(stderr, "correlate: %v\n", e)
	}
	return set, ok && len(errs) == 0
}

// pipeline reads events, evaluates them and writes alerts.
type pipeline struct {
	eng  *Engine
	cfg  config
	out  *record.Writer
	diag *bufio.Writer

	mu      sync.Mutex // held while a record is in hand
	stopped bool
	hup     <-chan os.Signal
	reload  func()

	fields record.EventFields
	ev     event
	buf    []byte
	last   int64 // newest time seen, µs
	name   string
	line   int
}

func (p *pipeline) run(ctx context.Context, inputs []string, stdin io.Reader) error {
	done := make(chan error, 1)
	go func() { done <- p.readAll(inputs, stdin) }()
	var err error
loop:
	for {
		select {
		case err = <-done:
			break loop
		case <-p.hup:
			p.mu.Lock()
			p.reload()
			p.diag.Flush()
			p.mu.Unlock()
		case <-ctx.Done():
			// Finish the record in hand, then stop; the reader may stay
			// blocked on a quiet pipe, which ends with the process.
			p.mu.Lock()
			p.stopped = true
			p.mu.Unlock()
			break loop
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ferr := p.out.Flush()
	p.diag.Flush()
	if err == nil && ferr != nil {
		err = ferr
	}
	return err
}

func (p *pipeline) readAll(inputs []string, stdin io.Reader) error {
	for _, in := range inputs {
		var r io.Reader = stdin
		p.name = "stdin"
		if in != "-" {
			f, err := os.Open(in)
			if err != nil {
				return exitcode.New(exitcode.Failure, err)
			}
			defer f.Close()
			r, p.name = f, in
		}
		if err := p.read(r); err != nil {
			return err
		}
	}
	return nil
}

func (p *pipeline) read(r io.Reader) error {
	rd := record.NewReader(r, 0)
	for {
		line, err := rd.ReadLine()
		p.mu.Lock()
		if p.stopped {
			p.mu.Unlock()
			return nil
		}
		p.line = rd.Line()
		var tl *record.LineTooLongError
		switch {
		case err == io.EOF:
			p.mu.Unlock()
			return nil
		case errors.As(err, &tl):
			p.diagf("%s:%d: line of %d bytes is longer than the limit, skipped", p.name, tl.Line, tl.Size)
		case err != nil:
			p.mu.Unlock()
			return err
		default:
			if werr := p.record(line); werr != nil {
				p.mu.Unlock()
				return werr
			}
		}
		if rd.Buffered() == 0 {
			p.diag.Flush()
			if ferr := p.out.Flush(); ferr != nil {
				p.mu.Unlock()
				return ferr
			}
		}
		p.mu.Unlock()
	}
}

func (p *pipeline) diagf(format string, args ...any) {
	p.diag.WriteString("correlate: ")
	fmt.Fprintf(p.diag, format, args...)
	p.diag.WriteByte('\n')
}

func (p *pipeline) record(line []byte) error {
	if len(strings.TrimSpace(string(line))) == 0 {
		return nil
	}
	f := &p.fields
	if err := record.ScanEvent(line, f); err != nil {
		p.diagf("%s:%d: %v, skipped", p.name, p.line, err)
		return nil
	}
	if f.Own != "" {
		p.diagf("%s:%d: record already has correlate's %q key (an alert fed back?), skipped", p.name, p.line, f.Own)
		return nil
	}
	now := p.now(f.Timestamp)
	ev := &p.ev
	prepare(ev, f, line, p.eng.needIP)
	if p.cfg.explain {
		p.eng.explain = func(depth int, format string, args ...any) {
			p.diagf("%s:%d: %s%s", p.name, p.line, indent(depth), fmt.Sprintf(format, args...))
		}
		p.diagf("%s:%d: event at %s, text %q", p.name, p.line, fmtTime(now), ev.Text)
	}
	res := p.eng.eval(ev, now)
	rs := res.rs
	switch {
	case rs == nil:
		p.explainf("no rule matched: no alert")
		return nil
	case rs.r.Level == 0:
		p.explainf("result rule %d has level 0: event dropped", rs.r.ID)
		return nil
	case rs.r.NoAlert:
		p.explainf("result rule %d is noalert: no alert", rs.r.ID)
		return nil
	case rs.r.NoLog:
		p.explainf("result rule %d has option no_log: no alert written", rs.r.ID)
		return nil
	case rs.r.Level < p.cfg.minLevel:
		p.explainf("result rule %d level %d is below --min-level %d: not written", rs.r.ID, rs.r.Level, p.cfg.minLevel)
		return nil
	}
	host := p.cfg.hostname
	if f.HasHostname {
		host = ""
	}
	var err error
	p.buf, err = record.AppendAlert(p.buf[:0], line, &rs.rec, floorDiv(now, 1e6), uint64(p.line), res.prev, host)
	if err != nil {
		p.diagf("%s:%d: %v, skipped", p.name, p.line, err)
		return nil
	}
	p.explainf("alert: rule %d level %d", rs.r.ID, rs.r.Level)
	return p.out.WriteLine(p.buf)
}

func (p *pipeline) explainf(format string, args ...any) {
	if p.cfg.explain {
		p.diagf("%s:%d: %s", p.name, p.line, fmt.Sprintf(format, args...))
	}
}

// now is the time an event is evaluated at. Time never goes backwards: an
// event older than the newest one seen (or without a readable timestamp)
// is evaluated at the newest time seen.
func (p *pipeline) now(ts []byte) int64 {
	var t int64
	ok := false
	if p.cfg.wall != nil {
		t, ok = p.cfg.wall().UnixMicro(), true
	} else if ts != nil {
		t, ok = parseTime(ts)
	}
	if !ok {
		if p.last == 0 {
			t = time.Now().UnixMicro()
		} else {
			t = p.last
		}
	}
	if t < p.last {
		t = p.last
	}
	p.last = t
	return t
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
