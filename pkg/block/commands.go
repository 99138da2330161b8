package block

import (
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// lockedWriter serialises writes of several goroutines (stderr).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// subcommand opens what a subcommand needs: backends, the state and a
// Manager loaded from it, and the output.
func subcommand(c *cli.Context, e *env, nargs int, body func(m *ban.Manager, out *output) error) error {
	if c.NArg() != nargs {
		return command.UsageErrorf("%s: want %d argument(s), got %d", c.Command.Name, nargs, c.NArg())
	}
	cm := &common{state: str(c, "state"), arLog: str(c, "ar-log")}
	if c.Command.Name != "list" { // list reads only the state
		var err error
		if cm, err = setup(c, e); err != nil {
			return err
		}
	}
	store, closeStore, err := openState(cm.state, e)
	if err != nil {
		return err
	}
	defer closeStore()
	// Timeouts and the allow list play no part in what subcommands do.
	m := ban.NewManager(ban.Policy{}, cm.backends, store)
	out := &output{w: record.NewWriter(c.App.Writer), arPath: cm.arLog, program: e.program, now: e.now, stderr: c.App.ErrWriter}
	if err := out.openAR(); err != nil {
		return exitcode.New(exitcode.Config, err)
	}
	defer out.close()
	err = body(m, out)
	if ferr := out.flush(); err == nil {
		err = ferr
	}
	return err
}

func runReap(c *cli.Context, e *env) error {
	return subcommand(c, e, 0, func(m *ban.Manager, out *output) error {
		e.manage(m, str(c, "state"))
		ds, err := m.Reconcile(e.now())
		if werr := out.write(ds); werr != nil {
			return werr
		}
		return err
	})
}

func runFlush(c *cli.Context, e *env) error {
	return subcommand(c, e, 0, func(m *ban.Manager, out *output) error {
		now := e.now()
		ds, err := m.Load(now)
		if werr := out.write(ds); werr != nil {
			return werr
		}
		if err != nil {
			diag(c.App.ErrWriter, err)
		}
		ds, err = m.Flush(now)
		if werr := out.write(ds); werr != nil {
			return werr
		}
		return err
	})
}

func runUnban(c *cli.Context, e *env) error {
	return subcommand(c, e, 1, func(m *ban.Manager, out *output) error {
		arg := c.Args().First()
		addr, ok := ban.ParseAddr(arg)
		if !ok {
			return command.UsageErrorf("unban: %q is not an IP address", arg)
		}
		now := e.now()
		ds, err := m.Load(now)
		if werr := out.write(ds); werr != nil {
			return werr
		}
		if err != nil {
			diag(c.App.ErrWriter, err)
		}
		ds, was, err := m.Unban(now, addr)
		if werr := out.write(ds); werr != nil {
			return werr
		}
		if err != nil {
			return err
		}
		if !was {
			return fmt.Errorf("unban %s: not banned", addr)
		}
		return nil
	})
}

func runList(c *cli.Context, e *env) error {
	return subcommand(c, e, 0, func(m *ban.Manager, out *output) error {
		now := e.now()
		// Read-only: expired bans not yet reaped are shown as such
		// rather than lifted here.
		if err := m.Peek(); err != nil {
			return err
		}
		bans := m.Bans()
		if c.Bool("json") {
			for _, b := range bans {
				rec := record.Decision{Timestamp: ban.Stamp(now), Ban: record.Ban{Action: "ban", IP: b.Addr.String(),
					Until: ban.Stamp(b.Until), TimeoutS: int64(b.Timeout / time.Second), Offense: b.Offense,
					Backends: b.Backends, AlertID: b.AlertID, RuleID: b.RuleID}}
				if err := out.write([]record.Decision{rec}); err != nil {
					return err
				}
			}
			return nil
		}
		if err := out.flush(); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "IP\tUNTIL\tLEFT\tOFFENSE\tRULE\tALERT\tBACKENDS")
		for _, b := range bans {
			left := b.Until.Sub(now).Round(time.Second)
			l := left.String()
			if left <= 0 {
				l = "expired"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%v\n", b.Addr, b.Until.Format(time.RFC3339), l, b.Offense, b.RuleID, b.AlertID, b.Backends)
		}
		return tw.Flush()
	})
}
