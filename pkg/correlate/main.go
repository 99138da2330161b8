// Package correlate is the correlate stage of quietwatch: it reads events
// (JSON Lines from fastparse), walks them through OSSEC-compatible rules
// (the built-in IDS set and the user's XML files) and writes one alert per
// event that ends at a rule of level 1 or more: the event's bytes
// unchanged plus "rule", "id" and, for composites, "previous_output".
// The rules and the engine that walks them are package rule; this package
// holds the flags, the pipeline (read, evaluate, write) and the metrics.
// See docs/correlate.md.
package correlate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/metrics"
	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/rule"
	"github.com/quietwatch/quietwatch/pkg/rule/seen"
	"github.com/quietwatch/quietwatch/pkg/rule/window"
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
	DefaultMaxKeys = 50000
	DefaultMaxFTS  = 1000000
	// DefaultIPv6Prefix is --ipv6-prefix: a host, or a home line, is
	// usually given a whole /64.
	DefaultIPv6Prefix = 64
	// MinIPv6Prefix is the shortest --ipv6-prefix: a /48 is a whole site,
	// wider would lump unrelated networks together.
	MinIPv6Prefix = 48
)

// prog is the stage's name, the prefix of its diagnostics.
const prog = "correlate"

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := command.SignalContext(context.Background())
	defer stop()
	h, stopHooks := command.ProcessHooks()
	defer stopHooks()
	return run(ctx, args, stdin, stdout, stderr, &env{Hooks: h})
}

// env is what the stage takes from the process besides its streams: the
// wall clock (--clock wall, and the bound on believable event times) and
// SIGHUP (reload the rules). Tests fix the clock and bring their own Hup.
type env struct {
	command.Hooks
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, e *env) int {
	app := &cli.App{
		Name:      prog,
		Usage:     "turn IDS events into leveled alerts with OSSEC-compatible rules",
		UsageText: usageText,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "rules", Aliases: []string{"r"}, Usage: "load rules from `FILE`, or every *.xml in a directory (repeatable; after the built-in rules)"},
			&cli.BoolFlag{Name: "no-builtin", Usage: "leave out the built-in IDS rules (20100 first time seen, 20101 IDS alert, ...)"},
			&cli.BoolFlag{Name: "check", Aliases: []string{"t"}, Usage: "check the rules and exit (0 ok, 78 with every problem listed)"},
			&cli.StringFlag{Name: "clock", Value: "event", Usage: "time `MODE`: event (each event's own timestamp: a replay gives the same alerts) or wall (arrival time)"},
			&cli.StringFlag{Name: "state", Usage: "keep first-time-seen keys in `DIR` across restarts"},
			&cli.IntFlag{Name: "max-keys", Value: DefaultMaxKeys, Usage: "track at most `N` keys (source, signature) for composite rules; the least recently used is forgotten"},
			&cli.IntFlag{Name: "max-fts", Value: DefaultMaxFTS, Usage: "remember at most about `N` first-time-seen keys; the longest unseen are forgotten"},
			&cli.IntFlag{Name: "min-level", Value: 1, Usage: "write alerts of this `LEVEL` and above (OSSEC's log_alert_level)"},
			&cli.BoolFlag{Name: "explain", Usage: "for each event, write the rules tried and why each matched or not on stderr"},
			&cli.StringFlag{Name: "hostname", Usage: "add \"hostname\":`NAME` to every alert (unless the event has one)"},
			&cli.StringFlag{Name: "metrics-file", Usage: "write Prometheus metrics to `PATH` (*.prom, for node_exporter's textfile collector) every 5 s and at exit"},
			&cli.IntFlag{Name: "ipv6-prefix", Value: DefaultIPv6Prefix, Usage: "count an IPv6 source as its network of `N` bits (48 to 128; 128: each address on its own) in same-source counting and first-time-seen keys"},
		},
		Action: func(c *cli.Context) error { return action(ctx, c, stdin, stdout, stderr, e) },
	}
	return command.Run(ctx, app, args, stdin, stdout, stderr)
}

