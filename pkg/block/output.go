package block

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// output writes decisions to stdout and the ar-log.
type output struct {
	w       *record.Writer
	ar      *os.File
	arPath  string
	program string
	now     func() time.Time
	diag    command.Diag
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
			o.diag.Printf("--ar-log: %v", err)
		}
	}
	return nil
}

func (o *output) flush() error { return o.w.Flush() }

// printErr writes err on d, one line for each line of it (errors.Join
// joins with newlines); blank lines (a program's output ending in one) are
// left out.
func printErr(d command.Diag, err error) {
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			d.Printf("%s", l)
		}
	}
}

// oneLine returns err for command.Run to print, or, when its text has
// several lines (errors joined, a program's output), writes them with
// printErr and returns an error that only carries the exit code: every stderr line
// is "block: ...".
func oneLine(c *cli.Context, err error) error {
	if err == nil || !strings.Contains(err.Error(), "\n") || exitcode.IsReported(err) || command.IsBrokenPipe(err) {
		return err
	}
	printErr(diagTo(c.App.ErrWriter), err)
	return exitcode.Reported(exitcode.Of(err))
}
