package share

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/allowlist"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/fleet"
	"github.com/quietwatch/quietwatch/pkg/metrics"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// session is a connection to the fleet, with the embedded server when
// share runs one.
type session struct {
	origin string
	l      *link
	srv    *server.Server
}

func (s *session) close() {
	s.l.close()
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// origin returns --origin or the host name's first label.
func origin(c *cli.Context, e *env) (string, error) {
	o := str(c, "origin")
	if o == "" {
		h, err := e.hostname()
		if err != nil {
			return "", exitcode.Errorf(exitcode.Config, "--origin: none given and no host name: %v", err)
		}
		o = fleet.OriginFromHost(h)
	}
	if !fleet.ValidOrigin(o) {
		return "", command.UsageErrorf("--origin %q: want 1 to 64 letters, digits, '-' or '_'", o)
	}
	return o, nil
}

// connect starts the embedded server (--serve) or dials --nats.
func connect(c *cli.Context, e *env, d *diags, replicas int, maxTTL time.Duration) (*session, error) {
	o, err := origin(c, e)
	if err != nil {
		return nil, err
	}
	urls, serve, creds := str(c, "nats"), str(c, "serve"), str(c, "creds")
	switch {
	case urls == "" && serve == "":
		return nil, command.UsageErrorf("--nats or --serve: one is needed")
	case urls != "" && serve != "":
		return nil, command.UsageErrorf("--nats and --serve: give one (the others connect to the --serve server)")
	}
	if creds != "" {
		if _, err := credsOption(creds); err != nil {
			return nil, exitcode.Errorf(exitcode.Config, "--creds: %v", err)
		}
	}
	cfg := linkConfig{urls: urls, creds: creds, name: "quietwatch share " + o, replicas: replicas, maxTTL: maxTTL, opts: e.natsOpts}
	s := &session{origin: o}
	if serve != "" {
		srv, err := startServer(serve, str(c, "store"), o)
		if err != nil {
			return nil, err
		}
		s.srv = srv
		cfg.urls = srv.ClientURL()
		cfg.opts = append(cfg.opts, nats.InProcessServer(srv))
	} else {
		for _, u := range strings.Split(urls, ",") {
			if strings.TrimSpace(u) == "" {
				return nil, command.UsageErrorf("--nats %q: an empty URL", urls)
			}
		}
	}
	l, err := dial(cfg, d)
	if err != nil {
		if s.srv != nil {
			s.srv.Shutdown()
		}
		return nil, exitcode.Errorf(exitcode.Config, "--nats %q: %v", urls, err)
	}
	s.l = l
	return s, nil
}

// startServer runs a NATS server with JetStream in this process.
func startServer(addr, store, name string) (*server.Server, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, command.UsageErrorf("--serve %q: want host:port or :port", addr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 || port > 65535 {
		return nil, command.UsageErrorf("--serve %q: bad port", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	// Bind once first: the server itself only logs a failed bind.
	ln, err := net.Listen("tcp", net.JoinHostPort(host, portText))
	if err != nil {
		return nil, exitcode.Errorf(exitcode.Failure, "--serve %q: %v", addr, err)
	}
	ln.Close()
	if err := os.MkdirAll(store, 0o700); err != nil {
		return nil, exitcode.Errorf(exitcode.Config, "--store: %v", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   store,
		NoSigs:     true,
	})
	if err != nil {
		return nil, exitcode.Errorf(exitcode.Config, "--serve: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, exitcode.Errorf(exitcode.Failure, "--serve %q: the NATS server did not start", addr)
	}
	return srv, nil
}

// policy reads the guards' flags; every problem is returned.
func policy(c *cli.Context, e *env) (fleet.Policy, []string) {
	p := fleet.DefaultPolicy()
	var errs []string
	for _, a := range c.StringSlice("allow") {
		pr, err := allowlist.Parse(a)
		if err != nil {
			errs = append(errs, fmt.Sprintf("--allow %q: %v", a, err))
			continue
		}
		p.Allow = append(p.Allow, pr)
	}
	if f := c.String("allow-file"); f != "" {
		ps, ferrs := allowlist.ReadFile(f)
		p.Allow = append(p.Allow, ps...)
		errs = append(errs, ferrs...)
	}
	p.AllowPrivate = c.Bool("allow-private")
	p.MinBits4, p.MinBits6 = c.Int("min-prefix4"), c.Int("min-prefix6")
	if p.MinBits4 < 0 || p.MinBits4 > 32 {
		errs = append(errs, fmt.Sprintf("--min-prefix4 %d: want 0 to 32", p.MinBits4))
	}
	if p.MinBits6 < 0 || p.MinBits6 > 128 {
		errs = append(errs, fmt.Sprintf("--min-prefix6 %d: want 0 to 128", p.MinBits6))
	}
	p.MaxTTL = c.Duration("max-ttl")
	if p.MaxTTL < fleet.MinTTL {
		errs = append(errs, fmt.Sprintf("--max-ttl %s: want at least 1s", p.MaxTTL))
	}
	p.Rate, p.Burst = c.Float64("peer-rate"), c.Int("peer-burst")
	if p.Rate < 0 || p.Burst < 1 {
		errs = append(errs, "--peer-rate/--peer-burst: want a rate >= 0 (0: no limit) and a burst >= 1")
	}
	p.MaxBans = c.Int("max-peer-bans")
	if p.MaxBans < 1 {
		errs = append(errs, fmt.Sprintf("--max-peer-bans %d: want at least 1", p.MaxBans))
	}
	p.Quorum = c.Int("quorum")
	if p.Quorum < 1 {
		errs = append(errs, fmt.Sprintf("--quorum %d: want at least 1", p.Quorum))
	}
	if own, err := e.ownAddrs(); err == nil {
		p.Own = own
	}
	return p, errs
}

func runFilter(c *cli.Context, e *env) error {
	if c.NArg() > 0 {
		return command.UsageErrorf("unexpected argument %q", c.Args().First())
	}
	stderr := c.App.ErrWriter
	d := newDiags(stderr, "share", e.now)
	defer d.flush()
	pol, errs := policy(c, e)
	ttl := c.Duration("ttl")
	if ttl < fleet.MinTTL {
		errs = append(errs, fmt.Sprintf("--ttl %s: want at least 1s", ttl))
	}
	if ttl > pol.MaxTTL {
		errs = append(errs, fmt.Sprintf("--ttl %s: longer than --max-ttl %s", ttl, pol.MaxTTL))
	}
	buffer := c.Int("buffer")
	if buffer < 1 {
		errs = append(errs, fmt.Sprintf("--buffer %d: want at least 1", buffer))
	}
	if len(errs) > 0 {
		for _, m := range errs {
			fmt.Fprintf(stderr, "share: %s\n", m)
		}
		return exitcode.Reported(exitcode.Config)
	}
	every := c.Duration("republish")
	if every <= 0 {
		every = max(time.Second, ttl/10)
	}
	s, err := connect(c, e, d, c.Int("replicas"), pol.MaxTTL)
	if err != nil {
		return err
	}
	defer s.close()

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	out := newOutput(record.NewWriter(c.App.Writer))
	rc := newReceiver(s.origin, fleet.NewGuard(pol), 4*pol.MaxBans+1024, e.now, out, d)
	sub, err := s.l.nc.Subscribe(fleet.BanSubjects, func(m *nats.Msg) {
		rc.handle(m.Subject, m.Header.Get(fleet.TTLHeader), m.Header.Get(fleet.ExpiresHeader), m.Data, time.Time{})
	})
	if err != nil {
		return exitcode.Errorf(exitcode.Failure, "nats: subscribe: %v", err)
	}
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	if e.ready != nil {
		e.ready()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.l.syncLoop(ctx, rc.handle, e.synced) }()
	pub := newPublisher(s.l, buffer, e.now, d)
	pubCtx, pubCancel := context.WithCancel(context.Background())
	defer pubCancel()
	go pub.run(pubCtx, e.drain)

	var sm *stageMetrics
	if path := c.String("metrics-file"); path != "" {
		if err := metrics.Check(path); err != nil {
			return exitcode.Errorf(exitcode.Config, "--metrics-file: %w", err)
		}
		sm = newStageMetrics(func() float64 { return float64(pub.dropped.Load()) }, func() float64 {
			if s.l.nc.IsConnected() {
				return 1
			}
			return 0
		})
		rc.setMetrics(sm)
		stop := metrics.Start(sm.reg, path, func(err error) { d.printf("--metrics-file: %v", err) })
		defer func() {
			if err := stop(); err != nil {
				d.printf("--metrics-file: %v", err)
			}
		}()
	}
	sh := &sharer{m: sm, origin: s.origin, level: c.Int("level"), ttl: ttl, every: every, now: e.now, pub: pub, recent: map[netip.Prefix]time.Time{}}
	sh.allow.Store(&pol.Allow)
	readDone := make(chan error, 1)
	go func() { readDone <- readLoop(c.App.Reader, out, sh, d) }()
	var rerr error
wait:
	for {
		select {
		case rerr = <-readDone:
			break wait
		case <-ctx.Done(): // SIGTERM or SIGINT
			break wait
		case <-out.fail:
			break wait
		case <-e.hup:
			p, errs := policy(c, e)
			for _, m := range errs {
				d.printf("%s (allow list kept)", m)
			}
			if len(errs) == 0 {
				rc.setAllow(p.Allow, p.Own)
				sh.allow.Store(&p.Allow)
			}
			if e.reloaded != nil {
				e.reloaded()
			}
		}
	}
	ferr := out.flush()
	if rerr == nil && ctx.Err() == nil && ferr == nil {
		// End of input: give queued bans their chance to go out. Only
		// readLoop sends to pub.in, and it has ended.
		close(pub.in)
		<-pub.done
	}
	pubCancel()
	cancel()
	_ = sub.Unsubscribe()
	wg.Wait()
	if rerr != nil && !command.IsBrokenPipe(rerr) {
		return exitcode.New(exitcode.Failure, fmt.Errorf("read: %w", rerr))
	}
	if ferr != nil && !command.IsBrokenPipe(ferr) {
		return exitcode.New(exitcode.Failure, fmt.Errorf("write: %w", ferr))
	}
	return nil
}

// sharer decides which local records are published.
type sharer struct {
	m      *stageMetrics
	origin string
	level  int
	ttl    time.Duration
	every  time.Duration
	now    func() time.Time
	pub    *publisher
	// recent holds when each address was last published.
	recent map[netip.Prefix]time.Time
	// allow is --allow and --allow-file: never published either.
	allow atomic.Pointer[[]netip.Prefix]
}

func (s *sharer) consider(line []byte) {
	l, ok := fleet.ParseLocal(line)
	if !ok || l.Level < s.level {
		return
	}
	for _, a := range *s.allow.Load() {
		if a.Overlaps(l.Prefix) {
			return
		}
	}
	now := s.now()
	if last, ok := s.recent[l.Prefix]; ok && now.Sub(last) < s.every {
		return
	}
	if !record.Valid(line) {
		return // block will say what is wrong with it
	}
	if len(s.recent) >= 100000 {
		for p, t := range s.recent {
			if now.Sub(t) >= s.every {
				delete(s.recent, p)
			}
		}
		if len(s.recent) >= 100000 {
			clear(s.recent)
		}
	}
	s.recent[l.Prefix] = now
	s.m.offered()
	body := append([]byte(nil), line...)
	s.pub.offer(outgoing{subject: fleet.BanSubject(s.origin, l.Prefix), body: body, id: fleet.MsgID(s.origin, body), expires: now.Add(s.ttl)})
}

// readLoop copies stdin to stdout line by line, flushing whenever the
// input has nothing more buffered, and offers each line to the sharer
// after it is written.
func readLoop(r io.Reader, out *output, sh *sharer, d *diags) error {
	lr := record.NewReader(r, 0)
	for {
		line, err := lr.ReadLine()
		var long *record.LineTooLongError
		switch {
		case errors.As(err, &long):
			d.printf("stdin:%d: longer than %d bytes, skipped", long.Line, record.DefaultMaxLine)
			continue
		case errors.Is(err, os.ErrClosed):
			return nil
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
		if err := out.local(line, lr.Buffered() == 0); err != nil {
			return err
		}
		sh.m.record()
		sh.consider(line)
	}
}