// config is what the flags say.
type config struct {
	minLevel int
	explain  bool
	wall     bool // --clock wall: events are evaluated at their arrival
	hostname string

	rules   []string // -r
	builtin bool     // not --no-builtin
	maxKeys int
	maxFTS  int
	v6bits  int // --ipv6-prefix
	state   string
	metrics string // --metrics-file
}

// parseConfig checks the flags (all but --check) and returns what they say.
func parseConfig(c *cli.Context) (config, error) {
	cfg := config{
		minLevel: c.Int("min-level"), explain: c.Bool("explain"), hostname: c.String("hostname"),
		rules: c.StringSlice("rules"), builtin: !c.Bool("no-builtin"),
		maxKeys: c.Int("max-keys"), maxFTS: c.Int("max-fts"), v6bits: c.Int("ipv6-prefix"),
		state: c.String("state"), metrics: c.String("metrics-file"),
	}
	switch c.String("clock") {
	case "event":
	case "wall":
		cfg.wall = true
	default:
		return cfg, command.UsageErrorf("--clock: %q is neither event nor wall", c.String("clock"))
	}
	if cfg.maxKeys < 1 || cfg.maxFTS < 2 {
		return cfg, command.UsageErrorf("--max-keys and --max-fts must be positive")
	}
	if cfg.v6bits < MinIPv6Prefix || cfg.v6bits > 128 {
		return cfg, command.UsageErrorf("--ipv6-prefix: %d is outside %d..128", cfg.v6bits, MinIPv6Prefix)
	}
	if !cfg.builtin && len(cfg.rules) == 0 {
		return cfg, command.UsageErrorf("no rules: give -r FILE or leave out --no-builtin")
	}
	return cfg, nil
}

func action(ctx context.Context, c *cli.Context, stdin io.Reader, stdout, stderr io.Writer, e *env) error {
	cfg, err := parseConfig(c)
	if err != nil {
		return err
	}
	diag := command.Diag{Prog: prog, W: stderr}
	set, ok := loadRules(cfg.rules, cfg.builtin, diag)
	if !ok {
		return exitcode.Reported(exitcode.Config)
	}
	if c.Bool("check") {
		if c.NArg() > 0 {
			return command.UsageErrorf("--check takes no input files")
		}
		return nil
	}
	fts, ftsPath, err := openState(cfg.state, cfg.maxFTS, diag)
	if err != nil {
		return err
	}
	inputs := []string{"-"}
	if c.NArg() > 0 {
		inputs = c.Args().Slice()
	}
	p := newPipeline(cfg, set, fts, ftsPath, e, stdout, stderr)
	if cfg.metrics != "" {
		if err := metrics.Check(cfg.metrics); err != nil {
			return exitcode.Errorf(exitcode.Config, "--metrics-file: %w", err)
		}
		stop := metrics.Start(p.m.reg, cfg.metrics, func(err error) { diag.Printf("--metrics-file: %v", err) })
		defer func() {
			if err := stop(); err != nil {
				diag.Printf("--metrics-file: %v", err)
			}
		}()
	}
	err = p.run(ctx, inputs, stdin)
	if ftsPath != "" {
		if serr := fts.Save(ftsPath); serr != nil {
			diag.Printf("saving first-time-seen keys: %v", serr)
			if err == nil {
				err = exitcode.Reported(exitcode.Failure)
			}
		}
	}
	return err
}

// openState returns the first-time-seen memory: with --state DIR, what
// DIR/first-time-seen holds (a damaged file keeps the keys read before the
// damage, with a diagnostic) and that path; without, an empty set and "".
func openState(dir string, maxFTS int, diag command.Diag) (*seen.Set, string, error) {
	if dir == "" {
		return seen.New(maxFTS), "", nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, "", exitcode.Errorf(exitcode.Config, "--state: %w", err)
	}
	path := filepath.Join(dir, "first-time-seen")
	s, err := seen.Load(path, maxFTS)
	switch {
	case err != nil && s != nil: // damaged: keep what was read before the damage
		diag.Printf("%v; keeping the %d first-time-seen keys read before it", err, s.Len())
	case err != nil:
		diag.Printf("%v; starting with no first-time-seen memory", err)
	}
	if s == nil {
		s = seen.New(maxFTS)
	}
	return s, path, nil
}

