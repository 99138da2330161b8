package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// alertFields is the part of a record share reads.
type alertFields struct {
	SrcIP string `json:"src_ip"`
	Rule  *struct {
		Level int `json:"level"`
	} `json:"rule"`
	Fleet json.RawMessage `json:"fleet"`
}

var fleetKey = []byte(`"fleet"`)

// hasFleet reports whether the object line, decoded into a, has a
// top-level fleet key (even "fleet":null, which decodes to nothing).
func hasFleet(line []byte, a *alertFields) bool {
	if len(a.Fleet) > 0 {
		return true
	}
	if !bytes.Contains(line, fleetKey) {
		return false
	}
	var m map[string]json.RawMessage
	if err := record.Unmarshal(line, &m); err != nil {
		return true
	}
	_, ok := m["fleet"]
	return ok
}

// Local describes a record read from the local pipeline.
type Local struct {
	// Prefix is the alert's source address (a single-address prefix).
	Prefix netip.Prefix
	// Level is rule.level.
	Level int
}

// ParseLocal reports whether line is an alert of this server that may be
// shared: a JSON object with an integer rule.level, a src_ip that is an
// address and no fleet field (records from peers are never published
// again). It reads only those fields; the caller checks a line with
// record.Valid before publishing it.
func ParseLocal(line []byte) (Local, bool) {
	f, ok := scanTop(line)
	if !ok || f.fleet || !f.hasLevel || f.src == nil || !f.srcPlain {
		return Local{}, false
	}
	ip, err := netip.ParseAddr(string(f.src))
	if err != nil || ip.Zone() != "" {
		return Local{}, false
	}
	ip = ip.Unmap()
	return Local{Prefix: netip.PrefixFrom(ip, ip.BitLen()), Level: f.level}, true
}

// parseLocalDecoded is ParseLocal by a full decode (keys matched exactly,
// as ParseLocal does), to check it against.
func parseLocalDecoded(line []byte) (Local, bool) {
	var m map[string]json.RawMessage
	if err := record.Unmarshal(line, &m); err != nil {
		return Local{}, false
	}
	if _, ok := m["fleet"]; ok {
		return Local{}, false
	}
	var src string
	var rule map[string]json.RawMessage
	var level int
	if record.Unmarshal(m["src_ip"], &src) != nil || record.Unmarshal(m["rule"], &rule) != nil || rule["level"] == nil ||
		record.Unmarshal(rule["level"], &level) != nil || level > 999999999 || level < -999999999 {
		return Local{}, false
	}
	ip, err := netip.ParseAddr(src)
	if err != nil || ip.Zone() != "" {
		return Local{}, false
	}
	ip = ip.Unmap()
	return Local{Prefix: netip.PrefixFrom(ip, ip.BitLen()), Level: level}, true
}

// Peer is a ban received from another server.
type Peer struct {
	Origin string
	Prefix netip.Prefix
	TTL    time.Duration
	Level  int
	// Body is the record as the peer sent it.
	Body []byte
}

// Decode checks a ban message: its subject, its Nats-TTL header and its
// body, which must be one alert record on one line whose src_ip is the
// subject's address and which carries no fleet field.
func Decode(subject, ttl string, body []byte) (Peer, error) {
	origin, p, err := ParseBanSubject(subject)
	if err != nil {
		return Peer{}, err
	}
	d, err := ParseTTL(ttl)
	if err != nil {
		return Peer{}, err
	}
	if len(body) > MaxBody {
		return Peer{}, fmt.Errorf("body of %d bytes: over the limit of %d", len(body), MaxBody)
	}
	if bytes.ContainsAny(body, "\n\r") {
		return Peer{}, errors.New("body is not one line")
	}
	if !record.Valid(body) {
		return Peer{}, errors.New("body is not JSON")
	}
	if t := bytes.TrimLeft(body, " \t"); len(t) == 0 || t[0] != '{' {
		return Peer{}, record.ErrNotObject
	}
	var a alertFields
	if err := record.Unmarshal(body, &a); err != nil {
		return Peer{}, fmt.Errorf("body: %w", err)
	}
	if hasFleet(body, &a) {
		return Peer{}, errors.New("body has a fleet field (a record from another fleet member)")
	}
	if a.Rule == nil {
		return Peer{}, errors.New("body has no rule")
	}
	src, err := parseSrc(a.SrcIP)
	if err != nil {
		return Peer{}, err
	}
	if src != p {
		return Peer{}, fmt.Errorf("src_ip %q does not match the subject's address %s", a.SrcIP, PrefixString(p))
	}
	return Peer{Origin: origin, Prefix: p, TTL: d, Level: a.Rule.Level, Body: body}, nil
}

// parseSrc parses a src_ip: an address or, from a filter that bans
// networks, a CIDR.
func parseSrc(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Is4In6() || p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("src_ip %q: not a network", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("src_ip %q: not an address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Mark is the fleet field share adds to a peer's record.
type Mark struct {
	Origin   string
	Received time.Time
	Expires  time.Time
}

// AppendMarked appends body plus its fleet field to dst:
// "fleet":{"origin":..,"received":..,"expires":..,"ttl_s":..}.
func AppendMarked(dst, body []byte, m Mark) ([]byte, error) {
	v := make([]byte, 0, 128)
	v = append(v, `{"origin":`...)
	v = record.AppendString(v, m.Origin)
	v = append(v, `,"received":"`...)
	v = m.Received.AppendFormat(v, record.TimeLayout)
	v = append(v, `","expires":"`...)
	v = m.Expires.AppendFormat(v, record.TimeLayout)
	v = append(v, `","ttl_s":`...)
	ttl := m.Expires.Sub(m.Received).Round(time.Second) / time.Second
	v = fmt.Appendf(v, "%d}", ttl)
	start := len(dst)
	dst = append(dst, body...)
	out, err := record.AppendField(dst[start:], "fleet", v)
	if err != nil {
		return dst[:start], err
	}
	return append(dst[:start], out...), nil
}
