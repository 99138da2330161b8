package block

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// instancePrefix starts the names of the abstract Unix sockets that say
// which block owns what: "@quietwatch-block/<chain>" for the iptables and
// ipset backends (abstract sockets belong to a network namespace, exactly
// the scope of its firewall), "@quietwatch-block/ipset/<set>" for the
// ipset backend's sets (named after the chain in lower case) and
// "@quietwatch-block/hosts-deny/<hash of the file's path>". The kernel
// releases them when the process dies, so a crash never leaves a stale
// lock.
const instancePrefix = "quietwatch-block/"

// instanceKeys returns the locks a block with these backends must hold.
func instanceKeys(cfg firewall.Config) []string {
	var keys []string
	chain, hd := false, false
	for _, n := range cfg.Backends {
		switch n {
		case "iptables", "ipset", "nftables": // nftables: table inet <chain lower case>
			if !chain {
				keys = append(keys, cfg.Chain)
			}
			chain = true
			if n == "ipset" {
				// The sets are named after the chain in lower case:
				// chains QUIETWATCH and quietwatch share quietwatch-v4.
				keys = append(keys, "ipset/"+firewall.SetName(cfg.Chain, false))
			}
		case "hosts-deny":
			if !hd {
				p, err := filepath.Abs(cfg.HostsDeny)
				if err != nil {
					p = cfg.HostsDeny
				}
				// The file itself: a symlink (the backend writes through
				// it) and its target are one file to lock.
				if r, err := filepath.EvalSymlinks(p); err == nil {
					p = r
				}
				sum := sha256.Sum256([]byte(p))
				keys = append(keys, "hosts-deny/"+hex.EncodeToString(sum[:12]))
			}
			hd = true
		}
	}
	return keys
}

// lockInstances takes every lock of cfg's backends, or fails with exit 75
// (another block runs) touching nothing. The locks are held until the
// process ends or cm.unlock is called.
func (cm *common) lockInstances(e *env, cfg firewall.Config) error {
	if e.lock == nil {
		return nil
	}
	for _, k := range instanceKeys(cfg) {
		// Like the state file's lock, wait a little: a block told to stop
		// (uninstall's pkill, then block flush) may not have exited yet.
		release, err := e.lock(instancePrefix + k)
		for deadline := time.Now().Add(e.stateWait); err != nil && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			release, err = e.lock(instancePrefix + k)
		}
		if err != nil {
			cm.unlock()
			what := "chain " + cfg.Chain
			switch {
			case strings.HasPrefix(k, "ipset/"):
				what = "ipset set " + strings.TrimPrefix(k, "ipset/")
			case k != cfg.Chain:
				what = "hosts.deny file " + cfg.HostsDeny
			}
			return exitcode.New(exitcode.TempFail, fmt.Errorf("another block is running on %s in this network namespace (it holds @%s%s): stop it first; nothing was changed: %w", what, instancePrefix, k, err))
		}
		cm.releases = append(cm.releases, release)
	}
	return nil
}

func (cm *common) unlock() {
	for _, r := range cm.releases {
		r()
	}
	cm.releases = nil
}

// manage sets up what a Manager that reconciles needs from block: where it
// reports, how often it checks the backends, and whether it adopts.
func (e *env) manage(m *ban.Manager, st *stateStore, d command.Diag) {
	m.SetReport(func(s string) { d.Printf("%s", s) })
	m.SetVerifyEvery(e.verifyEvery)
	switch {
	case st.adopt != "":
		m.AdoptUnknown(st.adopt)
	case st.path == "":
		m.AdoptUnknown("--state '' keeps no state")
	}
}
