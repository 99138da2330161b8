package block

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/banstate"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// Opening what a command works on: its backends (with the instance locks
// of instance.go) and the state.

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

// stateStore is the state one run works on: the store, and what opening
// it found.
type stateStore struct {
	store ban.Store
	path  string // --state; "": kept in memory
	close func() error
	// adopt, when set, says why bans found in the firewall are adopted at
	// start (the file was new, empty or damaged).
	adopt string
}

// openState opens the state file, or an in-memory store for --state ”.
// A damaged file is reported on d (the rest is rebuilt from the firewall).
func openState(path string, e *env, d command.Diag) (*stateStore, error) {
	if path == "" {
		return &stateStore{store: banstate.NewMemory(), close: func() error { return nil }}, nil
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, exitcode.New(exitcode.Config, fmt.Errorf("state: %w", err))
		}
	}
	s, err := banstate.Open(path, e.stateWait)
	if errors.Is(err, banstate.ErrLocked) {
		return nil, exitcode.New(exitcode.TempFail, fmt.Errorf("%w (list, ban and unban reach a running block through its --socket; stop it for flush and reap)", err))
	}
	if err != nil {
		return nil, err
	}
	st := &stateStore{store: s, path: path, close: s.Close}
	switch {
	case s.Damage != "":
		d.Printf("state %s: %s; the rest is rebuilt from the firewall", path, s.Damage)
		st.adopt = "the state file was damaged"
	case s.New:
		st.adopt = "the state file " + path + " is new or empty"
	}
	return st, nil
}
