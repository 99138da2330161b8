package record

// Event is the record fastparse writes: one fast.log line with Suricata EVE
// field names, so jq filters written for eve.json carry over. Stages that
// read events decode into it; fields they do not know stay in the raw line.
type Event struct {
	Timestamp string      `json:"timestamp"`
	EventType string      `json:"event_type,omitempty"`
	SrcIP     string      `json:"src_ip,omitempty"`
	SrcPort   *int        `json:"src_port,omitempty"`
	DestIP    string      `json:"dest_ip,omitempty"`
	DestPort  *int        `json:"dest_port,omitempty"`
	Proto     string      `json:"proto,omitempty"`
	ICMPType  *int        `json:"icmp_type,omitempty"`
	ICMPCode  *int        `json:"icmp_code,omitempty"`
	Alert     *EventAlert `json:"alert,omitempty"`
	FullLog   string      `json:"full_log,omitempty"`
	Location  string      `json:"location,omitempty"`
}

// EventAlert is the alert object of an event, as in EVE.
type EventAlert struct {
	Action      string `json:"action"`
	FastAction  string `json:"fast_action,omitempty"` // the raw "Drop" / "wDrop" prefix of fast.log
	GID         int    `json:"gid"`
	SignatureID int    `json:"signature_id"`
	Rev         int    `json:"rev"`
	Signature   string `json:"signature"`
	Category    string `json:"category,omitempty"`
	Severity    *int   `json:"severity,omitempty"` // nil: the line gave none (0 is a priority Snort 3 writes)
}
