package record

// Alert is the record correlate writes: the event it was given, unchanged,
// plus the rule that fired. Readers (notify, block) decode into it; a writer
// appends Rule, ID, PreviousOutput and SrcPrefix to the event's raw bytes with
// AppendField so foreign fields survive.
type Alert struct {
	Event
	Rule           *Rule    `json:"rule,omitempty"`
	ID             string   `json:"id,omitempty"`
	PreviousOutput []string `json:"previous_output,omitempty"`
	// SrcPrefix is the IPv6 network correlate counted the source as
	// ("2001:db8::/64", from --ipv6-prefix), when the alert's rule counted
	// by source and the source is IPv6; empty otherwise.
	SrcPrefix string `json:"src_prefix,omitempty"`
}

// Rule describes the rule that produced an alert.
type Rule struct {
	ID          string   `json:"id"`
	Level       int      `json:"level"`
	Description string   `json:"description"`
	Groups      []string `json:"groups,omitempty"`
	Frequency   int      `json:"frequency,omitempty"`
	Timeframe   int      `json:"timeframe,omitempty"`
	FiredTimes  int      `json:"firedtimes,omitempty"`
	// Mail is the rule's own mail option: true for alert_by_email, false
	// for no_email_alert, absent when the rule says neither (then notify's
	// level threshold alone decides).
	Mail *bool `json:"mail,omitempty"`
}
