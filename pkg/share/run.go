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

// filterConfig is what the filter's flags ask for, checked.
type filterConfig struct {
	pol    fleet.Policy
	ttl    time.Duration
	every  time.Duration // --republish, or its default
	buffer int
}

// readFilterFlags reads and checks the filter's flags. Every problem is
// written to stderr before share gives up with exit 78.
func readFilterFlags(c *cli.Context, e *env, d *diags) (filterConfig, error) {
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
			d.printf("%s", m)
		}
		return filterConfig{}, exitcode.Reported(exitcode.Config)
	}
	every := c.Duration("republish")
	if every <= 0 {
		every = max(time.Second, ttl/10)
	}
	return filterConfig{pol: pol, ttl: ttl, every: every, buffer: buffer}, nil
}

// runFilter is share without a subcommand: stdin to stdout, this
// server's bans published and the peers' ones received, until the end of
// input (queued publishes get e.drain to go out), a signal, or a write
// failure.
func runFilter(c *cli.Context, e *env) error {
	if c.NArg() > 0 {
		return command.UsageErrorf("unexpected argument %q", c.Args().First())
	}
	d := newDiags(c.App.ErrWriter, "share", e.now)
	defer d.flush()
	cfg, err := readFilterFlags(c, e, d)
	if err != nil {
		return err
	}
	s, err := connect(c, e, d, c.Int("replicas"), cfg.pol.MaxTTL)
	if err != nil {
		return err
	}
	defer s.close()

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	out := newOutput(record.NewWriter(c.App.Writer))
	rc := newReceiver(s.origin, fleet.NewGuard(cfg.pol), 4*cfg.pol.MaxBans+1024, e.now, out, d)
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
	pub := newPublisher(s.l, cfg.buffer, e.now, d)
	pubCtx, pubCancel := context.WithCancel(context.Background())
	defer pubCancel()
	go pub.run(pubCtx, e.drain)

	sm, stopMetrics, err := startMetrics(c.String("metrics-file"), s, pub, d)
	if err != nil {
		return err
	}
	defer stopMetrics()
	rc.setMetrics(sm)
	sh := &sharer{m: sm, origin: s.origin, level: c.Int("level"), ttl: cfg.ttl, every: cfg.every, now: e.now, pub: pub, recent: map[netip.Prefix]time.Time{}}
	sh.allow.Store(&cfg.pol.Allow)
	f := &filter{c: c, e: e, d: d, out: out, rc: rc, sh: sh}
	rerr := f.pass(ctx)

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
	return endErr(rerr, ferr)
}

// startMetrics writes --metrics-file (path; "": none, and nil metrics)
// from now on; stop writes it a last time.
func startMetrics(path string, s *session, pub *publisher, d *diags) (sm *stageMetrics, stop func(), err error) {
	if path == "" {
		return nil, func() {}, nil
	}
	if err := metrics.Check(path); err != nil {
		return nil, nil, exitcode.Errorf(exitcode.Config, "--metrics-file: %w", err)
	}
	sm = newStageMetrics(func() float64 { return float64(pub.dropped.Load()) }, func() float64 {
		if s.l.nc.IsConnected() {
			return 1
		}
		return 0
	})
	end := metrics.Start(sm.reg, path, func(err error) { d.printf("--metrics-file: %v", err) })
	return sm, func() {
		if err := end(); err != nil {
			d.printf("--metrics-file: %v", err)
		}
	}, nil
}

// filter is what the filter's loop works with.
type filter struct {
	c   *cli.Context
	e   *env
	d   *diags
	out *output
	rc  *receiver
	sh  *sharer
}

// pass copies stdin to stdout (the sharer offered each local record)
// until the end of input, a signal or a failed write, and reloads on
// SIGHUP. It returns the read error, if one ended it.
func (f *filter) pass(ctx context.Context) error {
	readDone := make(chan error, 1)
	go func() { readDone <- readLoop(f.c.App.Reader, f.out, f.sh, f.d) }()
	for {
		select {
		case rerr := <-readDone:
			return rerr
		case <-ctx.Done(): // SIGTERM or SIGINT
			return nil
		case <-f.out.fail:
			return nil
		case <-f.e.Hup:
			f.reload()
		}
	}
}

// reload is SIGHUP: --allow-file and this host's addresses are read
// again; a bad allow list keeps the one in use.
func (f *filter) reload() {
	p, errs := policy(f.c, f.e)
	for _, m := range errs {
		f.d.printf("%s (allow list kept)", m)
	}
	if len(errs) == 0 {
		f.rc.setAllow(p.Allow, p.Own)
		f.sh.allow.Store(&p.Allow)
	}
	if f.e.reloaded != nil {
		f.e.reloaded()
	}
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
