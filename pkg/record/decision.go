package record

// Decision is the record block writes: one per ban added, extended,
// deleted or refused.
type Decision struct {
	Timestamp string `json:"timestamp"`
	Ban       Ban    `json:"ban"`
}

// Ban describes one ban action. The same object, with Action "add" or
// "extend", is what block's state file keeps for each live ban.
type Ban struct {
	// Action is add, extend, delete or skip.
	Action string `json:"action"`
	// IP is what is banned in canonical text: an address, or a network
	// ("2001:db8::/64") for an IPv6 source banned by network; for a skip
	// it is the src_ip exactly as the alert gave it (possibly not an
	// address at all).
	IP string `json:"ip,omitempty"`
	// Until is when the ban ends (the timestamp layout of events).
	Until    string `json:"until,omitempty"`
	TimeoutS int64  `json:"timeout_s,omitempty"`
	Offense  int    `json:"offense,omitempty"`
	// Backends lists the backends that hold the ban.
	Backends []string `json:"backends,omitempty"`
	// Pending lists the backends that failed to take the ban; block
	// retries them (with the next alert for the address, and from the
	// reaper) until they take it.
	Pending []string `json:"pending,omitempty"`
	AlertID string   `json:"alert_id,omitempty"`
	RuleID  string   `json:"rule_id,omitempty"`
	// Reason says why a ban was skipped (allowlisted, below-level,
	// no-source, invalid-ip, own-address, loopback, ...) or deleted
	// (expired, unban, flush); "manual" on an add or extend says an admin
	// placed it (block ban).
	Reason string `json:"reason,omitempty"`
}

// DecisionTimeLayout is the layout of a decision's timestamps, the one of
// events (Suricata's EVE layout).
const DecisionTimeLayout = TimeLayout

// BanAlert is the part of an alert block uses: decoding into it ignores
// every other field, so a user's filter that changed the type of a field
// block never reads (src_port as a string, say) does not lose the alert.
type BanAlert struct {
	SrcIP     string        `json:"src_ip"`
	SrcPrefix string        `json:"src_prefix"`
	ID        string        `json:"id"`
	Rule      *BanAlertRule `json:"rule"`
}

// BanAlertRule is the part of an alert's rule block uses.
type BanAlertRule struct {
	ID    string `json:"id"`
	Level int    `json:"level"`
}

// Alert returns a as an Alert holding only the fields block uses.
func (a *BanAlert) Alert() *Alert {
	out := &Alert{Event: Event{SrcIP: a.SrcIP}, ID: a.ID, SrcPrefix: a.SrcPrefix}
	if a.Rule != nil {
		out.Rule = &Rule{ID: a.Rule.ID, Level: a.Rule.Level}
	}
	return out
}
