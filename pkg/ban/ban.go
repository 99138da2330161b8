// Package ban decides who is banned and for how long: it turns alerts into
// bans on firewall backends, restarts and escalates ban timers, lifts
// expired bans, keeps its bookkeeping in a Store and refuses to ban what
// must never be banned (the allow list, this host, special addresses).
// Time is always an argument (now), so timers are tested without waiting.
package ban

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quietwatch/quietwatch/pkg/firewall"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// Ban is one live ban.
type Ban struct {
	Net      netip.Prefix // the network banned: one address (/32, /128) or an IPv6 attacker's /64 or so
	Until    time.Time
	Timeout  time.Duration // the timeout Until was computed with
	Offense  int           // 1 for a first ban, 2 for the next one, ...
	Backends []string      // the backends that hold the ban
	// Pending are the backends that failed to add the ban: the add is
	// retried with the next alert for the address and by Reap.
	Pending []string
	AlertID string // the alert that last added or extended the ban
	RuleID  string
	// Reason is "manual" for a ban placed by an admin (block ban) until an
	// alert extends it; "" for a ban from an alert.
	Reason string
}

// Offense is what is remembered of an address that has been banned.
type Offense struct {
	Count int       // how many times it has been banned
	Ended time.Time // when its last ban ended; zero while it is banned
}

// Store keeps bans and offense counts across restarts.
type Store interface {
	// Load returns the bans and the offense counts.
	Load() ([]Ban, map[netip.Prefix]Offense, error)
	// Save writes bans (replacing those with the same address), deletes
	// the bans of del and sets offense counts, in one transaction.
	Save(put []Ban, del []netip.Prefix, offenses map[netip.Prefix]Offense) error
	// Forget deletes the offense counts of addrs.
	Forget(addrs []netip.Prefix) error
}

// Policy says what to ban and for how long.
type Policy struct {
	// MinLevel is the lowest rule level that bans.
	MinLevel int
	// Timeout is the length of a first ban.
	Timeout time.Duration
	// Repeat are the lengths of the second, third, ... ban of one address;
	// the last is used for every later one. Empty: Timeout for all.
	Repeat []time.Duration
	// Allow are networks that are never banned.
	Allow []netip.Prefix
	// IPv6Prefix is the length of the network an IPv6 source is banned
	// as (block --ipv6-prefix, 48 to 128); 0: 128, each address alone.
	IPv6Prefix int
}

// ForgetAfter returns how long after the end of an address's last ban its
// offense count is forgotten: 24 hours, or twice the longest ban length if
// that is longer.
func (p Policy) ForgetAfter() time.Duration {
	longest := p.Timeout
	for _, d := range p.Repeat {
		longest = max(longest, d)
	}
	return max(24*time.Hour, 2*longest)
}

// TimeoutFor returns the ban length for the offense-th ban of an address.
func (p Policy) TimeoutFor(offense int) time.Duration {
	if offense <= 1 || len(p.Repeat) == 0 {
		return p.Timeout
	}
	return p.Repeat[min(offense-2, len(p.Repeat)-1)]
}

// Manager holds the live bans and applies every change to the backends and
// the store. It is not safe for concurrent use: block calls it from one
// loop.
type Manager struct {
	policy   Policy
	own      map[netip.Addr]bool
	backends []firewall.Backend
	names    []string
	store    Store
	bans     map[netip.Prefix]*Ban
	offenses map[netip.Prefix]Offense
	// nextForget is when the first offense count is due to be forgotten
	// (zero: none is).
	nextForget time.Time
	// retryAt is when Reap next retries pending adds, retryDelay the wait
	// after that one if it fails too.
	retryAt    time.Time
	retryDelay time.Duration

	// report receives what the Manager noticed and did of its own accord
	// (repairs, adoptions), one line each.
	report func(string)
	// adopt, when set, says why bans found in the backends are adopted
	// at Reconcile although the store holds bans.
	adopt string
	// verifyEvery is the wait between two checks of the backends (Repair)
	// by Reap; 0: none.
	verifyEvery time.Duration
	// verifiedAt is when the backends were last checked, verifyCost how
	// long that took (checks are spaced at least ten times that apart),
	// verifyAt when Reap checks next.
	verifiedAt, verifyAt time.Time
	verifyCost           time.Duration
	// unhealthy are the backends whose last check failed: they are not
	// claimed for new bans until one succeeds.
	unhealthy map[string]bool
	// loaded is how many bans (live or ended) the store held at the last
	// load.
	loaded int
}

