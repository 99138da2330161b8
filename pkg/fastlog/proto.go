package fastlog

// protoNames maps IP protocol numbers to the names EVE writes (Suricata's
// known_proto table) for the protocols an IDS on a web server meets. A
// fast.log written without /etc/protocols says {PROTO:006}; EVE says TCP.
var protoNames = map[int]string{
	0: "HOPOPT", 1: "ICMP", 2: "IGMP", 4: "IPv4", 6: "TCP", 17: "UDP", 41: "IPv6",
	43: "IPv6-Route", 44: "IPv6-Frag", 46: "RSVP", 47: "GRE", 50: "ESP", 51: "AH",
	58: "IPv6-ICMP", 59: "IPv6-NoNxt", 60: "IPv6-Opts", 88: "EIGRP", 89: "OSPF",
	103: "PIM", 112: "VRRP", 115: "L2TP", 132: "SCTP", 136: "UDPLite",
}

// Snort 3 writes packet types rather than IP protocols for some alerts.
var extraNames = []string{"IP", "ARP", "ETH", "PDU", "FILE", "USER"}

// knownNames lists every canonical name once, for case-insensitive lookup:
// Snort 2 writes IPV6-ICMP where Suricata writes IPv6-ICMP.
var knownNames = func() []string {
	var names []string
	for _, n := range protoNames {
		names = append(names, n)
	}
	return append(names, extraNames...)
}()

// canonicalProto returns the EVE spelling of the protocol written between
// the braces, and whether it was known. {PROTO:NNN} gives the protocol's
// name when it has one, else the three-digit number as EVE writes it.
func canonicalProto(b []byte) (string, bool) {
	switch string(b) { // the common cases without a loop
	case "TCP":
		return "TCP", true
	case "UDP":
		return "UDP", true
	case "ICMP":
		return "ICMP", true
	case "IPv6-ICMP", "IPV6-ICMP":
		return "IPv6-ICMP", true
	}
	if len(b) > 6 && string(b[:6]) == "PROTO:" && allDigits(b[6:]) && len(b) <= 9 {
		n := 0
		for _, c := range b[6:] {
			n = n*10 + int(c-'0')
		}
		if n > 255 {
			return "", false
		}
		if name, ok := protoNames[n]; ok {
			return name, true
		}
		return "", false // the caller writes the number itself
	}
	for _, name := range knownNames {
		if equalFold(b, name) {
			return name, true
		}
	}
	return "", false
}

// protoNumber returns the zero-padded number of a {PROTO:NNN} the table
// does not name, as EVE writes it ("255").
func protoNumber(b []byte) ([]byte, bool) {
	if len(b) > 6 && string(b[:6]) == "PROTO:" && allDigits(b[6:]) {
		return b[6:], true
	}
	return nil, false
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if 'a' <= d && d <= 'z' {
			d -= 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// portProto reports whether the protocol's two numbers are ports (EVE
// writes src_port/dest_port only for these).
func portProto(p string) bool { return p == "TCP" || p == "UDP" || p == "SCTP" }

// icmpProto reports whether the protocol's two numbers are ICMP type and code.
func icmpProto(p string) bool { return p == "ICMP" || p == "IPv6-ICMP" }
