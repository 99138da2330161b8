package ban

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/quietwatch/quietwatch/pkg/firewall"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// RefusedError is Manual's answer for an address that is never banned:
// Reason is the one a skip decision would give (allowlisted, own-address,
// loopback, ...).
type RefusedError struct {
	Addr   netip.Addr
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: refused: %s", e.Addr, e.Reason)
}

// Refused returns a *RefusedError if addr is never banned (the allow
// list, this host, its kind), and nil otherwise.
func (m *Manager) Refused(addr netip.Addr) error {
	if r := m.refusal(addr); r != "" {
		return &RefusedError{Addr: addr, Reason: r}
	}
	return nil
}

// Manual bans addr (that one address) at now for timeout (the policy's Timeout when 0) on an
// admin's word (block ban), with the guards of a ban from an alert: an
// address the allow list, this host or its kind forbids is refused with a
// *RefusedError and nothing changes. Otherwise it takes the same path: every
// backend, the store, one decision (add, or extend when addr is banned
// already: its timer restarts with timeout), with reason "manual". A new
// ban counts as an offense like any other, but lasts timeout, not the
// escalated length of a repeat offense. A backend error is returned after
// the others and the store were changed, as Handle does.
func (m *Manager) Manual(now time.Time, addr netip.Addr, timeout time.Duration) ([]record.Decision, error) {
	if timeout <= 0 {
		timeout = m.policy.Timeout
	}
	if err := m.Refused(addr); err != nil {
		return nil, err
	}
	action := "extend"
	var offenses map[netip.Prefix]Offense
	key := Single(addr)
	b := m.bans[key]
	if b == nil {
		action = "add"
		off := m.offenses[key].Count + 1
		m.offenses[key] = Offense{Count: off}
		offenses = map[netip.Prefix]Offense{key: {Count: off}}
		b = &Ban{Net: key, Offense: off}
		m.bans[key] = b
	}
	b.Until, b.Timeout = now.Add(timeout), timeout
	b.AlertID, b.RuleID, b.Reason = "", "", "manual"
	var errs []error
	for _, be := range m.backends {
		name := be.Name()
		e := []firewall.Entry{entry(now, b)}
		if action == "add" || slices.Contains(b.Pending, name) {
			err := be.Add(e)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: add: %w", name, err))
			}
			// As in Handle: a backend whose last check failed is not
			// claimed (the add may be in a chain nothing jumps to).
			took := err == nil && !m.unhealthy[name]
			if !took {
				m.scheduleRetry(now)
			}
			m.mark(b, name, took)
		} else if err := be.Extend(e); err != nil {
			errs = append(errs, fmt.Errorf("%s: extend: %w", name, err))
		}
	}
	// As in Handle: an extend must find its rule, a new ban a chain that
	// is jumped to (a foreign flush since the last check).
	if !now.Before(m.verifiedAt.Add(max(time.Second, 10*m.verifyCost))) {
		if err := m.verify(now); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.store.Save([]Ban{*b}, nil, offenses); err != nil {
		errs = append(errs, fmt.Errorf("state: %w", err))
	}
	return []record.Decision{m.decision(now, action, b, "manual")}, errors.Join(errs...)
}