// VerifyEvery is how often block checks by default that the backends
// still enforce its bans.
const VerifyEvery = 5 * time.Second

// DefaultAdoptTimeout is the length given to an adopted ban that has no
// timeout of its own when the Policy has none (subcommands).
const DefaultAdoptTimeout = 5 * time.Minute

// SetReport sets where the Manager says what it noticed and fixed on its
// own (a backend that lost bans, bans adopted or removed at start), one
// line each without a program prefix.
func (m *Manager) SetReport(f func(string)) { m.report = f }

func (m *Manager) say(format string, args ...any) {
	if m.report != nil {
		m.report(fmt.Sprintf(format, args...))
	}
}

// SetVerifyEvery sets how often Reap checks that the backends still hold
// every live ban and what they need to enforce it, putting back what is
// missing (0: never; the check after a batch of alerts is kept).
func (m *Manager) SetVerifyEvery(d time.Duration) {
	m.verifyEvery = d
	if !m.verifiedAt.IsZero() {
		m.verifyAt = m.verifiedAt.Add(max(d, 10*m.verifyCost))
	}
}

// AdoptUnknown makes Reconcile adopt the bans it finds in the backends and
// not in the store, for reason (the state file was lost or damaged),
// instead of removing them.
func (m *Manager) AdoptUnknown(reason string) { m.adopt = reason }

// RetryDelay is the wait before a backend's failed add is retried by Reap;
// it doubles with every failed retry, up to MaxRetryDelay.
const (
	RetryDelay    = 5 * time.Second
	MaxRetryDelay = 5 * time.Minute
)

// NewManager returns a Manager with no bans; call Reconcile to load the
// store and bring the backends in line with it.
func NewManager(p Policy, backends []firewall.Backend, store Store) *Manager {
	m := &Manager{policy: p, backends: backends, store: store, own: map[netip.Addr]bool{},
		bans: map[netip.Prefix]*Ban{}, offenses: map[netip.Prefix]Offense{}, unhealthy: map[string]bool{}}
	for _, b := range backends {
		m.names = append(m.names, b.Name())
	}
	return m
}

// SetOwn replaces the host's own addresses (read at start and on SIGHUP).
func (m *Manager) SetOwn(addrs []netip.Addr) {
	m.own = map[netip.Addr]bool{}
	for _, a := range addrs {
		m.own[a.Unmap().WithZone("")] = true
	}
}

// SetAllow replaces the allow list.
func (m *Manager) SetAllow(allow []netip.Prefix) { m.policy.Allow = allow }

// Len returns the number of live bans.
func (m *Manager) Len() int { return len(m.bans) }

// Bans returns the live bans, ordered by address.
func (m *Manager) Bans() []Ban {
	out := make([]Ban, 0, len(m.bans))
	for _, b := range m.bans {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(x, y Ban) int { return firewall.ComparePrefix(x.Net, y.Net) })
	return out
}

// Offense returns how many times the network p has been banned.
func (m *Manager) Offense(p netip.Prefix) int { return m.offenses[p].Count }

// ParseAddr parses an address from input: a plain IPv4 or IPv6 address
// (no zone, no prefix, no port), IPv4-mapped IPv6 folded to IPv4.
func ParseAddr(s string) (netip.Addr, bool) {
	if len(s) > 64 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// refusalNet returns why the network p must not be banned, or "": for a
// single address, refusal's reason; for a wider network, that of its first
// address, or "own-address" or "allowlisted" if it holds such an address.
func (m *Manager) refusalNet(p netip.Prefix) string {
	if r := m.refusal(p.Addr()); r != "" || p.IsSingleIP() {
		return r
	}
	return m.vetoed(p)
}

// refusal returns why addr must not be banned, or "".
func (m *Manager) refusal(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	case m.own[a]:
		return "own-address"
	}
	for _, p := range m.policy.Allow {
		if p.Contains(a) {
			return "allowlisted"
		}
	}
	return ""
}

// judge returns the network to ban for alert, or the reason not to (skip).
// An IPv6 source is banned as its network (PrefixFor); when that network
// holds an own or allow-listed address, only the source's own /128 is, and
// veto says why ("prefix-own-address", "prefix-allowlisted").
func (m *Manager) judge(a *record.Alert) (p netip.Prefix, skip, veto string) {
	switch {
	case a.Rule == nil:
		return netip.Prefix{}, "no-rule", ""
	case a.Rule.Level < m.policy.MinLevel:
		return netip.Prefix{}, "below-level", ""
	case a.SrcIP == "":
		return netip.Prefix{}, "no-source", ""
	}
	addr, ok := ParseAddr(a.SrcIP)
	if !ok {
		return netip.Prefix{}, "invalid-ip", ""
	}
	if r := m.refusal(addr); r != "" {
		return Single(addr), r, ""
	}
	p = PrefixFor(addr, a.SrcPrefix, m.policy.IPv6Prefix)
	if v := m.vetoed(p); v != "" {
		return Single(addr), "", "prefix-" + v
	}
	return p, "", ""
}

