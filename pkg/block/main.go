// Package block is the block stage of quietwatch: it reads alerts (JSON
// Lines) and bans their source addresses on firewall backends for a while,
// writing one decision record per action on stdout. A reaper lifts each ban
// when it ends; a state file carries bans and offense counts across
// restarts and crashes.
package block

import (
	"context"
	"flag"
	"io"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/allowlist"
	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// prog is the stage's name: the app's, and the prefix of its diagnostics.
const prog = "block"

// env is what block takes from the process and the world; tests replace
// parts of it. What belongs to one run (the diagnostics' writer, whether
// bans found in the firewall are adopted) lives in that run's structs.
type env struct {
	// Process wiring: the clock and SIGHUP.
	command.Hooks

	// The world block acts on and asks: the firewall backends, this
	// host's addresses, the instance locks (lockAbstract; nil: none).
	backend  func(name string, cfg firewall.Config) (firewall.Backend, error)
	ownAddrs func() ([]netip.Addr, error)
	lock     func(name string) (release func(), err error)

	// Fixed for the process: the program path written to the ar-log and
	// --socket's default.
	program string
	socket  string

	// Timings: how long to wait for another block to release the state
	// file or an instance lock, and how often the running stage checks
	// that the backends still hold its bans (0: only after batches of
	// alerts).
	stateWait   time.Duration
	verifyEvery time.Duration
}

// now reads the clock (time.Now when the hooks have none).
func (e *env) now() time.Time { return e.Clock()() }

// defaultEnv is the real world, with hooks (command.ProcessHooks for the
// process; a benchmark's need no SIGHUP).
func defaultEnv(args []string, hooks command.Hooks) *env {
	path := prog
	if len(args) > 0 {
		path = args[0]
	}
	if exe, err := os.Executable(); err == nil {
		path = exe
	} else if abs, err := filepath.Abs(path); err == nil && filepath.IsAbs(path) {
		path = abs
	}
	return &env{Hooks: hooks, backend: firewall.New, ownAddrs: allowlist.OwnAddrs, lock: lockAbstract,
		program: path, socket: "/run/quietwatch/block.sock", stateWait: time.Second, verifyEvery: ban.VerifyEvery}
}

// diagTo returns block's diagnostics on w: one "block: ..." line each.
func diagTo(w io.Writer) command.Diag { return command.Diag{Prog: prog, W: w} }

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := command.SignalContext(context.Background())
	defer stop()
	// The netlink library logs attributes it does not know (sets made by
	// the ipset tool carry some) with the log package: not our diagnostics.
	log.SetOutput(io.Discard)
	hooks, stopHooks := command.ProcessHooks()
	defer stopHooks()
	return command.Run(ctx, newApp(defaultEnv(args, hooks)), args, stdin, stdout, stderr)
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
		Name:            prog,
		Usage:           "ban the sources of alerts on the firewall, for a while",
		UsageText:       usageText,
		Description:     description,
		Flags:           runFlags,
		HideHelpCommand: true,
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