// newPipeline wires the engine for set, the output, SIGHUP's reload and
// the state's saving (with ftsPath) into a pipeline.
func newPipeline(cfg config, set *rule.Set, fts *seen.Set, ftsPath string, e *env, stdout, stderr io.Writer) *pipeline {
	p := &pipeline{
		eng: rule.NewEngine(set, window.NewStore(cfg.maxKeys), fts, cfg.v6bits), cfg: cfg, clock: e.Clock(),
		out: &output{w: stdout, buf: make([]byte, 0, outSize+4096)}, diag: bufio.NewWriter(stderr), hup: e.Hup,
	}
	p.pre.Store(p.newPretest(p.eng))
	// SIGHUP reloads the rules; with a mistake in them, the old rules stay.
	p.reload = func() {
		set, ok := loadRules(cfg.rules, cfg.builtin, command.Diag{Prog: prog, W: p.diag})
		if !ok {
			p.diagf("rules not reloaded: the ones loaded before stay in force")
			return
		}
		p.eng = rule.NewEngine(set, window.NewStore(cfg.maxKeys), fts, cfg.v6bits)
		p.pre.Store(p.newPretest(p.eng))
		p.diagf("rules reloaded (%d rules); composite counts start afresh", len(set.Rules))
	}
	if ftsPath != "" {
		p.save = func() error { return fts.Save(ftsPath) }
	}
	p.m = newStageMetrics()
	return p
}

// loadRules reads the built-in set and the -r paths; it reports every
// problem through diag and returns ok false if there was any.
func loadRules(paths []string, builtin bool, diag command.Diag) (*rule.Set, bool) {
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
				diag.Printf("%s: no *.xml rule files in the directory", p)
				ok = false
			}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				diag.Printf("%v", err)
				ok = false
				continue
			}
			srcs = append(srcs, rule.Source{Name: f, Data: data})
		}
	}
	set, errs := rule.Load(srcs)
	for _, e := range errs {
		diag.Printf("%v", e)
	}
	return set, ok && len(errs) == 0
}

// pipeline reads events, evaluates them and writes alerts. Reading,
// checking the JSON and picking out the fields (stateless) run in one
// goroutine, the rules and the writing in the caller's, with batches of
// lines passed between them: on two cores that nearly doubles throughput.
type pipeline struct {
	eng    *rule.Engine
	cfg    config
	clock  func() time.Time // the wall clock
	out    *output
	diag   *bufio.Writer
	hup    <-chan os.Signal
	reload func()
	save   func() error // writes the state, nil without --state

	last  int64 // newest time seen, µs
	ahead int64 // events stamped later than this are not believed
	// pre is what the reading goroutine tests ahead (set with eng)
	pre atomic.Pointer[rule.Pretest]
	// late is set stopGrace after SIGTERM: the lines read but not yet
	// evaluated are dropped (counted in dropped), so slow rules cannot
	// hold the stop back.
	late    atomic.Bool
	dropped int

	m       *stageMetrics
	scratch []byte // for src_prefix's value
}

// stopGrace is how long after SIGTERM the lines already read are still
// evaluated. Normally they all are within milliseconds; only rules whose
// patterns take long on every line get near it.
const stopGrace = time.Second

func (p *pipeline) newPretest(e *rule.Engine) *rule.Pretest {
	return rule.NewPretest(e, &p.late)
}

const (
	batchLines = 256
	batches    = 4
	// saveEvery is how often the state is written while running (when it
	// changed), so a crash loses at most this much.
	saveEvery = time.Minute
)

// item is one input line on its way through the pipeline.
type item struct {
	line   []byte
	lineNo int    // in its file
	seq    uint64 // line number across all inputs: the alert id's second part
	diag   string // a diagnostic (the line is skipped)
	blank  bool
	fields record.EventFields
	ev     rule.Input
	t      int64
	tOK    bool
}

type batch struct {
	name  string
	data  []byte             // the lines, read straight into it (record.LineBatch.Data)
	lines []record.BatchLine // where they are in data
	items []item             // items[i] is lines[i] on its way
	n     int
	flush bool  // the input had nothing more buffered: flush after
	err   error // the input failed after these items
}

