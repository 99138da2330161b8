// Package fleet is the wire format quietwatch servers use to share bans
// over NATS, and the guards a server applies to its peers' bans.
//
// A shared ban is one NATS message: the subject names the publishing
// server (its origin) and the banned address, qw.ban.<origin>.<address>,
// so a server's NATS permissions can restrict it to its own origin; the
// body is the alert record exactly as the origin's pipeline carried it.
// The origin is taken from the subject only, never from the body, and
// everything a peer sends is checked by a Guard before it reaches block.
package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

const (
	// Stream is the JetStream stream that keeps live bans for catch-up.
	Stream = "QW_BANS"
	// BanPrefix starts every ban subject.
	BanPrefix = "qw.ban"
	// BanSubjects matches every ban subject.
	BanSubjects = BanPrefix + ".>"
	// EventPrefix starts the subjects of shared events (share publish).
	EventPrefix = "qw.event"
	// TTLHeader is JetStream's per-message TTL header.
	TTLHeader = "Nats-TTL"
	// ExpiresHeader carries the end of the ban as the origin decided it
	// (Unix milliseconds), so a message delayed on the way (a server that
	// was cut off gets what its NATS server kept for it) is not taken as
	// fresh: a ban ends at the earlier of this and arrival plus TTL.
	ExpiresHeader = "Qw-Expires"
	// MsgIDHeader is JetStream's de-duplication header.
	MsgIDHeader = "Nats-Msg-Id"
	// MaxBody is the largest body accepted from a peer.
	MaxBody = 64 << 10
	// MinTTL is the shortest TTL JetStream accepts.
	MinTTL = time.Second
)

// ValidOrigin reports whether s can be an origin: 1 to 64 letters, digits,
// '-' or '_' (one NATS subject token, no wildcards).
func ValidOrigin(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// OriginFromHost turns a host name into an origin: its first label, with
// any character an origin cannot hold replaced by '_'.
func OriginFromHost(host string) string {
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	if len(host) > 64 {
		host = host[:64]
	}
	b := []byte(host)
	for i, c := range b {
		if !ValidOrigin(string(c)) {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "quietwatch"
	}
	return string(b)
}

// addrToken is an address as one subject token: IPv4 dots become dashes;
// IPv6 text has no dots (a mapped IPv4 address is unmapped first).
func addrToken(p netip.Prefix) string {
	s := p.Addr().Unmap().String()
	s = strings.ReplaceAll(s, ".", "-")
	if p.Bits() != p.Addr().BitLen() {
		s += "_" + strconv.Itoa(p.Bits())
	}
	return s
}

func parseAddrToken(tok string) (netip.Prefix, error) {
	bits := -1
	if i := strings.IndexByte(tok, '_'); i >= 0 {
		n, err := strconv.Atoi(tok[i+1:])
		if err != nil || tok[i+1:] != strconv.Itoa(n) {
			return netip.Prefix{}, fmt.Errorf("bad prefix length in %q", tok)
		}
		bits, tok = n, tok[:i]
	}
	if !strings.Contains(tok, ":") {
		tok = strings.ReplaceAll(tok, "-", ".")
	}
	a, err := netip.ParseAddr(tok)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q: not a plain address", tok)
	}
	if bits < 0 {
		bits = a.BitLen()
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr() != a {
		return netip.Prefix{}, fmt.Errorf("%q: host bits set", tok)
	}
	return p, nil
}

// BanSubject is the subject origin publishes a ban of p on.
func BanSubject(origin string, p netip.Prefix) string {
	return BanPrefix + "." + origin + "." + addrToken(p)
}

// OriginSubjects matches every ban subject of origin (for its permissions).
func OriginSubjects(origin string) string { return BanPrefix + "." + origin + ".>" }

// ParseBanSubject returns the origin and prefix a ban subject names.
func ParseBanSubject(subj string) (origin string, p netip.Prefix, err error) {
	rest, ok := strings.CutPrefix(subj, BanPrefix+".")
	if !ok {
		return "", p, fmt.Errorf("subject %q: not a ban subject", subj)
	}
	origin, tok, ok := strings.Cut(rest, ".")
	if !ok || !ValidOrigin(origin) || strings.Contains(tok, ".") {
		return "", p, fmt.Errorf("subject %q: want %s.<origin>.<address>", subj, BanPrefix)
	}
	p, err = parseAddrToken(tok)
	if err != nil {
		return "", p, fmt.Errorf("subject %q: %w", subj, err)
	}
	return origin, p, nil
}

// MsgID is the de-duplication id of a ban: the same record published twice
// (a retry) has the same id.
func MsgID(origin string, body []byte) string {
	sum := sha256.Sum256(body)
	return origin + "-" + hex.EncodeToString(sum[:12])
}

// ParseTTL reads a Nats-TTL header value: a Go duration ("5m0s") or whole
// seconds ("300"). "never" and other values are errors: a shared ban
// always ends.
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("no TTL")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 || n > int64(1<<62/time.Second) {
			return 0, fmt.Errorf("TTL %q out of range", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("TTL %q: not a duration", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("TTL %q out of range", s)
	}
	return d, nil
}

// PrefixString writes a single-address prefix as the address alone.
func PrefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// ParseExpires reads a Qw-Expires header; ok is false when it is absent
// or malformed (then the TTL alone counts).
func ParseExpires(s string) (time.Time, bool) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms <= 0 || ms > 1<<50 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
