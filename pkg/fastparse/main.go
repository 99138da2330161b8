// Package fastparse is the fastparse stage of quietwatch: it reads
// Suricata's fast.log (or Snort 2/3 alert_fast), whole or followed like
// tail -F, and writes one JSON Lines event per alert, with Suricata's EVE
// field names.
package fastparse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // --tz works on hosts without a zoneinfo database

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/fastlog"
	"github.com/quietwatch/quietwatch/pkg/metrics"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// prog is the stage's name, the prefix of its diagnostics.
const prog = "fastparse"

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := command.SignalContext(context.Background())
	defer stop()
	// SIGHUP (logrotate's usual signal) must not kill us: in follow mode it
	// makes us look at the file at once.
	h, stopHooks := command.ProcessHooks()
	defer stopHooks()
	return run(ctx, args, stdin, stdout, stderr, &env{Hooks: h})
}

// env is what fastparse takes from the process besides its streams: the
// clock (when to save the position while catching up) and SIGHUP (look at
// the followed files now). Tests build it with their own.
type env struct {
	command.Hooks
}

const usageText = `fastparse [flags] [FILE...]        (no FILE, or -: standard input)
fastparse [flags] -f FILE [-f FILE...] [--position POSFILE] [--from-start]`

const description = `fastparse turns fast.log alert lines into JSON Lines events with Suricata's
EVE field names (timestamp, src_ip, src_port, dest_ip, dest_port, proto,
icmp_type, icmp_code, alert.action/gid/signature_id/rev/signature/category/
severity), plus full_log (the raw line) and location (the file). It reads
every fast.log variant: Suricata's (all versions: [Drop], [wDrop], IPv6
expanded or compressed, ICMP type/code, {PROTO:NNN}, (null), decoder events),
Snort 2's (year-less, see --year) and Snort 3's alert_fast.

A line it cannot parse gets one diagnostic on stderr (fastparse: FILE:LINE:
reason) and is skipped; --strict makes that fatal (exit 65). A record glued
to one Suricata cut short (2047 bytes) is recovered. Invalid UTF-8 is
replaced by U+FFFD (reported, the event kept).

It reads Suricata's eve.json too (--format eve, or auto: a file whose
first byte is '{'): each alert record becomes an event, the record as
Suricata wrote it (src_ip and dest_ip made canonical) plus full_log (the
alert as fast.log would show it) and location; records of other types
(flow, dns, stats, ...) are skipped and counted. A record cut by a crash,
NUL bytes, invalid JSON: one diagnostic each, the rest read on.

With -f, fastparse follows FILE like tail -F: complete lines only, across
rename rotation, copytruncate, deletion and re-creation; several -f follow
several files (Suricata's threaded eve.N.json). It wakes as soon as the
kernel says the file was written (inotify); --poll is the fallback.
--position keeps (device, inode, offset) in a file, so a restart resumes
exactly where the last run stopped. SIGTERM or SIGINT: flush, save the position, exit 0 (a file deleted or
rotated away with lines in it not read yet is read to its end first).
SIGHUP: look at the file now.

Exit status: 0 ok, 1 failure (unreadable file, a folder; -f on a FIFO or
device), 2 usage, 65 bad line with --strict, 78 the --position folder is
missing or not writable.

Examples:
   fastparse -f /var/log/suricata/fast.log --position /var/lib/quietwatch/fastparse.pos |
     correlate -r /etc/quietwatch/local_rules.xml | tee alerts.jsonl | block --backend ipset
   fastparse --tz Europe/Berlin old-fast.log | jq -c 'select(.alert.severity == 1)'
   fastparse --strict --year 2019 snort.alert.fast > events.jsonl
   fastparse -f /var/log/suricata/eve.json --position /var/lib/quietwatch/fastparse.pos | correlate ...`