// Stamp formats t as decision timestamps are written.
func Stamp(t time.Time) string { return t.Format(record.DecisionTimeLayout) }

func (m *Manager) decision(now time.Time, action string, b *Ban, reason string) record.Decision {
	return record.Decision{Timestamp: Stamp(now), Ban: record.Ban{
		Action: action, IP: firewall.PrefixText(b.Net), Until: Stamp(b.Until),
		TimeoutS: int64(b.Timeout / time.Second), Offense: b.Offense,
		Backends: b.Backends, Pending: b.Pending, AlertID: b.AlertID, RuleID: b.RuleID, Reason: reason,
	}}
}

func entry(now time.Time, b *Ban) firewall.Entry {
	return firewall.Entry{Net: b.Net, TTL: b.Until.Sub(now)}
}

// Handle decides on a batch of alerts at now: one decision per alert (add,
// extend or skip, in input order), applied to every backend (a batch is
// one call per backend) and then saved. A backend error is returned after
// the batch was applied everywhere else and saved; the decisions stand,
// list only the backends that took the ban and name the others as
// pending. A backend that failed to add a ban gets the add again with the
// next alert for the address (instead of an extend) and from Reap.
func (m *Manager) Handle(now time.Time, alerts []*record.Alert) ([]record.Decision, error) {
	out := make([]record.Decision, 0, len(alerts))
	var adds, extends []netip.Prefix
	changed := map[netip.Prefix]bool{}
	offenses := map[netip.Prefix]Offense{}
	type act struct {
		i    int // decision index
		addr netip.Prefix
	}
	var acted []act // decisions whose backends are filled in last
	for _, al := range alerts {
		addr, reason, veto := m.judge(al)
		if reason != "" {
			d := record.Decision{Timestamp: Stamp(now), Ban: record.Ban{Action: "skip", IP: clean(al.SrcIP), AlertID: clean(al.ID), Reason: reason}}
			if al.Rule != nil {
				d.Ban.RuleID = clean(al.Rule.ID)
			}
			out = append(out, d)
			continue
		}
		if b := m.bans[addr]; b != nil {
			b.Until = now.Add(b.Timeout)
			b.AlertID, b.RuleID, b.Reason = clean(al.ID), clean(al.Rule.ID), ""
			if !changed[addr] {
				extends = append(extends, addr)
			}
			changed[addr] = true
			acted = append(acted, act{len(out), addr})
			out = append(out, m.decision(now, "extend", b, veto))
			continue
		}
		off := m.offenses[addr].Count + 1
		m.offenses[addr] = Offense{Count: off}
		offenses[addr] = Offense{Count: off}
		t := m.policy.TimeoutFor(off)
		b := &Ban{Net: addr, Until: now.Add(t), Timeout: t, Offense: off, AlertID: clean(al.ID), RuleID: clean(al.Rule.ID)}
		m.bans[addr] = b
		changed[addr] = true
		adds = append(adds, addr)
		acted = append(acted, act{len(out), addr})
		out = append(out, m.decision(now, "add", b, veto))
	}
	// TTLs are final only now: an address added and then extended in the
	// same batch is added once, with its last Until. extends holds only
	// bans that were live before this batch (an add marks its address
	// changed, so a later repeat is not listed).
	errs := m.apply(now, adds, extends)
	// Check what the backends hold (an extend must find its rule, a new
	// ban a chain that is jumped to), at most once a second and spaced by
	// ten times a check's cost; the bans are in place already, only the
	// decisions wait.
	if len(acted) > 0 && !now.Before(m.verifiedAt.Add(max(time.Second, 10*m.verifyCost))) {
		if err := m.verify(now); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range acted {
		b := m.bans[a.addr]
		out[a.i].Ban.Backends, out[a.i].Ban.Pending = b.Backends, b.Pending
	}
	if len(changed) > 0 {
		put := make([]Ban, 0, len(changed))
		for a := range changed {
			put = append(put, *m.bans[a])
		}
		if err := m.store.Save(put, nil, offenses); err != nil {
			errs = append(errs, fmt.Errorf("state: %w", err))
		}
	}
	return out, errors.Join(errs...)
}

// apply puts the bans of adds and extends on every backend (one Add and
// one Extend call each) and marks which backends took them. A ban whose
// add failed on a backend is added there again when it is extended.
func (m *Manager) apply(now time.Time, adds, extends []netip.Prefix) []error {
	var errs []error
	for _, be := range m.backends {
		name := be.Name()
		add := make([]firewall.Entry, 0, len(adds))
		for _, a := range adds {
			add = append(add, entry(now, m.bans[a]))
		}
		var ext []firewall.Entry
		for _, a := range extends {
			b := m.bans[a]
			if slices.Contains(b.Pending, name) {
				add = append(add, entry(now, b)) // its add failed: retry it
			} else {
				ext = append(ext, entry(now, b))
			}
		}
		if len(add) > 0 {
			err := be.Add(add)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: add: %w", name, err))
			}
			// A backend whose last check failed is not claimed: the
			// add may be in a chain nothing jumps to.
			took := err == nil && !m.unhealthy[name]
			for _, e := range add {
				m.mark(m.bans[e.Net], name, took)
			}
			if !took {
				m.scheduleRetry(now)
			}
		}
		if len(ext) > 0 {
			if err := be.Extend(ext); err != nil {
				errs = append(errs, fmt.Errorf("%s: extend: %w", name, err))
			}
		}
	}
	return errs
}

