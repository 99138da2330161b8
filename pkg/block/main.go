// Package block is the block stage of quietwatch: it reads alerts (JSON
// Lines) and bans their source addresses on firewall backends for a while,
// writing one decision record per action on stdout. A reaper lifts each ban
// when it ends; a state file carries bans and offense counts across
// restarts and crashes.
package block

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/allowlist"
	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/banstate"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// env is what block takes from the world; tests replace parts of it.
type env struct {
	now      func() time.Time
	ownAddrs func() ([]netip.Addr, error)
	backend  func(name string, cfg firewall.Config) (firewall.Backend, error)
	program  string         // the program path written to the ar-log
	hup      chan os.Signal // SIGHUP; nil: none
	// stateWait is how long to wait for another block to release the
	// state file.
	stateWait time.Duration
	// socket is --socket's default.
	socket string
	// lock takes an instance lock (lockAbstract); nil: none (tests).
	lock func(name string) (release func(), err error)
	// verifyEvery is how often the running stage checks that the
	// backends still hold its bans (0: only after batches of alerts).
	verifyEvery time.Duration
	// stderr is the app's error writer; adopt, when set, says why bans
	// found in the firewall are adopted at start (set by openState).
	stderr io.Writer
	adopt  string
}

func defaultEnv(args []string) *env {
	prog := "block"
	if len(args) > 0 {
		prog = args[0]
	}
	if exe, err := os.Executable(); err == nil {
		prog = exe
	} else if abs, err := filepath.Abs(prog); err == nil && filepath.IsAbs(prog) {
		prog = abs
	}
	return &env{now: time.Now, ownAddrs: allowlist.OwnAddrs, backend: firewall.New, program: prog, stateWait: time.Second,
		socket: "/run/quietwatch/block.sock", lock: lockAbstract, verifyEvery: ban.VerifyEvery}
}

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := command.SignalContext(context.Background())
	defer stop()
	// The netlink library logs attributes it does not know (sets made by
	// the ipset tool carry some) with the log package: not our diagnostics.
	log.SetOutput(io.Discard)
	e := defaultEnv(args)
	e.hup = make(chan os.Signal, 1)
	signal.Notify(e.hup, syscall.SIGHUP)
	defer signal.Stop(e.hup)
	return command.Run(ctx, newApp(e), args, stdin, stdout, stderr)
}

const usageText = "block [flags] < alerts.jsonl\n" +
	"   block [flags] list [--json]|ban IP [--timeout D]|unban IP|flush|reap [flags]"

const description = `block reads alerts (correlate's JSON Lines) on stdin and bans the source
address of every alert with rule.level >= --min-level on each --backend for
--timeout. A repeat while banned restarts the timer ("extend"); an address
banned again after its ban ended is a repeat offender and gets the next of
--repeat-timeouts. The allow list, this host's own addresses, loopback,
link-local, multicast and unspecified addresses are never banned. Each
decision (add, extend, delete) is one JSON line on stdout; with --log-skips
each alert not acted on is one too (a skip, with its reason).

At start block reconciles the firewall with --state: live bans are put
back, expired ones and anything else in its chain or sets removed. At end
of input it waits until its last ban has ended, lifts it and exits;
SIGTERM exits at once and leaves live bans in place for the next start.
SIGHUP re-reads this host's addresses and --allow-file and reopens --ar-log.

While it runs, block answers list, ban and unban on --socket (root only);
run without a block, they work on --state themselves, with the backends,
--ar-log, allow list and --timeout the last block run on it was started
with (flags given to the subcommand win).

Example:
   fastparse -f /var/log/suricata/fast.log | correlate -r local_rules.xml |
     block --backend ipset --allow 203.0.113.12 --repeat-timeouts 30m,1h,24h \
           --ar-log /var/log/quietwatch/active-responses.log
   cat alerts.jsonl | block --backend dry-run --state '' --timeout 2s
   block list; block ban 192.0.2.241 --timeout 1h; block unban 192.0.2.241; block flush`