func (p *pipeline) run(ctx context.Context, inputs []string, stdin io.Reader) error {
	full := make(chan *batch, batches)
	free := make(chan *batch, batches)
	for range batches {
		free <- &batch{items: make([]item, batchLines), data: make([]byte, 0, batchData)}
	}
	rs := &readState{stop: ctx.Done(), blocking: make(chan struct{}, 1)}
	go p.readAll(rs, inputs, stdin, full, free)
	var tick <-chan time.Time
	if p.save != nil {
		t := time.NewTicker(saveEvery)
		defer t.Stop()
		tick = t.C
	}
	hup, done := p.hup, ctx.Done()
	var blocking <-chan struct{} // set once stopping
	// idle: stopping, and every line read so far has been evaluated: the
	// reader is waiting for new input (which is not taken any more).
	idle := func() bool { return blocking != nil && rs.waiting.Load() && len(full) == 0 }
	var err error
loop:
	for {
		select {
		case <-tick:
			if serr := p.save(); serr != nil {
				p.diagf("saving first-time-seen keys: %v", serr)
				p.diag.Flush()
			}
		case b, ok := <-full:
			if !ok {
				break loop
			}
			werr := p.process(b)
			if werr == nil && b.flush {
				p.diag.Flush()
				werr = p.out.Flush()
			}
			if b.err != nil && werr == nil {
				werr = b.err
			}
			free <- b
			if werr != nil {
				err = werr
				break loop
			}
			if idle() {
				break loop
			}
		case <-hup:
			p.reload()
			p.diag.Flush()
		case <-done:
			// SIGTERM/SIGINT: the reader takes no new input, the lines
			// already read (batches in the channel, the rest of the read
			// buffer) are evaluated and written, for up to stopGrace;
			// then stop. The reader may stay blocked on a quiet pipe,
			// which ends with the process.
			done, tick, hup, blocking = nil, nil, nil, rs.blocking
			grace := time.AfterFunc(stopGrace, func() { p.late.Store(true) })
			defer grace.Stop()
			if idle() {
				break loop
			}
		case <-blocking:
			if idle() {
				break loop
			}
		}
	}
	if p.dropped > 0 {
		p.diagf("stopped %v after SIGTERM with %d lines read but not evaluated (rules too slow for them)", stopGrace, p.dropped)
	}
	ferr := p.out.Flush()
	p.diag.Flush()
	if err == nil && ferr != nil {
		err = ferr
	}
	return err
}

// readState is what the reading goroutine shares with the rules one for a
// clean stop.
type readState struct {
	stop     <-chan struct{} // closed: read no new input
	waiting  atomic.Bool     // in a read of the input, every line read before handed over
	blocking chan struct{}   // a token each time waiting is set (cap 1, never blocks)
}

// errStopped ends reading after a stop request.
var errStopped = errors.New("stopped")

// stopReader is the input as the reading goroutine sees it: once a stop is
// requested, it reads nothing new. (Before each read, which may block, the
// reading goroutine hands on the whole lines read so far, so a quiet pipe
// holding half a line does not hold the whole lines before it back.)
type stopReader struct {
	r  io.Reader
	rs *readState
}

func (s *stopReader) Read(b []byte) (int, error) {
	select {
	case <-s.rs.stop:
		return 0, errStopped
	default:
	}
	s.rs.waiting.Store(true)
	select {
	case s.rs.blocking <- struct{}{}:
	default:
	}
	n, err := s.r.Read(b)
	s.rs.waiting.Store(false)
	return n, err
}

// readAll is the reading goroutine: it fills batches and closes full at
// the end of the input (or at a stop).
func (p *pipeline) readAll(rs *readState, inputs []string, stdin io.Reader, full chan<- *batch, free <-chan *batch) {
	defer close(full)
	var base uint64
	for _, in := range inputs {
		var r io.Reader = stdin
		name := "stdin"
		if in != "-" {
			f, err := os.Open(in)
			if err != nil {
				b := <-free
				b.n, b.err = 0, exitcode.New(exitcode.Failure, err)
				full <- b
				return
			}
			defer f.Close()
			r, name = f, in
		}
		n, ok := p.read(rs, name, r, base, full, free)
		if !ok {
			return
		}
		base += uint64(n)
	}
}