// mark records whether backend name took ban b. Backends and Pending are
// rebuilt (in the order of the Manager's backends), never changed in
// place: decisions already made share them.
func (m *Manager) mark(b *Ban, name string, took bool) {
	if took && len(b.Pending) == 0 && len(b.Backends) == len(m.names)-1 && !slices.Contains(b.Backends, name) {
		// The common case: the last backend took a new ban.
		b.Backends = m.names
		return
	}
	var backends, pending []string
	for _, n := range m.names {
		in, pend := slices.Contains(b.Backends, n), slices.Contains(b.Pending, n)
		if n == name {
			in = in || took
			pend = !in
		}
		switch {
		case in:
			backends = append(backends, n)
		case pend:
			pending = append(pending, n)
		}
	}
	b.Backends, b.Pending = backends, pending
}

// verify has every backend check that it still holds the live bans it
// took and what it needs to enforce them, and put back what is missing
// (each fix is reported). A backend whose check fails is not claimed by
// the bans it held any more (they become pending and are retried once a
// check succeeds).
func (m *Manager) verify(now time.Time) error {
	start := time.Now()
	var errs []error
	demoted := map[netip.Prefix]bool{}
	for _, be := range m.backends {
		name := be.Name()
		var ents []firewall.Entry
		for _, b := range m.Bans() {
			if b.Until.After(now) && slices.Contains(b.Backends, name) {
				ents = append(ents, entry(now, &b))
			}
		}
		notes, err := be.Repair(ents)
		for _, n := range notes {
			m.say("%s", n)
		}
		if err == nil {
			delete(m.unhealthy, name)
			if len(notes) > 0 && m.pendingOn(name) {
				// An add that failed for what was just put back (a
				// chain deleted by another tool) is retried now.
				m.retryAt, m.retryDelay = now, 0
			}
			continue
		}
		errs = append(errs, fmt.Errorf("%s: check: %w", name, err))
		m.unhealthy[name] = true
		for _, e := range ents {
			b := m.bans[e.Net]
			var backends []string
			for _, n := range b.Backends {
				if n != name {
					backends = append(backends, n)
				}
			}
			b.Backends = backends
			b.Pending = append(slices.Clip(b.Pending), name)
			demoted[e.Net] = true
		}
	}
	if len(demoted) > 0 {
		m.scheduleRetry(now)
		put := make([]Ban, 0, len(demoted))
		for a := range demoted {
			put = append(put, *m.bans[a])
		}
		if err := m.store.Save(put, nil, nil); err != nil {
			errs = append(errs, fmt.Errorf("state: %w", err))
		}
	}
	m.verifyCost = time.Since(start)
	m.verifiedAt = now
	m.verifyAt = now.Add(max(m.verifyEvery, 10*m.verifyCost))
	return errors.Join(errs...)
}

// pendingOn reports whether a live ban waits for backend name.
func (m *Manager) pendingOn(name string) bool {
	for _, b := range m.bans {
		if slices.Contains(b.Pending, name) {
			return true
		}
	}
	return false
}