// commonFlags are the flags of the app and of every subcommand, so they
// may be written before or after the subcommand's name.
func commonFlags(e *env) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "socket", Value: e.socket, Usage: "control socket `PATH` (root only) a running block serves for list, ban and unban; '' none"},
		&cli.StringSliceFlag{Name: "backend", Value: cli.NewStringSlice("iptables"), Usage: "`NAME` of a backend: iptables, ipset, nftables, hosts-deny or dry-run (repeatable)"},
		&cli.StringFlag{Name: "state", Value: "/var/lib/quietwatch/block.db", Usage: "state `FILE` (bbolt); '' keeps no state"},
		&cli.StringFlag{Name: "chain", Value: "QUIETWATCH", Usage: "iptables `CHAIN` of our own (its ipset sets are <chain lower case>-v4 and -v6; the nftables table is inet <chain lower case>)"},
		&cli.StringFlag{Name: "hosts-deny", Value: "/etc/hosts.deny", Usage: "hosts.deny `FILE` of the hosts-deny backend"},
		&cli.StringFlag{Name: "ar-log", Usage: "append OSSEC-style active-responses.log lines to `FILE`"},
	}
}

func newApp(e *env) *cli.App {
	runFlags := append(commonFlags(e),
		&cli.IntFlag{Name: "min-level", Value: 9, Usage: "ban for alerts of rule level `N` and above"},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "length of a first ban"},
		&cli.StringFlag{Name: "repeat-timeouts", Usage: "ban lengths for the 2nd, 3rd, ... ban of an address, comma-separated (`LIST`, e.g. 30m,1h,24h; the last repeats)"},
		&cli.StringSliceFlag{Name: "allow", Usage: "never ban `CIDR` (or a single address; repeatable)"},
		&cli.IntFlag{Name: "ipv6-prefix", Value: ban.DefaultIPv6Prefix, Usage: "ban an IPv6 source as its network of `N` bits (48 to 128; 128: each address alone); a network holding an allowed or own address is not banned whole, only the source's /128"},
		&cli.StringFlag{Name: "allow-file", Usage: "never ban the addresses and CIDRs in `FILE` (one a line, # comments)"},
		&cli.BoolFlag{Name: "log-skips", Usage: "also write a skip decision for each alert not acted on (below-level, allowlisted, ...)"},
		&cli.StringFlag{Name: "metrics-file", Usage: "write Prometheus metrics to `PATH` (*.prom, for node_exporter's textfile collector) every 5 s and at exit"},
	)
	return &cli.App{
		Name:            "block",
		Usage:           "ban the sources of alerts on the firewall, for a while",
		UsageText:       usageText,
		Description:     description,
		Flags:           runFlags,
		HideHelpCommand: true,
		Before:          func(c *cli.Context) error { e.stderr = c.App.ErrWriter; return nil },
		Action:          func(c *cli.Context) error { return oneLine(c, runStage(c, e)) },
		Commands: []*cli.Command{
			{Name: "list", Usage: "print the live bans", Flags: append(commonFlags(e), &cli.BoolFlag{Name: "json", Usage: "one JSON object per ban instead of a table"}),
				Action: sub(e, runList)},
			{Name: "ban", Usage: "ban IP now, by hand (the allow list and this host's addresses are still never banned)", ArgsUsage: "IP",
				Flags:  append(commonFlags(e), &cli.DurationFlag{Name: "timeout", Usage: "length of the ban (default: the running block's --timeout)"}),
				Action: sub(e, runBan)},
			{Name: "unban", Usage: "lift the ban of IP now and forget its offenses", ArgsUsage: "IP", Flags: commonFlags(e),
				Action: sub(e, runUnban)},
			{Name: "flush", Usage: "lift every ban and remove the chain, sets and hosts.deny lines", Flags: commonFlags(e),
				Action: sub(e, runFlush)},
			{Name: "reap", Usage: "reconcile the firewall with the state once (lift expired bans) and exit", Flags: commonFlags(e),
				Action: sub(e, runReap)},
		},
	}
}

// sub wraps a subcommand's action: flags written after its arguments
// count too (block ban 192.0.2.241 --timeout 1h), which urfave/cli alone
// would take as more arguments.
func sub(e *env, run func(*cli.Context, *env) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		c, err := interspersed(c)
		if err != nil {
			return err
		}
		return oneLine(c, run(c, e))
	}
}

