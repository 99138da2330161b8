package block

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/firewall"
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

// offline is what a subcommand works with when no block answers on the
// socket: the state file, a Manager loaded from it, the settings and the
// output.
type offline struct {
	m    *ban.Manager
	set  settings
	out  *output
	diag command.Diag
}

// subcommand opens what a subcommand run without a block needs: the
// state, the settings (flags given, else those the last block run on the
// state was started with), the backends (not for list) and the output.
// policy builds the Manager's policy from the settings (nil: none).
func subcommand(c *cli.Context, e *env, policy func(settings) (ban.Policy, error), body func(o *offline) error) error {
	d := diagTo(c.App.ErrWriter)
	st, err := openState(str(c, "state"), e, d)
	if err != nil {
		return err
	}
	defer st.close()
	set, err := effective(c, st.store)
	if err != nil {
		printErr(d, err)
	}
	var backends []firewall.Backend
	if c.Command.Name != "list" { // list reads only the state
		cm, err := openBackends(e, set.Backends, set.Chain, set.HostsDeny)
		if err != nil {
			return err
		}
		backends = cm.backends
	}
	// Timeouts and the allow list play no part in what subcommands other
	// than ban do.
	var p ban.Policy
	if policy != nil {
		if p, err = policy(set); err != nil {
			return err
		}
	}
	m := ban.NewManager(p, backends, st.store)
	// As at a start: bans found in the firewall that a new, empty or
	// damaged state cannot account for are adopted, removals are said.
	e.manage(m, st, d)
	out := &output{w: record.NewWriter(c.App.Writer), arPath: set.ARLog, program: e.program, now: e.now, diag: d}
	if err := out.openAR(); err != nil {
		return exitcode.New(exitcode.Config, err)
	}
	defer out.close()
	err = body(&offline{m: m, set: set, out: out, diag: d})
	if ferr := out.flush(); err == nil {
		err = ferr
	}
	return err
}

func nargs(c *cli.Context, n int) error {
	if c.NArg() != n {
		return command.UsageErrorf("%s: want %d argument(s), got %d", c.Command.Name, n, c.NArg())
	}
	return nil
}

// remote asks the block serving --socket. It returns errNoBlock when none
// answers; otherwise it prints the decisions of the answer and returns
// the answer's error with its exit code.
func remote(c *cli.Context, req ctlRequest) (ctlResponse, error) {
	if isSet(c, "state") {
		if req.State = abs(str(c, "state")); req.State == "" {
			return ctlResponse{}, errNoBlock // an empty state: nothing to share
		}
	}
	r, err := ask(str(c, "socket"), req)
	if err != nil {
		return r, err
	}
	w := record.NewWriter(c.App.Writer)
	for i := range r.Decisions {
		b, err := record.Marshal(&r.Decisions[i])
		if err != nil {
			return r, err
		}
		if err := w.WriteLine(b); err != nil {
			return r, err
		}
	}
	if err := w.Flush(); err != nil {
		return r, err
	}
	if !r.OK {
		code := r.Exit
		if code == 0 {
			code = exitcode.Failure
		}
		return r, exitcode.Errorf(code, "%s", r.Error)
	}
	return r, nil
}

func runReap(c *cli.Context, e *env) error {
	if err := nargs(c, 0); err != nil {
		return err
	}
	return subcommand(c, e, nil, func(o *offline) error {
		ds, err := o.m.Reconcile(e.now())
		if werr := o.out.write(ds); werr != nil {
			return werr
		}
		return err
	})
}

func runFlush(c *cli.Context, e *env) error {
	if err := nargs(c, 0); err != nil {
		return err
	}
	return subcommand(c, e, nil, func(o *offline) error {
		now := e.now()
		ds, err := o.m.Load(now)
		if werr := o.out.write(ds); werr != nil {
			return werr
		}
		if err != nil {
			printErr(o.diag, err)
		}
		ds, err = o.m.Flush(now)
		if werr := o.out.write(ds); werr != nil {
			return werr
		}
		return err
	})
}

// addrArg returns the subcommand's IP argument.
func addrArg(c *cli.Context) (string, error) {
	if err := nargs(c, 1); err != nil {
		return "", err
	}
	arg := c.Args().First()
	addr, ok := ban.ParseAddr(arg)
	if !ok {
		return "", command.UsageErrorf("%s: %q is not an IP address", c.Command.Name, arg)
	}
	return addr.String(), nil
}

// netArg returns unban's argument: an address or a network banned whole
// (2001:db8::/64), in canonical text.
func netArg(c *cli.Context) (string, error) {
	if err := nargs(c, 1); err != nil {
		return "", err
	}
	arg := c.Args().First()
	p, ok := firewall.ParsePrefix(arg)
	if !ok {
		return "", command.UsageErrorf("%s: %q is not an IP address or network", c.Command.Name, arg)
	}
	return firewall.PrefixText(p), nil
}