// scheduleRetry makes Reap retry pending adds RetryDelay after now, unless
// a retry is already due earlier.
func (m *Manager) scheduleRetry(now time.Time) {
	if m.retryDelay == 0 {
		m.retryDelay = RetryDelay
	}
	if at := now.Add(m.retryDelay); m.retryAt.IsZero() || !m.retryAt.After(now) || at.Before(m.retryAt) {
		m.retryAt = at
	}
}

// retry adds the live bans that some backend failed to take to that
// backend (one call per backend), if a retry is due by now. A backend that
// fails again is retried after twice the wait, up to MaxRetryDelay.
func (m *Manager) retry(now time.Time) error {
	if m.retryAt.IsZero() || m.retryAt.After(now) {
		return nil
	}
	m.retryAt = time.Time{}
	var errs []error
	changed := map[netip.Prefix]bool{}
	failed := false
	for _, be := range m.backends {
		name := be.Name()
		var add []firewall.Entry
		for _, b := range m.Bans() {
			if b.Until.After(now) && slices.Contains(b.Pending, name) {
				add = append(add, entry(now, &b))
			}
		}
		if len(add) == 0 {
			continue
		}
		if m.unhealthy[name] {
			var held []firewall.Entry
			for _, b := range m.Bans() {
				if b.Until.After(now) && slices.Contains(b.Backends, name) {
					held = append(held, entry(now, &b))
				}
			}
			notes, err := be.Repair(held)
			for _, n := range notes {
				m.say("%s", n)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: check (retry): %w", name, err))
				failed = true
				continue
			}
			delete(m.unhealthy, name)
		}
		err := be.Add(add)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: add (retry): %w", name, err))
			failed = true
			continue
		}
		for _, e := range add {
			m.mark(m.bans[e.Net], name, true)
			changed[e.Net] = true
		}
	}
	if failed {
		m.retryDelay = min(2*max(m.retryDelay, RetryDelay), MaxRetryDelay)
		m.retryAt = now.Add(m.retryDelay)
	} else {
		m.retryDelay = 0
	}
	if len(changed) > 0 {
		put := make([]Ban, 0, len(changed))
		for a := range changed {
			put = append(put, *m.bans[a])
		}
		if err := m.store.Save(put, nil, nil); err != nil {
			errs = append(errs, fmt.Errorf("state: %w", err))
		}
	}
	return errors.Join(errs...)
}

