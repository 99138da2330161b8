// Package share is the share stage of quietwatch: a filter that joins a
// server's pipeline to its fleet over NATS JetStream. Every record read is
// written to stdout at once, unchanged; this server's alerts at or above
// --level are published for their source address, and the peers' ones
// come out on stdout marked with a fleet field, for block to ban like
// local ones. NATS is the transport and the catch-up log; block stays the
// authority, and guards against a broken peer apply here.
package share

import (
	"context"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/allowlist"
	"github.com/quietwatch/quietwatch/pkg/command"
)

// env is what share takes from the process and the world; tests replace
// parts of it.
type env struct {
	// Process wiring: the clock and SIGHUP.
	command.Hooks

	// The world: this host's addresses and name, and options added to
	// every NATS connection (tests: an in-process server).
	ownAddrs func() ([]netip.Addr, error)
	hostname func() (string, error)
	natsOpts []nats.Option

	// drain is how long share waits at the end of input for publishes.
	drain time.Duration

	// Test hooks, each called when set: ready once share is subscribed,
	// synced after each catch-up, reloaded after each SIGHUP.
	ready, synced, reloaded func()
}

// now reads the clock (time.Now when the hooks have none).
func (e *env) now() time.Time { return e.Clock()() }

// defaultEnv is the real world, with hooks (command.ProcessHooks for the
// process).
func defaultEnv(hooks command.Hooks) *env {
	return &env{Hooks: hooks, ownAddrs: allowlist.OwnAddrs, hostname: os.Hostname, drain: 5 * time.Second}
}

// Main runs the stage and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := command.SignalContext(context.Background())
	defer stop()
	hooks, stopHooks := command.ProcessHooks()
	defer stopHooks()
	return command.Run(ctx, newApp(defaultEnv(hooks)), args, stdin, stdout, stderr)
}

const usageText = "share --nats URLS [flags] < alerts.jsonl > alerts.jsonl\n" +
	"   share --serve ADDR [flags] < alerts.jsonl > alerts.jsonl\n" +
	"   share publish --nats URLS [flags] < events.jsonl > events.jsonl\n" +
	"   share subscribe --nats URLS [flags] > events.jsonl\n" +
	"   share keygen FILE"

const description = `share joins this server's pipeline to its fleet. It sits before block:
every record read is written to stdout at once, unchanged (NATS never
delays a local ban, and an outage never stops the pipeline). Alerts with
rule.level >= --level and a src_ip, and no fleet field, are published on
qw.ban.<origin>.<address> with a lifetime of --ttl; JetStream keeps the
live ones (stream QW_BANS, created when missing) so a server that was away
catches up on reconnect. Peers' alerts are written to stdout as the peer
sent them plus "fleet":{"origin":..,"received":..,"expires":..,"ttl_s":..},
and never published again. A peer's ban passes the guards first: never
the allow list, this host's addresses, loopback, link-local, multicast or
private ranges (--allow-private lets those through), no network wider
than --min-prefix4/--min-prefix6, lifetime at most --max-ttl, at most
--peer-rate bans a second per origin and --max-peer-bans live ones, and
with --quorum K only once K origins reported the address.

SIGHUP re-reads --allow-file and this host's addresses.

--serve ADDR runs a NATS server with JetStream in this process (data in
--store), for a fleet of two or three servers without a NATS install;
the others connect to it with --nats nats://this-host:PORT.

share publish and share subscribe carry events instead, for one correlate
that sees the whole fleet (README: Fleet).

Example:
   fastparse -f /var/log/suricata/fast.log | correlate -r local_rules.xml |
     tee >(notify --to root) |
     share --nats nats://nats1:4222,nats://nats2:4222 --creds /etc/quietwatch/web1.creds |
     block --backend ipset --allow 203.0.113.12
   ... | share --serve :4222 --store /var/lib/quietwatch/nats | block
   ... | share --nats nats://web1.example.net:4222 | block`

func natsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "nats", Usage: "NATS server `URLS`, comma-separated (nats://host:4222,...)"},
		&cli.StringFlag{Name: "creds", Usage: "NATS credentials `FILE`: a user JWT and NKey seed (nsc), or an NKey seed alone (share keygen)"},
		&cli.StringFlag{Name: "origin", Usage: "this server's `NAME` in the fleet (default: the host name's first label)"},
		&cli.StringFlag{Name: "serve", Usage: "run an embedded NATS server with JetStream listening on `ADDR` (host:port or :port)"},
		&cli.StringFlag{Name: "store", Value: "/var/lib/quietwatch/nats", Usage: "JetStream storage `DIR` of the --serve server"},
	}
}

func newApp(e *env) *cli.App {
	flags := append(natsFlags(),
		&cli.IntFlag{Name: "level", Value: 9, Usage: "publish alerts of rule level `N` and above"},
		&cli.DurationFlag{Name: "ttl", Value: 5 * time.Minute, Usage: "lifetime of a shared ban in the fleet"},
		&cli.StringSliceFlag{Name: "allow", Usage: "never publish nor pass on a peer's ban of `CIDR` (or address; repeatable)"},
		&cli.StringFlag{Name: "allow-file", Usage: "never publish nor pass on peers' bans of the addresses and CIDRs in `FILE` (block's format)"},
		&cli.BoolFlag{Name: "allow-private", Usage: "let peers ban private ranges (10/8, 172.16/12, 192.168/16, fc00::/7)"},
		&cli.IntFlag{Name: "min-prefix4", Value: 32, Usage: "refuse a peer's IPv4 ban of a network wider than /`N`"},
		&cli.IntFlag{Name: "min-prefix6", Value: 64, Usage: "refuse a peer's IPv6 ban of a network wider than /`N`"},
		&cli.DurationFlag{Name: "max-ttl", Value: 24 * time.Hour, Usage: "clamp a peer's ban lifetime to `D`"},
		&cli.Float64Flag{Name: "peer-rate", Value: 20, Usage: "accept at most `R` bans a second from each peer (burst --peer-burst)"},
		&cli.IntFlag{Name: "peer-burst", Value: 200, Usage: "burst of --peer-rate"},
		&cli.IntFlag{Name: "max-peer-bans", Value: 10000, Usage: "at most `N` live peer bans at once"},
		&cli.IntFlag{Name: "quorum", Value: 1, Usage: "pass on a peer's ban once `K` distinct peers reported the address"},
		&cli.IntFlag{Name: "replicas", Usage: "replicas of the stream when share creates it (0: 3 in a cluster, else 1)"},
		&cli.IntFlag{Name: "buffer", Value: 10000, Usage: "bans waiting to be published while NATS is away (the oldest go first)"},
		&cli.DurationFlag{Name: "republish", Usage: "publish the same address again at most every `D` (default: --ttl/10, at least 1s)"},
		&cli.StringFlag{Name: "metrics-file", Usage: "write Prometheus metrics to `PATH` (*.prom, for node_exporter's textfile collector) every 5 s and at exit"},
	)
	return &cli.App{
		Name:            "share",
		Usage:           "share bans with the fleet over NATS JetStream",
		UsageText:       usageText,
		Description:     description,
		Flags:           flags,
		HideHelpCommand: true,
		Action:          func(c *cli.Context) error { return runFilter(c, e) },
		Commands: []*cli.Command{
			{Name: "publish", Usage: "pass events through and publish each to the fleet (on qw.event.<origin>)",
				Flags:  natsFlags(),
				Action: func(c *cli.Context) error { return runPublish(c, e) }},
			{Name: "subscribe", Usage: "write every event published by the fleet to stdout",
				Flags:  natsFlags(),
				Action: func(c *cli.Context) error { return runSubscribe(c, e) }},
			{Name: "keygen", Usage: "write a new NKey user seed to FILE (mode 0600) and print its public key, for the server's configuration",
				ArgsUsage: "FILE",
				Action:    func(c *cli.Context) error { return runKeygen(c) }},
		},
	}
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
