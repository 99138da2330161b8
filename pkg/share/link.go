package share

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quietwatch/quietwatch/pkg/fleet"
)

// link is share's connection to the fleet: a NATS connection that
// reconnects for ever, the JetStream stream of live bans, and the resync
// signal raised on every (re)connect.
type link struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	diag     *diags
	replicas int
	maxTTL   time.Duration
	resync   chan struct{}
	wake     chan struct{}

	mu         sync.Mutex
	haveStream bool
	started    time.Time
}

// publishable reports whether publishing makes sense: once the stream is
// known to exist, or after a grace period in which it could not be looked
// up (a publish to a stream subject that no stream takes yet is not refused
// while other servers listen on it: it would wait for its acknowledgement
// to time out before being stored, though peers get it live either way).
func (l *link) publishable() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.haveStream || time.Since(l.started) > 2*time.Second
}

type linkConfig struct {
	urls     string
	creds    string
	name     string
	replicas int
	maxTTL   time.Duration
	// extra options (an in-process server).
	opts []nats.Option
}

func dial(cfg linkConfig, d *diags) (*link, error) {
	l := &link{diag: d, replicas: cfg.replicas, maxTTL: cfg.maxTTL, resync: make(chan struct{}, 1), wake: make(chan struct{}, 1), started: time.Now()}
	opts := []nats.Option{
		nats.Name(cfg.name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(time.Second),
		// A cut network is noticed within about 3 s; a dead server at once.
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(*nats.Conn) { l.connected() }),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			d.printf("nats: reconnected to %s", nc.ConnectedUrlRedacted())
			l.connected()
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			d.limited("nats-connect", "nats: connect: %v (retrying; local bans go on)", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				d.printf("nats: disconnected: %v (local bans go on; publishing resumes on reconnect)", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject + ": "
			}
			d.limited("nats-async", "nats: %s%v", subj, err)
		}),
	}
	if cfg.creds != "" {
		o, err := credsOption(cfg.creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	opts = append(opts, cfg.opts...)
	nc, err := nats.Connect(cfg.urls, opts...)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(2*time.Second))
	if err != nil {
		nc.Close()
		return nil, err
	}
	l.nc, l.js = nc, js // nats.go calls the connect handler once connected
	return l, nil
}

func (l *link) connected() {
	select {
	case l.resync <- struct{}{}:
	default:
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *link) close() { l.nc.Close() }

// ensureStream creates the stream of live bans when the server has none.
// An existing stream is used as it is (an admin may have tuned it).
func (l *link) ensureStream(ctx context.Context) error {
	l.mu.Lock()
	done := l.haveStream
	l.mu.Unlock()
	if done {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := l.js.Stream(ctx, fleet.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		err = l.createStream(ctx)
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.haveStream = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

func (l *link) createStream(ctx context.Context) error {
	maxAge := l.maxTTL
	if maxAge < time.Minute {
		maxAge = time.Minute
	}
	cfg := jetstream.StreamConfig{
		Name:              fleet.Stream,
		Description:       "quietwatch: live bans shared by the fleet (one per origin and address)",
		Subjects:          []string{fleet.BanSubjects},
		MaxMsgsPerSubject: 1,
		AllowMsgTTL:       true,
		MaxAge:            maxAge,
		Duplicates:        min(2*time.Minute, maxAge),
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		Replicas:          l.replicas,
	}
	auto := cfg.Replicas <= 0
	if auto {
		cfg.Replicas = 1
		if l.nc.ConnectedClusterName() != "" {
			cfg.Replicas = 3
		}
	}
	_, err := l.js.CreateStream(ctx, cfg)
	if err != nil && auto && cfg.Replicas > 1 && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// A cluster of fewer than three servers.
		cfg.Replicas = 1
		_, err = l.js.CreateStream(ctx, cfg)
	}
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil // another server made it first
	}
	if err != nil {
		return fmt.Errorf("create stream %s: %w", fleet.Stream, err)
	}
	return nil
}

// catchUp feeds handle the last message of every ban subject in the
// stream: the bans that were shared while this server was away. Expired
// messages are gone from the stream (per-message TTL); handle checks the
// times again.
func (l *link) catchUp(ctx context.Context, handle func(subj, ttl, exp string, data []byte, stored time.Time)) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cons, err := l.js.OrderedConsumer(cctx, fleet.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{fleet.BanSubjects},
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return 0, fmt.Errorf("catch-up: %w", err)
	}
	read := 0
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		// A batch of exactly what is pending ends as soon as it is in; the
		// context (not FetchMaxWait) bounds it, so a stop ends it at once.
		fctx, fcancel := context.WithTimeout(ctx, 2*time.Second)
		batch, err := cons.Fetch(int(min(pending, 1000)), jetstream.FetchContext(fctx))
		if err != nil {
			fcancel()
			return read, fmt.Errorf("catch-up: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			pending = md.NumPending
			h := m.Headers()
			handle(m.Subject(), h.Get(fleet.TTLHeader), h.Get(fleet.ExpiresHeader), m.Data(), md.Timestamp)
		}
		fcancel()
		read += n
		if err := batch.Error(); err != nil && !(n > 0 && errors.Is(err, context.DeadlineExceeded)) {
			return read, fmt.Errorf("catch-up: %w", err)
		}
		if n == 0 {
			return read, errors.New("catch-up: no messages while some were pending")
		}
	}
	return read, nil
}

// syncLoop provisions the stream and catches up after every (re)connect,
// retrying until it succeeds (a new stream leader takes seconds).
func (l *link) syncLoop(ctx context.Context, handle func(subj, ttl, exp string, data []byte, stored time.Time), synced func()) {
	for first := true; ; first = false {
		select {
		case <-ctx.Done():
			return
		case <-l.resync:
		}
		for {
			err := l.ensureStream(ctx)
			n := 0
			if err == nil {
				n, err = l.catchUp(ctx, handle)
			}
			if err == nil {
				if !first {
					l.diag.printf("nats: caught up with the fleet (%d live bans in its log)", n)
				}
				if synced != nil {
					synced()
				}
				break
			}
			if ctx.Err() != nil {
				return
			}
			l.diag.limited("sync", "nats: %v (retrying every second)", strings.TrimPrefix(err.Error(), "nats: "))
			select {
			case <-ctx.Done():
				return
			case <-l.resync:
			case <-time.After(time.Second):
			}
		}
	}
}

// credsOption reads --creds: a user credentials file (JWT and NKey seed,
// as nsc writes it) or a file holding only an NKey user seed (for NKey
// users listed in the server's own configuration, as in the sample
// scripts/etc/nats/auth.conf).
func credsOption(path string) (nats.Option, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	if bytes.Contains(data, []byte("BEGIN NATS USER JWT")) {
		return nats.UserCredentials(path), nil
	}
	o, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		return nil, fmt.Errorf("%s: neither a credentials file nor an NKey seed: %w", path, err)
	}
	return o, nil
}
