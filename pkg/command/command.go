// Package command runs a stage's urfave/cli application the way every
// quietwatch binary behaves: streams from Main's arguments, no os.Exit
// inside the library, usage errors with exit 2, diagnostics as single
// "prog: message" lines on stderr, and one exit-code table.
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/exitcode"
)

// Run runs app with args on the given streams and returns the exit code.
// app.Name is the prefix of every diagnostic.
func Run(ctx context.Context, app *cli.App, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app.Reader = stdin
	app.Writer = stdout
	app.ErrWriter = stderr
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.HideHelpCommand = true
	app.OnUsageError = usageError
	tame(app.Commands)
	err := app.RunContext(ctx, args)
	switch {
	case err == nil, IsBrokenPipe(err):
		return exitcode.OK
	case exitcode.IsReported(err):
	default:
		fmt.Fprintf(stderr, "%s: %v\n", app.Name, err)
		if exitcode.Of(err) == exitcode.Usage {
			fmt.Fprintf(stderr, "%s: run '%s --help' for usage\n", app.Name, app.Name)
		}
	}
	return exitcode.Of(err)
}

func tame(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = usageError
		tame(c.Subcommands)
	}
}

func usageError(_ *cli.Context, err error, _ bool) error {
	return exitcode.New(exitcode.Usage, err)
}

// UsageErrorf returns a usage error (exit 2).
func UsageErrorf(format string, args ...any) error {
	return exitcode.Errorf(exitcode.Usage, format, args...)
}

// SignalContext returns a context cancelled by SIGINT or SIGTERM, so a
// stage can finish the record in hand, flush, save state and exit 0.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// IsBrokenPipe reports whether err means the downstream reader went away,
// which ends a stage quietly.
func IsBrokenPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE)
}