// clean makes a string from input valid UTF-8 (records are UTF-8).
func clean(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// NextExpiry returns when Reap has work next (the next ban ends, or a
// failed add is retried), and false if no ban is live.
func (m *Manager) NextExpiry() (time.Time, bool) {
	var next time.Time
	pending := false
	for _, b := range m.bans {
		if next.IsZero() || b.Until.Before(next) {
			next = b.Until
		}
		pending = pending || len(b.Pending) > 0
	}
	if pending && !m.retryAt.IsZero() && m.retryAt.Before(next) {
		next = m.retryAt
	}
	if !next.IsZero() && m.verifyEvery > 0 && !m.verifyAt.IsZero() && m.verifyAt.Before(next) {
		next = m.verifyAt
	}
	return next, !next.IsZero()
}

// Reap retries the adds that failed (when a retry is due) and lifts every
// ban that has ended by now.
func (m *Manager) Reap(now time.Time) ([]record.Decision, error) {
	rerr := m.retry(now)
	if m.verifyEvery > 0 && len(m.bans) > 0 && !now.Before(m.verifyAt) {
		rerr = errors.Join(rerr, m.verify(now))
	}
	var gone []netip.Prefix
	for a, b := range m.bans {
		if !b.Until.After(now) {
			gone = append(gone, a)
		}
	}
	ds, err := m.remove(now, gone, "expired")
	return ds, errors.Join(rerr, err, m.sweep(now))
}

// NextForget returns when the next offense count is due to be forgotten
// (Reap forgets it), and false if none is.
func (m *Manager) NextForget() (time.Time, bool) { return m.nextForget, !m.nextForget.IsZero() }

// ended records that the ban of a ended at t; its offense count is
// forgotten ForgetAfter later.
func (m *Manager) ended(a netip.Prefix, t time.Time, count int) Offense {
	o := m.offenses[a]
	o.Count = max(o.Count, count)
	o.Ended = t
	m.offenses[a] = o
	if at := t.Add(m.policy.ForgetAfter()); m.nextForget.IsZero() || at.Before(m.nextForget) {
		m.nextForget = at
	}
	return o
}

// sweep forgets the offense counts of addresses whose last ban ended
// ForgetAfter or longer before now.
func (m *Manager) sweep(now time.Time) error {
	if m.nextForget.IsZero() || m.nextForget.After(now) {
		return nil
	}
	after := m.policy.ForgetAfter()
	var forget []netip.Prefix
	m.nextForget = time.Time{}
	for a, o := range m.offenses {
		if o.Ended.IsZero() || m.bans[a] != nil {
			continue
		}
		at := o.Ended.Add(after)
		if !at.After(now) {
			forget = append(forget, a)
		} else if m.nextForget.IsZero() || at.Before(m.nextForget) {
			m.nextForget = at
		}
	}
	for _, a := range forget {
		delete(m.offenses, a)
	}
	if len(forget) > 0 {
		if err := m.store.Forget(forget); err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	return nil
}

// Unban lifts the ban of addr at once and forgets its offense count (an
// admin vouched for it). It reports whether addr was banned. A single
// address that is not banned on its own lifts the network ban holding it
// (2001:db8::7 lifts 2001:db8::/64).
func (m *Manager) Unban(now time.Time, addr netip.Prefix) ([]record.Decision, bool, error) {
	_, was := m.bans[addr]
	if !was && addr.IsSingleIP() {
		for p := range m.bans {
			if p.Contains(addr.Addr()) {
				addr, was = p, true
				break
			}
		}
	}
	var errs []error
	if !was {
		// Not in our books; lift it from the backends anyway.
		for _, be := range m.backends {
			if err := be.Delete([]netip.Prefix{addr}); err != nil {
				errs = append(errs, fmt.Errorf("%s: delete: %w", be.Name(), err))
			}
		}
	}
	ds, err := m.remove(now, []netip.Prefix{addr}, "unban")
	errs = append(errs, err)
	delete(m.offenses, addr)
	if err := m.store.Forget([]netip.Prefix{addr}); err != nil {
		errs = append(errs, fmt.Errorf("state: %w", err))
	}
	return ds, was, errors.Join(errs...)
}

// Flush lifts every ban and removes everything the backends created
// (chain, sets, hosts.deny lines). Offense counts are kept.
func (m *Manager) Flush(now time.Time) ([]record.Decision, error) {
	var all []netip.Prefix
	for a := range m.bans {
		all = append(all, a)
	}
	ds, err := m.remove(now, all, "flush")
	errs := []error{err}
	for _, be := range m.backends {
		if err := be.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("%s: flush: %w", be.Name(), err))
		}
	}
	return ds, errors.Join(errs...)
}

// remove deletes the bans of addrs (those that are live) from the
// backends, the books and the store.
func (m *Manager) remove(now time.Time, addrs []netip.Prefix, reason string) ([]record.Decision, error) {
	var gone []netip.Prefix
	var out []record.Decision
	slices.SortFunc(addrs, func(x, y netip.Prefix) int {
		bx, by := m.bans[x], m.bans[y]
		if bx != nil && by != nil {
			if c := bx.Until.Compare(by.Until); c != 0 {
				return c
			}
		}
		return firewall.ComparePrefix(x, y)
	})
	offenses := map[netip.Prefix]Offense{}
	for _, a := range addrs {
		b := m.bans[a]
		if b == nil {
			continue
		}
		gone = append(gone, a)
		out = append(out, m.decision(now, "delete", b, reason))
		delete(m.bans, a)
		end := b.Until
		if now.Before(end) { // unban, flush
			end = now
		}
		offenses[a] = m.ended(a, end, b.Offense)
	}
	if len(gone) == 0 {
		return nil, nil
	}
	var errs []error
	for _, be := range m.backends {
		if err := be.Delete(gone); err != nil {
			errs = append(errs, fmt.Errorf("%s: delete: %w", be.Name(), err))
		}
	}
	if err := m.store.Save(nil, gone, offenses); err != nil {
		errs = append(errs, fmt.Errorf("state: %w", err))
	}
	return out, errors.Join(errs...)
}