// interspersed returns c itself, or when flags follow an argument, a
// context below c in which they are set and the arguments are the
// positional ones only. Values are read through flagCtx, so the innermost
// setting of a flag counts.
func interspersed(c *cli.Context) (*cli.Context, error) {
	args := c.Args().Slice()
	flags := false
	for _, a := range args[min(1, len(args)):] {
		flags = flags || strings.HasPrefix(a, "-")
	}
	if !flags {
		return c, nil
	}
	set := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil {
			return nil, err
		}
	}
	var pos []string
	for rest := args; len(rest) > 0; {
		if err := set.Parse(rest); err != nil {
			return nil, command.UsageErrorf("%s: %v", c.Command.Name, err)
		}
		rest = set.Args()
		if len(rest) > 0 {
			pos = append(pos, rest[0])
			rest = rest[1:]
		}
	}
	if err := set.Parse(append([]string{"--"}, pos...)); err != nil {
		return nil, command.UsageErrorf("%s: %v", c.Command.Name, err)
	}
	x := cli.NewContext(c.App, set, c)
	x.Command = c.Command
	return x, nil
}

// flagCtx returns the innermost context in which name was set, so a flag
// given before the subcommand's name counts unless repeated after it.
func flagCtx(c *cli.Context, name string) *cli.Context {
	for _, x := range c.Lineage() {
		for _, n := range x.LocalFlagNames() {
			if n == name {
				return x
			}
		}
	}
	return c
}

func str(c *cli.Context, name string) string { return flagCtx(c, name).String(name) }

// common are the settings every command shares.
type common struct {
	backends []firewall.Backend
	names    []string
	state    string
	arLog    string
	releases []func() // instance locks held
}

func setup(c *cli.Context, e *env) (*common, error) {
	cm, err := openBackends(e, flagCtx(c, "backend").StringSlice("backend"), str(c, "chain"), str(c, "hosts-deny"))
	if err != nil {
		return nil, err
	}
	cm.state, cm.arLog = str(c, "state"), str(c, "ar-log")
	return cm, nil
}

// openBackends returns the backends called names.
func openBackends(e *env, names []string, chain, hostsDeny string) (*common, error) {
	seen := map[string]bool{}
	var uniq []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			uniq = append(uniq, n)
		}
	}
	if len(uniq) == 0 {
		return nil, command.UsageErrorf("--backend: none given")
	}
	cfg := firewall.Config{Chain: chain, HostsDeny: hostsDeny, Backends: uniq}
	cm := &common{}
	// Backends apply in firewall.Names order: ipset before iptables, so
	// the set exists before a rule refers to it.
	for _, want := range firewall.Names {
		if seen[want] {
			b, err := e.backend(want, cfg)
			if err != nil {
				var ue *firewall.UnavailableError
				if errors.As(err, &ue) {
					return nil, exitcode.New(exitcode.Unavailable, err)
				}
				return nil, exitcode.New(exitcode.Config, err)
			}
			cm.backends = append(cm.backends, b)
			cm.names = append(cm.names, want)
			delete(seen, want)
		}
	}
	for _, n := range uniq {
		if seen[n] {
			return nil, exitcode.Errorf(exitcode.Config, "--backend %q: unknown (want iptables, ipset, nftables, hosts-deny or dry-run)", n)
		}
	}
	if err := cm.lockInstances(e, cfg); err != nil {
		return nil, err
	}
	return cm, nil
}

// openState opens the state file, or an in-memory store for --state ”.
func openState(path string, e *env) (ban.Store, func() error, error) {
	if path == "" {
		return banstate.NewMemory(), func() error { return nil }, nil
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, exitcode.New(exitcode.Config, fmt.Errorf("state: %w", err))
		}
	}
	s, err := banstate.Open(path, e.stateWait)
	if errors.Is(err, banstate.ErrLocked) {
		return nil, nil, exitcode.New(exitcode.TempFail, fmt.Errorf("%w (list, ban and unban reach a running block through its --socket; stop it for flush and reap)", err))
	}
	if err != nil {
		return nil, nil, err
	}
	e.noteState(path, s)
	return s, s.Close, nil
}
