package block

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/allowlist"
	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// settings are what a running block was started with. block keeps them in
// its state file, so that a subcommand run while no block runs acts as the
// running one would: the same backends, chain, hosts.deny and --ar-log (a
// ban lifted from the command line is logged like any other), the same
// allow list and --timeout for block ban. Paths are absolute.
type settings struct {
	Backends  []string `json:"backends"`
	Chain     string   `json:"chain"`
	HostsDeny string   `json:"hosts_deny"`
	ARLog     string   `json:"ar_log"`
	Timeout   string   `json:"timeout"`
	Allow     []string `json:"allow,omitempty"`
	AllowFile string   `json:"allow_file,omitempty"`
}

// settingStore is a ban.Store that keeps settings (the state file; not
// an empty --state).
type settingStore interface {
	Setting(name string) ([]byte, error)
	SetSetting(name string, v []byte) error
}

const settingsKey = "block"

func abs(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// remember stores the running block's settings in the state file; a
// failure is reported and does not stop block.
func remember(c *cli.Context, store ban.Store, d command.Diag) {
	ss, ok := store.(settingStore)
	if !ok {
		return
	}
	s := settings{Backends: c.StringSlice("backend"), Chain: c.String("chain"), HostsDeny: abs(c.String("hosts-deny")),
		ARLog: abs(c.String("ar-log")), Timeout: c.Duration("timeout").String(), Allow: c.StringSlice("allow"),
		AllowFile: abs(c.String("allow-file"))}
	b, err := record.Marshal(&s)
	if err == nil {
		err = ss.SetSetting(settingsKey, b)
	}
	if err != nil {
		d.Printf("state: keeping the settings for subcommands: %v", err)
	}
}

// recall returns the settings the last block that ran on store was
// started with, and false if there are none.
func recall(store ban.Store) (settings, bool, error) {
	ss, ok := store.(settingStore)
	if !ok {
		return settings{}, false, nil
	}
	b, err := ss.Setting(settingsKey)
	if err != nil || b == nil {
		return settings{}, false, err
	}
	var s settings
	if err := record.Unmarshal(b, &s); err != nil {
		return settings{}, false, fmt.Errorf("state: settings: %s", firstLine(err.Error()))
	}
	return s, true, nil
}

// isSet reports whether the flag name was given, before or after the
// subcommand's name.
func isSet(c *cli.Context, name string) bool {
	for _, x := range c.Lineage() {
		for _, n := range x.LocalFlagNames() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// effective returns the settings a subcommand works with: each flag given
// on its command line, else the remembered value, else the flag's default.
func effective(c *cli.Context, store ban.Store) (settings, error) {
	s := settings{Backends: flagCtx(c, "backend").StringSlice("backend"), Chain: str(c, "chain"),
		HostsDeny: str(c, "hosts-deny"), ARLog: str(c, "ar-log")}
	r, ok, err := recall(store)
	if err != nil || !ok {
		return s, err
	}
	if !isSet(c, "backend") {
		s.Backends = r.Backends
	}
	if !isSet(c, "chain") {
		s.Chain = r.Chain
	}
	if !isSet(c, "hosts-deny") {
		s.HostsDeny = r.HostsDeny
	}
	if !isSet(c, "ar-log") {
		s.ARLog = r.ARLog
	}
	s.Timeout, s.Allow, s.AllowFile = r.Timeout, r.Allow, r.AllowFile
	return s, nil
}

// banPolicy is the policy of block ban without a running block: the
// remembered --timeout (5m if none) and allow list. An allow list that
// cannot be read is a configuration error (exit 78): a ban is never placed
// without the guards.
func banPolicy(s settings) (ban.Policy, error) {
	p := ban.Policy{Timeout: 5 * time.Minute}
	if s.Timeout != "" {
		d, err := time.ParseDuration(s.Timeout)
		if err != nil || d <= 0 {
			return p, exitcode.Errorf(exitcode.Config, "state: settings: timeout %q: want a positive duration", s.Timeout)
		}
		p.Timeout = d
	}
	var errs []string
	for _, a := range s.Allow {
		pr, err := allowlist.Parse(a)
		if err != nil {
			errs = append(errs, fmt.Sprintf("--allow %q: %v", a, err))
			continue
		}
		p.Allow = append(p.Allow, pr)
	}
	if s.AllowFile != "" {
		ps, ferrs := allowlist.ReadFile(s.AllowFile)
		p.Allow = append(p.Allow, ps...)
		errs = append(errs, ferrs...)
	}
	if len(errs) > 0 {
		return p, exitcode.Errorf(exitcode.Config, "allow list of the last block run: %s", errs[0])
	}
	return p, nil
}