// Reconcile loads the store and makes the backends hold exactly its live
// bans: expired bans are lifted (a delete decision each), live ones
// re-added with the time they have left, and whatever else the backends
// hold in what is theirs (unknown rules in our chain, stray set members)
// removed, with one reported line saying how many and why.
//
// Bans found in the backends are adopted instead when the store holds no
// ban at all (a new or empty state file: removing them would silently
// lift every ban) or AdoptUnknown was called: each becomes a ban of ours
// (an add decision with reason "adopted") for the time the backend would
// still keep it, or for the policy's first timeout if the backend has no
// timeouts (iptables, hosts.deny); one reported line says how many and
// why. Addresses the policy refuses (our own, allow-listed) are not
// adopted. It returns an error if a backend cannot be brought in line.
func (m *Manager) Reconcile(now time.Time) ([]record.Decision, error) {
	out, err := m.load(now, false)
	if err != nil {
		return out, err
	}
	adopt := m.adopt
	if adopt == "" && m.loaded == 0 {
		adopt = "the state holds no bans"
	}
	// Bans that ended while block was down are lifted by Sync below, and
	// are neither unknown nor to adopt.
	ended := map[netip.Prefix]bool{}
	for _, d := range out {
		if a, ok := firewall.ParsePrefix(d.Ban.IP); ok {
			ended[a] = true
		}
	}
	ds, err := m.takeOver(now, adopt, ended)
	out = append(out, ds...)
	if err != nil {
		return out, err
	}
	live := make([]firewall.Entry, 0, len(m.bans))
	for _, b := range m.Bans() {
		live = append(live, entry(now, &b))
	}
	for _, be := range m.backends {
		if err := be.Sync(live); err != nil {
			return out, fmt.Errorf("%s: %w", be.Name(), err)
		}
	}
	// Every backend holds every live ban now: say so in the books.
	var put []Ban
	for _, b := range m.bans {
		if !slices.Equal(b.Backends, m.names) || len(b.Pending) > 0 {
			b.Backends, b.Pending = m.names, nil
			put = append(put, *b)
		}
	}
	m.retryAt, m.retryDelay = time.Time{}, 0
	m.unhealthy = map[string]bool{}
	m.verifiedAt, m.verifyAt = now, now.Add(m.verifyEvery)
	if len(put) > 0 {
		if err := m.store.Save(put, nil, nil); err != nil {
			return out, fmt.Errorf("state: %w", err)
		}
	}
	return out, nil
}

// takeOver looks at the bans the backends hold that the books do not
// know: with a reason to adopt, they become bans of ours; otherwise they
// are counted (Sync removes them). Either is reported in one line.
func (m *Manager) takeOver(now time.Time, adopt string, ended map[netip.Prefix]bool) ([]record.Decision, error) {
	type found struct {
		ttl time.Duration
		by  []string
	}
	unknown := map[netip.Prefix]*found{}
	for _, be := range m.backends {
		held, err := be.Held()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", be.Name(), err)
		}
		for _, e := range held {
			if m.bans[e.Net] != nil || ended[e.Net] {
				continue
			}
			f := unknown[e.Net]
			if f == nil {
				f = &found{}
				unknown[e.Net] = f
			}
			f.ttl = max(f.ttl, e.TTL)
			f.by = append(f.by, be.Name())
		}
	}
	if len(unknown) == 0 {
		return nil, nil
	}
	if adopt == "" {
		m.say("removed %d bans of ours that the state does not know (left by a block that stopped before saving them, or added by hand)", len(unknown))
		return nil, nil
	}
	addrs := make([]netip.Prefix, 0, len(unknown))
	for a := range unknown {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, firewall.ComparePrefix)
	full := m.policy.TimeoutFor(1)
	if full <= 0 {
		full = DefaultAdoptTimeout
	}
	var out []record.Decision
	var put []Ban
	offenses := map[netip.Prefix]Offense{}
	refused, timed := 0, 0
	for _, a := range addrs {
		f := unknown[a]
		if !a.IsValid() || a.Addr().Zone() != "" || m.refusalNet(a) != "" {
			refused++
			continue
		}
		t := full
		if f.ttl > 0 {
			// The kernel's timeout has a second's margin over the ban.
			t = max(f.ttl-time.Second, time.Second)
			timed++
		}
		count := max(m.offenses[a].Count, 1)
		m.offenses[a] = Offense{Count: count}
		offenses[a] = m.offenses[a]
		b := &Ban{Net: a, Until: now.Add(t), Timeout: t, Offense: count, Backends: m.names}
		m.bans[a] = b
		put = append(put, *b)
		out = append(out, m.decision(now, "add", b, "adopted"))
	}
	msg := fmt.Sprintf("adopted %d bans found in the firewall, as %s", len(put), adopt)
	switch {
	case timed == len(put):
		msg += " (each for the time its kernel timeout had left)"
	case timed == 0:
		msg += fmt.Sprintf(" (they have no timeout of their own: each for %s)", full)
	default:
		msg += fmt.Sprintf(" (%d for the time their kernel timeout had left, %d with none of their own for %s)", timed, len(put)-timed, full)
	}
	if refused > 0 {
		msg += fmt.Sprintf("; %d more removed (addresses never banned: own, allow-listed or special)", refused)
	}
	m.say("%s", msg)
	if len(put) > 0 {
		if err := m.store.Save(put, nil, offenses); err != nil {
			return out, fmt.Errorf("state: %w", err)
		}
	}
	return out, nil
}