// defaultPoll is how often a followed file is looked at when it is quiet.
const defaultPoll = 200 * time.Millisecond

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, e *env) int {
	if e == nil {
		e = &env{} // the real clock, no SIGHUP
	}
	app := &cli.App{
		Name:        prog,
		Usage:       "fast.log lines or eve.json alerts in, JSON Lines events (EVE field names) out",
		UsageText:   usageText,
		Description: description,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "tz", Value: "Local", Usage: "`ZONE` of fast.log's timestamps: Local (this machine's), UTC, an IANA name (Europe/Berlin) or an offset (+0200)"},
			&cli.IntFlag{Name: "year", Usage: "`YEAR` of Snort's year-less timestamps; 0: this year, or last year for a date over a month ahead"},
			&cli.StringFlag{Name: "location", Usage: "`TEXT` of the events' location field (default: the file's name; stdin for standard input)"},
			&cli.BoolFlag{Name: "strict", Usage: "stop at the first line that cannot be parsed, exit 65"},
			&cli.StringFlag{Name: "format", Value: "auto", Usage: "`FORMAT` of the input: fast (fast.log), eve (eve.json) or auto (by the first byte of each file: '{' is eve.json)"},
			&cli.StringSliceFlag{Name: "follow", Aliases: []string{"f"}, Usage: "follow `FILE` like tail -F, for ever; repeat for several files (Suricata's threaded eve.N.json)"},
			&cli.StringFlag{Name: "position", Usage: "with -f: keep the read position in `POSFILE` and resume from it (with several -f: in POSFILE.<file's name> each)"},
			&cli.BoolFlag{Name: "from-start", Usage: "with -f and no saved position: read FILE from its start, not its end"},
			&cli.DurationFlag{Name: "poll", Value: defaultPoll, Usage: "with -f: how often to look for new lines (`DURATION`)"},
			&cli.IntFlag{Name: "max-line", Value: fastLineMax, Usage: "longest line accepted, in `BYTES`; longer ones are reported and skipped (eve.json: 64 MiB unless set)"},
			&cli.StringFlag{Name: "metrics-file", Usage: "write Prometheus metrics to `PATH` (*.prom, for node_exporter's textfile collector) every 5 s and at exit"},
		},
		Action: func(c *cli.Context) error {
			s, err := newStage(c, stderr, e)
			if err != nil {
				return err
			}
			return s.run(c.Context, c, stdin)
		},
	}
	return command.Run(ctx, app, args, stdin, stdout, stderr)
}

// fastLineMax is the default --max-line: Suricata cuts alerts at 2 KiB, so
// a megabyte leaves room for many glued records and nothing legitimate is
// ever near it.
const fastLineMax = 1 << 20

// The range of --max-line: a line must hold a record's fixed parts, and
// the reader's buffer grows to the limit, so it must stay far from the
// int's end (1<<63-1 made every size computation overflow and every line
// "too long").
const (
	minLine      = 64
	maxLineLimit = 1 << 30
)

// stage is one run of fastparse.
type stage struct {
	e        *env
	out      *output
	parser   fastlog.Parser // configuration every worker copies
	location string         // --location, or "" for the input's name
	strict   bool
	maxLine  int
	m        *stageMetrics

	format     int  // --format
	maxLineSet bool // --max-line given: it applies to eve.json too

	otherMu sync.Mutex
	other   map[string]int // eve.json records skipped as not alerts, by event_type
}

func newStage(c *cli.Context, stderr io.Writer, e *env) (*stage, error) {
	zone, err := parseZone(c.String("tz"))
	if err != nil {
		return nil, command.UsageErrorf("--tz %q: %v", c.String("tz"), err)
	}
	year := c.Int("year")
	if c.IsSet("year") && (year < 1 || year > 9999) {
		return nil, command.UsageErrorf("--year %d: not a year", year)
	}
	if n := c.Int("max-line"); n < minLine || n > maxLineLimit {
		return nil, command.UsageErrorf("--max-line %d: out of range: %d to %d bytes", n, minLine, maxLineLimit)
	}
	if c.Duration("poll") <= 0 {
		return nil, command.UsageErrorf("--poll %v: must be positive", c.Duration("poll"))
	}
	format, ok := parseFormat(c.String("format"))
	if !ok {
		return nil, command.UsageErrorf("--format %q: must be fast, eve or auto", c.String("format"))
	}
	follows := c.StringSlice("follow")
	if len(follows) == 0 {
		if c.IsSet("position") || c.Bool("from-start") {
			return nil, command.UsageErrorf("--position and --from-start need -f FILE")
		}
	} else if c.NArg() > 0 {
		return nil, command.UsageErrorf("-f follows files: no FILE arguments with it (got %q)", c.Args().First())
	} else if err := checkFollows(follows); err != nil {
		return nil, command.UsageErrorf("%v", err)
	}
	return &stage{
		e:        e,
		out:      newOutput(c.App.Writer, command.Diag{Prog: prog, W: stderr}),
		parser:   fastlog.Parser{Zone: zone, Year: year},
		location: c.String("location"),
		strict:   c.Bool("strict"),
		maxLine:  c.Int("max-line"),
		m:        newStageMetrics(),

		format:     format,
		maxLineSet: c.IsSet("max-line"),
	}, nil
}