func runUnban(c *cli.Context, e *env) error {
	ip, err := netArg(c)
	if err != nil {
		return err
	}
	if _, err := remote(c, ctlRequest{Op: "unban", IP: ip}); !errors.Is(err, errNoBlock) {
		return err
	}
	addr, _ := firewall.ParsePrefix(ip)
	return subcommand(c, e, nil, func(o *offline) error {
		now := e.now()
		// A ban that has ended but was not lifted yet (no reaper ran) is
		// lifted here as expired: the unban did what was asked.
		ds, err := o.m.Load(now)
		expired := false
		for _, d := range ds {
			expired = expired || d.Ban.IP == ip
		}
		if werr := o.out.write(ds); werr != nil {
			return werr
		}
		if err != nil {
			printErr(o.diag, err)
		}
		ds, was, err := o.m.Unban(now, addr)
		if werr := o.out.write(ds); werr != nil {
			return werr
		}
		if err != nil {
			return err
		}
		if !was && !expired {
			return fmt.Errorf("unban %s: not banned", ip)
		}
		return nil
	})
}

func runBan(c *cli.Context, e *env) error {
	ip, err := addrArg(c)
	if err != nil {
		return err
	}
	req := ctlRequest{Op: "ban", IP: ip}
	var timeout time.Duration
	if isSet(c, "timeout") {
		timeout = flagCtx(c, "timeout").Duration("timeout")
		if timeout <= 0 {
			return exitcode.Errorf(exitcode.Config, "ban: --timeout %s: want a positive duration", timeout)
		}
		req.Timeout = timeout.String()
	}
	if _, err := remote(c, req); !errors.Is(err, errNoBlock) {
		return err
	}
	addr, _ := ban.ParseAddr(ip)
	return subcommand(c, e, banPolicy, func(o *offline) error {
		own, err := e.ownAddrs()
		if err != nil {
			return fmt.Errorf("own addresses: %w", err)
		}
		o.m.SetOwn(own)
		// A refusal touches nothing, not even the reconcile below.
		if r := result("ban", addr.String(), o.m.Refused(addr), diagTo(io.Discard)); !r.OK {
			return exitcode.Errorf(r.Exit, "%s", r.Error)
		}
		now := e.now()
		// Nothing runs the reaper: bring the backends in line with the
		// state first (as block reap does; it also makes the chain and
		// sets the ban goes into).
		ds, err := o.m.Reconcile(now)
		if werr := o.out.write(ds); werr != nil {
			return werr
		}
		if err != nil {
			return err
		}
		ds, err = o.m.Manual(now, addr, timeout)
		if werr := o.out.write(ds); werr != nil {
			return werr
		}
		if r := result("ban", addr.String(), err, diagTo(io.Discard)); !r.OK {
			return exitcode.Errorf(r.Exit, "%s", r.Error)
		}
		return nil
	})
}

func runList(c *cli.Context, e *env) error {
	if err := nargs(c, 0); err != nil {
		return err
	}
	r, err := remote(c, ctlRequest{Op: "list"})
	if err == nil {
		return printList(c, r.Bans)
	}
	if !errors.Is(err, errNoBlock) {
		return err
	}
	return subcommand(c, e, nil, func(o *offline) error {
		// Read-only: expired bans not yet reaped are shown as such
		// rather than lifted here.
		if err := o.m.Peek(); err != nil {
			return err
		}
		return printList(c, listBans(o.m.Bans(), e.now()))
	})
}

// printList prints bans as a table, or one JSON object a line (--json).
func printList(c *cli.Context, bans []listBan) error {
	if flagCtx(c, "json").Bool("json") {
		w := record.NewWriter(c.App.Writer)
		for i := range bans {
			b, err := record.Marshal(&bans[i])
			if err != nil {
				return err
			}
			if err := w.WriteLine(b); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IP\tUNTIL\tLEFT\tOFFENSE\tRULE\tALERT\tBACKENDS")
	for _, b := range bans {
		until := b.Until
		if t, err := time.Parse(record.DecisionTimeLayout, b.Until); err == nil {
			until = t.Local().Format(time.RFC3339)
		}
		left := "expired"
		if b.RemainingS > 0 {
			left = (time.Duration(b.RemainingS) * time.Second).String()
		}
		rule := b.RuleID
		if b.Reason == "manual" {
			rule = "manual"
		}
		backends := append([]string(nil), b.Backends...)
		for _, p := range b.Pending {
			backends = append(backends, p+"(pending)")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", b.IP, until, left, b.Offense, dash(rule), dash(b.AlertID), dash(strings.Join(backends, ",")))
	}
	return tw.Flush()
}