// LiftRefused lifts every live ban the policy now refuses (an address that
// became this host's own, or was allow-listed, at a reload): one delete
// decision each, with the reason a new ban would be skipped for.
func (m *Manager) LiftRefused(now time.Time) ([]record.Decision, error) {
	byReason := map[string][]netip.Prefix{}
	for a := range m.bans {
		if r := m.refusalNet(a); r != "" {
			byReason[r] = append(byReason[r], a)
		}
	}
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	var out []record.Decision
	var errs []error
	for _, r := range reasons {
		ds, err := m.remove(now, byReason[r], r)
		out = append(out, ds...)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// Peek reads the store into the books and changes nothing anywhere.
func (m *Manager) Peek() error {
	bans, offenses, err := m.store.Load()
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	m.bans = map[netip.Prefix]*Ban{}
	for i := range bans {
		m.bans[bans[i].Net] = &bans[i]
	}
	m.offenses = offenses
	return nil
}

// Load reads the store without touching the backends, except that bans
// expired by now are lifted (delete decisions, removed from the backends
// and the store).
func (m *Manager) Load(now time.Time) ([]record.Decision, error) { return m.load(now, true) }

// load reads the store; expired bans are deleted from the backends only if
// lift is set (Reconcile's Sync removes them anyway).
func (m *Manager) load(now time.Time, lift bool) ([]record.Decision, error) {
	bans, offenses, err := m.store.Load()
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	m.loaded = len(bans)
	m.bans = map[netip.Prefix]*Ban{}
	m.offenses = offenses
	if m.offenses == nil {
		m.offenses = map[netip.Prefix]Offense{}
	}
	m.nextForget = time.Time{}
	var expired []netip.Prefix
	var out []record.Decision
	for i := range bans {
		b := &bans[i]
		m.bans[b.Net] = b
		if !b.Until.After(now) {
			expired = append(expired, b.Net)
		}
	}
	slices.SortFunc(expired, func(x, y netip.Prefix) int { return m.bans[x].Until.Compare(m.bans[y].Until) })
	ended := map[netip.Prefix]Offense{}
	for _, a := range expired {
		b := m.bans[a]
		out = append(out, m.decision(now, "delete", b, "expired"))
		delete(m.bans, a)
		ended[a] = m.ended(a, b.Until, b.Offense)
	}
	for a, o := range m.offenses {
		switch {
		case m.bans[a] != nil || ended[a].Count > 0:
		case o.Ended.IsZero():
			// Not banned and no end time (a state file from before end
			// times were kept): count from now.
			ended[a] = m.ended(a, now, 0)
		default:
			m.ended(a, o.Ended, 0) // schedules it
		}
	}
	var errs []error
	if len(expired) > 0 && lift {
		for _, be := range m.backends {
			if err := be.Delete(expired); err != nil {
				errs = append(errs, fmt.Errorf("%s: delete: %w", be.Name(), err))
			}
		}
	}
	if len(expired) > 0 || len(ended) > 0 {
		if err := m.store.Save(nil, expired, ended); err != nil {
			errs = append(errs, fmt.Errorf("state: %w", err))
		}
	}
	errs = append(errs, m.sweep(now))
	return out, errors.Join(errs...)
}

// ARLine returns d as a line of OSSEC's active-responses.log (without the
// newline), or "" for actions OSSEC does not log (extend, skip):
// "<date(1)> <program> add|delete - <ip> <alert id> <rule id>".
func ARLine(d record.Decision, now time.Time, program string) string {
	if d.Ban.Action != "add" && d.Ban.Action != "delete" {
		return ""
	}
	var b strings.Builder
	b.WriteString(now.Format("Mon Jan _2 15:04:05 MST 2006"))
	b.WriteString(" " + program + " " + d.Ban.Action + " - " + d.Ban.IP)
	b.WriteString(" " + field(d.Ban.AlertID) + " " + field(d.Ban.RuleID))
	return b.String()
}

// field makes an id from input safe as one space-separated field: "-" when
// empty, blanks and control characters replaced by '_'.
func field(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError {
			return '_'
		}
		return r
	}, s)
}