// parseZone reads --tz: Local, UTC, an IANA name or a fixed offset.
func parseZone(s string) (*time.Location, error) {
	switch s {
	case "", "Local", "local":
		return time.Local, nil
	case "UTC", "utc", "Z":
		return time.UTC, nil
	}
	if s[0] == '+' || s[0] == '-' {
		d := strings.ReplaceAll(s[1:], ":", "")
		if len(d) == 2 {
			d += "00"
		}
		h, err1 := strconv.Atoi(d[:min(2, len(d))])
		m, err2 := strconv.Atoi(d[min(2, len(d)):])
		if len(d) != 4 || err1 != nil || err2 != nil || h > 23 || m > 59 {
			return nil, errors.New("offset must be +HH, +HHMM or +HH:MM")
		}
		secs := (h*60 + m) * 60
		if s[0] == '-' {
			secs = -secs
		}
		return time.FixedZone(s, secs), nil
	}
	return time.LoadLocation(s)
}

func (s *stage) run(ctx context.Context, c *cli.Context, stdin io.Reader) error {
	if path := c.String("metrics-file"); path != "" {
		if err := metrics.Check(path); err != nil {
			return exitcode.Errorf(exitcode.Config, "--metrics-file: %w", err)
		}
		stop := metrics.Start(s.m.reg, path, func(err error) { s.out.note("--metrics-file: %v", err) })
		defer func() {
			if err := stop(); err != nil {
				s.out.note("--metrics-file: %v", err)
			}
		}()
	}
	var err error
	if names := c.StringSlice("follow"); len(names) > 0 {
		err = s.followAll(ctx, names, c.String("position"), c.Bool("from-start"), c.Duration("poll"))
	} else {
		err = s.files(ctx, c.Args().Slice(), stdin)
	}
	if err != nil {
		return err
	}
	if err := s.out.flush(); err != nil {
		return err
	}
	if n := s.out.skipped; n > 0 {
		s.out.note("%d %s skipped", n, plural(n, "line", "lines"))
	}
	s.reportOther()
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// newWorker returns a worker for the input called name.
func (s *stage) newWorker(name string) *worker {
	w := &worker{p: s.parser, strict: s.strict, maxLine: s.maxLine, m: s.m}
	w.p.Location = name
	if s.location != "" {
		w.p.Location = s.location
	}
	w.plainLocation = record.Verbatim(w.p.Location)
	w.eve.Location = w.p.Location
	w.format = s.format
	w.maxLine = s.maxLineFor(s.format)
	return w
}

// checkFollowed refuses, before anything is read, a -f FILE that cannot be
// followed by offset: a folder, or a FIFO, socket or device (no seeking:
// the old "illegal seek" came after the first read had taken data out of
// the FIFO). A FIFO is read as a stream as a FILE argument or on stdin.
// A FILE that does not exist yet is waited for.
func checkFollowed(name string) error {
	fi, err := os.Stat(name)
	if err != nil {
		return nil // missing: waited for; unreadable: Open says so
	}
	switch m := fi.Mode(); {
	case m.IsDir():
		return fmt.Errorf("-f %s: is a directory, not a log file", name)
	case m&fs.ModeNamedPipe != 0:
		return fmt.Errorf("-f %s: is a FIFO, which cannot be followed by position; read it as a stream instead: fastparse %s (or on standard input)", name, name)
	case !m.IsRegular():
		return fmt.Errorf("-f %s: not a regular file (%v), cannot be followed by position", name, m.Type())
	}
	return nil
}

// checkPositionDir makes sure, at start, that the position file can be
// written: its folder exists and a file can be created in it. Otherwise
// the first save, possibly hours later, would be the first to say so.
func checkPositionDir(posFile string) error {
	dir := filepath.Dir(posFile)
	f, err := os.CreateTemp(dir, "."+filepath.Base(posFile)+".check.*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return exitcode.Errorf(exitcode.Config, "--position %s: cannot write in folder %s: %v", posFile, dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}