// read reads one input to its end (or a stop), handing on its lines in
// batches; it returns the number of lines read and whether to go on with
// the next input.
func (p *pipeline) read(rs *readState, name string, r io.Reader, base uint64, full chan<- *batch, free <-chan *batch) (int, bool) {
	rd := &reader{p: p, name: name, base: base, lines: record.NewBatchReader(&stopReader{r: r, rs: rs}, maxLine, batchLines)}
	for {
		b := <-free
		err := rd.fill(b)
		switch {
		case err == nil:
		case err == io.EOF:
			b.flush = true
		case errors.Is(err, errStopped):
			// a part of a line may be lost: it was never a whole record
			b.flush = true
		default:
			b.flush, b.err = false, err
		}
		full <- b
		if err != nil {
			return rd.lines.Line(), err == io.EOF
		}
	}
}

// reader is the reading goroutine's state in one input: its lines, cut
// into batches, and what it takes to number them.
type reader struct {
	p     *pipeline
	name  string
	base  uint64 // the lines of the inputs before this one
	lines *record.BatchReader
}

// fill reads the next lines into b and does the stateless part of each:
// the lines stay where they were read, and the rules goroutine sees them
// there. It returns the error that ended the input (io.EOF at its end)
// after the last lines.
func (rd *reader) fill(b *batch) error {
	lb := record.LineBatch{Data: b.data, Lines: b.lines}
	err := rd.lines.Read(&lb)
	b.data, b.lines = lb.Data, lb.Lines
	b.name, b.n, b.flush, b.err = rd.name, len(lb.Lines), lb.Flush, nil
	for i, l := range lb.Lines {
		it := &b.items[i]
		if l.TooLong > 0 {
			it.lineNo, it.blank = l.Num, false // (the slot may have held a blank line)
			it.diag = fmt.Sprintf("line of %d bytes is longer than the limit, skipped", l.TooLong)
			continue
		}
		it.line = lb.Text(i)
		it.lineNo = l.Num
		it.seq = rd.base + uint64(l.Num)
		scan(it, rd.p.pre.Load())
	}
	return err
}

const (
	// batchData is the initial size of a batch's buffer.
	batchData = 256 << 10
	maxLine   = record.DefaultMaxLine
)

// scan does the stateless part of an event: JSON check, fields, match
// text, timestamp.
func scan(it *item, pt *rule.Pretest) {
	it.diag, it.blank = "", false
	if len(bytes.TrimSpace(it.line)) == 0 {
		it.blank = true
		return
	}
	f := &it.fields
	if err := record.ScanEvent(it.line, f); err != nil {
		it.diag = err.Error() + ", skipped"
		return
	}
	if f.Own != "" {
		it.diag = fmt.Sprintf("record already has correlate's %q key (an alert fed back?), skipped", f.Own)
		return
	}
	pt.Prepare(&it.ev, f, it.line)
	it.t, it.tOK = 0, false
	if f.Timestamp != nil {
		it.t, it.tOK = record.ParseTime(f.Timestamp)
	}
}

func (p *pipeline) diagf(format string, args ...any) {
	command.Diag{Prog: prog, W: p.diag}.Printf(format, args...)
}

func (p *pipeline) process(b *batch) error {
	for i := range b.n {
		if p.late.Load() {
			p.dropped += b.n - i
			return nil
		}
		if err := p.record(b.name, &b.items[i]); err != nil {
			return err
		}
	}
	return nil
}

