package firewall

import (
	"net/netip"
	"sync"
	"time"
)

// DryRun is the dry-run backend: it changes nothing outside the process
// and only remembers what it would ban, so block's decisions are the log.
type DryRun struct {
	mu   sync.Mutex
	bans memory
}

// NewDryRun returns an empty dry-run backend.
func NewDryRun() *DryRun { return &DryRun{bans: memory{}} }

// Name implements Backend.
func (*DryRun) Name() string { return "dry-run" }

// Sync implements Backend.
func (d *DryRun) Sync(entries []Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bans = memory{}
	for _, e := range entries {
		d.bans[e.Net] = e.TTL
	}
	return nil
}

// Add implements Backend.
func (d *DryRun) Add(entries []Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range entries {
		d.bans[e.Net] = e.TTL
	}
	return nil
}

// Extend implements Backend.
func (d *DryRun) Extend(entries []Entry) error { return d.Add(entries) }

// Delete implements Backend.
func (d *DryRun) Delete(addrs []netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range addrs {
		delete(d.bans, a)
	}
	return nil
}

// List implements Backend.
func (d *DryRun) List() ([]netip.Prefix, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bans.list(), nil
}

// Flush implements Backend.
func (d *DryRun) Flush() error { return d.Sync(nil) }

// Held implements Backend: a dry run holds nothing outside the process.
func (d *DryRun) Held() ([]Entry, error) { return nil, nil }

// Repair implements Backend.
func (d *DryRun) Repair(entries []Entry) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bans.repair("dry-run", entries), nil
}

// Fake is a backend for tests: it keeps bans in memory, records every call
// and fails on demand.
type Fake struct {
	mu      sync.Mutex
	name    string
	bans    memory
	calls   []string
	repairs int
	// Fail, when set, is returned by every call whose kind (sync, add,
	// extend, delete, list, flush) it is given for.
	Fail func(kind string) error
}

// NewFake returns an empty fake backend called name.
func NewFake(name string) *Fake { return &Fake{name: name, bans: memory{}} }

// Name implements Backend.
func (f *Fake) Name() string { return f.name }

func (f *Fake) call(kind string, addrs ...netip.Prefix) error {
	s := kind
	for _, a := range addrs {
		s += " " + PrefixText(a)
	}
	f.calls = append(f.calls, s)
	if f.Fail != nil {
		return f.Fail(kind)
	}
	return nil
}

func addrsOf(entries []Entry) []netip.Prefix {
	out := make([]netip.Prefix, len(entries))
	for i, e := range entries {
		out[i] = e.Net
	}
	return out
}

// Sync implements Backend.
func (f *Fake) Sync(entries []Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("sync", addrsOf(entries)...); err != nil {
		return err
	}
	f.bans = memory{}
	for _, e := range entries {
		f.bans[e.Net] = e.TTL
	}
	return nil
}

// Add implements Backend.
func (f *Fake) Add(entries []Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("add", addrsOf(entries)...); err != nil {
		return err
	}
	for _, e := range entries {
		f.bans[e.Net] = e.TTL
	}
	return nil
}

// Extend implements Backend.
func (f *Fake) Extend(entries []Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("extend", addrsOf(entries)...); err != nil {
		return err
	}
	for _, e := range entries {
		f.bans[e.Net] = e.TTL
	}
	return nil
}

// Delete implements Backend.
func (f *Fake) Delete(addrs []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("delete", addrs...); err != nil {
		return err
	}
	for _, a := range addrs {
		delete(f.bans, a)
	}
	return nil
}

// List implements Backend.
func (f *Fake) List() ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("list"); err != nil {
		return nil, err
	}
	return f.bans.list(), nil
}

// Flush implements Backend.
func (f *Fake) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("flush"); err != nil {
		return err
	}
	f.bans = memory{}
	return nil
}

// Held implements Backend: the bans with the TTLs they were last given.
func (f *Fake) Held() ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("held"); err != nil {
		return nil, err
	}
	return f.bans.held(), nil
}

// Repair implements Backend: it puts back the entries missing. Repairs are
// counted (Repairs), not listed among the calls.
func (f *Fake) Repair(entries []Entry) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.repairs++
	if f.Fail != nil {
		if err := f.Fail("repair"); err != nil {
			return nil, err
		}
	}
	return f.bans.repair(f.name, entries), nil
}

// Repairs returns how many times Repair was called.
func (f *Fake) Repairs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.repairs
}

// Lose removes the single-address bans of addrs as another program
// would, without a call.
func (f *Fake) Lose(addrs ...netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range addrs {
		delete(f.bans, Single(a))
	}
}

// Calls returns the calls made so far, one string each ("add 192.0.2.1"),
// and forgets them.
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// Has reports whether addr is banned on its own (a /32 or /128).
func (f *Fake) Has(addr netip.Addr) bool { return f.HasNet(Single(addr)) }

// HasNet reports whether the network p is banned as one ban.
func (f *Fake) HasNet(p netip.Prefix) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.bans[p]
	return ok
}

// TTL returns the TTL addr's single-address ban was last given.
func (f *Fake) TTL(addr netip.Addr) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bans[Single(addr)]
}