func (p *pipeline) record(name string, it *item) error {
	if it.blank {
		return nil
	}
	p.m.events.Inc()
	if it.diag != "" {
		p.m.refuse(it.diag)
		p.diagf("%s:%d: %s", name, it.lineNo, it.diag)
		return nil
	}
	f, ev := &it.fields, &it.ev
	now := p.now(it.t, it.tOK)
	if !p.eng.Pretested(ev) { // read before a reload, or a pretest cut short
		p.newPretest(p.eng).Run(ev)
		if !p.eng.Pretested(ev) {
			p.dropped++ // cut short: stopping
			return nil
		}
	}
	explainf := func(format string, args ...any) {
		if p.cfg.explain {
			p.diagf("%s:%d: %s", name, it.lineNo, fmt.Sprintf(format, args...))
		}
	}
	if p.cfg.explain {
		p.eng.Explain = func(depth int, format string, args ...any) {
			p.diagf("%s:%d: %s%s", name, it.lineNo, indent(depth), fmt.Sprintf(format, args...))
		}
		explainf("event at %s, text %q", rule.FormatTime(now), ev.Text)
	}
	res := p.eng.Eval(ev, now)
	r := res.Rule()
	switch {
	case r == nil:
		explainf("no rule matched: no alert")
		return nil
	case r.Level == 0:
		explainf("result rule %d has level 0: event dropped", r.ID)
		return nil
	case r.NoAlert:
		explainf("result rule %d is noalert: no alert", r.ID)
		return nil
	case r.NoLog:
		explainf("result rule %d has option no_log: no alert written", r.ID)
		return nil
	case r.Level < p.cfg.minLevel:
		explainf("result rule %d level %d is below --min-level %d: not written", r.ID, r.Level, p.cfg.minLevel)
		return nil
	}
	host := p.cfg.hostname
	if f.HasHostname {
		host = ""
	}
	var err error
	o := p.out
	n := len(o.buf)
	o.buf, err = res.Alert().AppendAlert(o.buf, it.line, res.FiredTimes(), floorDiv(now, 1e6), it.seq, res.Previous, host)
	if err != nil {
		p.diagf("%s:%d: %v, skipped", name, it.lineNo, err)
		return nil
	}
	if net := ev.Net(); res.BySource() && net.IsValid() {
		// the network the source was counted as, for block and notify
		p.scratch = net.AppendTo(append(p.scratch[:0], '"'))
		p.scratch = append(p.scratch, '"')
		out, _ := record.AppendField(o.buf[n:], "src_prefix", p.scratch) // (an object: AppendAlert made it)
		o.buf = append(o.buf[:n], out...)
	}
	o.buf = append(o.buf, '\n')
	p.m.alert(r.ID, r.Level)
	if p.cfg.explain { // (the arguments would be boxed even when not)
		explainf("alert: rule %d level %d", r.ID, r.Level)
	}
	if len(o.buf) >= outSize {
		return o.Flush()
	}
	return nil
}

// indent is the --explain indentation of a depth.
func indent(depth int) string { return strings.Repeat("  ", depth) }

// outSize is how many bytes of alerts are collected before one write.
const outSize = 64 << 10

// output collects whole alert lines, built in place (no copy into a
// second buffer), and writes them in large chunks; an alert is never
// split between two writes.
type output struct {
	w   io.Writer
	buf []byte
}

// Flush writes the collected alerts.
func (o *output) Flush() error {
	if len(o.buf) == 0 {
		return nil
	}
	_, err := o.w.Write(o.buf)
	o.buf = o.buf[:0]
	return err
}

// maxAhead is how far an event's timestamp may lie beyond this machine's
// clock: further is a sensor clock glitch, not a time to move to.
const maxAhead = 24 * time.Hour

// now is the time an event is evaluated at. Time never goes backwards: an
// event older than the newest one seen (or without a readable timestamp,
// or stamped more than maxAhead after the machine's clock) is evaluated at
// the newest time seen. With the event clock the machine's clock is never
// used as an event's time: before any event with a usable timestamp, one
// without is evaluated at time 0 (unknown: outside every timeframe of real
// events) and the newest time seen stays unset, so a replay of old events
// behind it keeps its own times.
func (p *pipeline) now(t int64, ok bool) int64 {
	if p.cfg.wall {
		t = p.clock().UnixMicro()
	} else {
		if ok && t > p.last && t > p.ahead {
			// the bound is refreshed only when an event passes it (the
			// machine's clock, through the hook so tests can fix it)
			p.ahead = p.clock().Add(maxAhead).UnixMicro()
			ok = t <= p.ahead
		}
		if !ok {
			return p.last
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
