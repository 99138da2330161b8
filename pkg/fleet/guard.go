package fleet

import (
	"net/netip"
	"time"
)

// Policy is what a server accepts from its peers.
type Policy struct {
	// Allow lists networks never banned because of a peer.
	Allow []netip.Prefix
	// Own lists this host's addresses.
	Own []netip.Addr
	// AllowPrivate lets peers ban private ranges (RFC 1918, fc00::/7):
	// for a fleet that guards a LAN.
	AllowPrivate bool
	// MinBits4 and MinBits6 are the prefix floors: a peer's ban of a
	// wider network is refused (32 and 64 by default).
	MinBits4, MinBits6 int
	// MaxTTL clamps a peer's ban lifetime.
	MaxTTL time.Duration
	// Rate (bans per second) and Burst bound each origin.
	Rate  float64
	Burst int
	// MaxBans caps the live peer bans.
	MaxBans int
	// Quorum is how many distinct origins must report an address before
	// their ban applies (1: any one).
	Quorum int
}

// DefaultPolicy returns the defaults of share's flags.
func DefaultPolicy() Policy {
	return Policy{MinBits4: 32, MinBits6: 64, MaxTTL: 24 * time.Hour, Rate: 20, Burst: 200, MaxBans: 10000, Quorum: 1}
}

// Reasons a peer's ban is refused.
const (
	ReasonAllowlisted = "allowlisted"
	ReasonOwn         = "own-address"
	ReasonLoopback    = "loopback"
	ReasonLinkLocal   = "link-local"
	ReasonMulticast   = "multicast"
	ReasonUnspecified = "unspecified"
	ReasonPrivate     = "private"
	ReasonWide        = "prefix-too-wide"
	ReasonExpired     = "expired"
	ReasonRate        = "rate-limit"
	ReasonCap         = "peer-ban-cap"
	ReasonQuorum      = "quorum-pending"
)

// Guard applies a Policy. It is not safe for concurrent use.
type Guard struct {
	p       Policy
	buckets map[string]*bucket
	// live holds the expiry of every peer ban let through.
	live map[netip.Prefix]time.Time
	// votes holds, per address, the origins that reported it and until
	// when (only with a quorum above 1).
	votes    map[netip.Prefix]map[string]time.Time
	lastScan time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewGuard returns a Guard for p.
func NewGuard(p Policy) *Guard {
	if p.Quorum < 1 {
		p.Quorum = 1
	}
	return &Guard{p: p, buckets: map[string]*bucket{}, live: map[netip.Prefix]time.Time{}, votes: map[netip.Prefix]map[string]time.Time{}}
}

// SetAllow replaces the allow list and this host's addresses (a reload).
func (g *Guard) SetAllow(allow []netip.Prefix, own []netip.Addr) {
	g.p.Allow, g.p.Own = allow, own
}

// Live returns the number of peer bans let through that are still live
// (as of the last call to Admit).
func (g *Guard) Live() int { return len(g.live) }

// Check applies the address rules alone (no state): "" if p may be banned
// because of a peer, or the reason it may not.
func (g *Guard) Check(p netip.Prefix) string {
	a := p.Addr()
	switch {
	case a.IsUnspecified():
		return ReasonUnspecified
	case a.IsLoopback():
		return ReasonLoopback
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return ReasonLinkLocal
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return ReasonMulticast
	case a.Is4() && p.Bits() < g.p.MinBits4, a.Is6() && p.Bits() < g.p.MinBits6:
		return ReasonWide
	case a.IsPrivate() && !g.p.AllowPrivate:
		return ReasonPrivate
	}
	for _, n := range g.p.Allow {
		if n.Overlaps(p) {
			return ReasonAllowlisted
		}
	}
	for _, o := range g.p.Own {
		if p.Contains(o) {
			return ReasonOwn
		}
	}
	return ""
}

// Admit decides about a ban of p from origin that ends at expires, at
// now. It returns the (clamped) end of the ban and "" when the ban may
// go to block, or the reason it may not.
func (g *Guard) Admit(origin string, p netip.Prefix, expires, now time.Time) (time.Time, string) {
	if r := g.Check(p); r != "" {
		return expires, r
	}
	if max := now.Add(g.p.MaxTTL); g.p.MaxTTL > 0 && expires.After(max) {
		expires = max
	}
	if !expires.After(now) {
		return expires, ReasonExpired
	}
	g.sweep(now)
	if !g.take(origin, now) {
		return expires, ReasonRate
	}
	if g.p.Quorum > 1 {
		v := g.votes[p]
		if v == nil {
			if len(g.votes) >= 4*g.p.MaxBans {
				return expires, ReasonCap
			}
			v = map[string]time.Time{}
			g.votes[p] = v
		}
		v[origin] = expires
		n := 0
		for o, until := range v {
			if until.After(now) {
				n++
			} else {
				delete(v, o)
			}
		}
		if n < g.p.Quorum {
			return expires, ReasonQuorum
		}
	}
	if _, ok := g.live[p]; !ok && g.p.MaxBans > 0 && len(g.live) >= g.p.MaxBans {
		return expires, ReasonCap
	}
	if old, ok := g.live[p]; !ok || expires.After(old) {
		g.live[p] = expires
	}
	return expires, ""
}

// take takes one token from origin's bucket.
func (g *Guard) take(origin string, now time.Time) bool {
	if g.p.Rate <= 0 {
		return true
	}
	b := g.buckets[origin]
	if b == nil {
		if len(g.buckets) > 10000 {
			clear(g.buckets) // a flood of made-up origins: start over
		}
		b = &bucket{tokens: float64(g.p.Burst), at: now}
		g.buckets[origin] = b
	}
	b.tokens += now.Sub(b.at).Seconds() * g.p.Rate
	b.at = now
	if b.tokens > float64(g.p.Burst) {
		b.tokens = float64(g.p.Burst)
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets ended bans and votes, at most once a second (ten times a
// second while the cap is reached, so a full table frees what has ended).
func (g *Guard) sweep(now time.Time) {
	every := time.Second
	if g.p.MaxBans > 0 && len(g.live) >= g.p.MaxBans {
		every = 100 * time.Millisecond
	}
	if now.Sub(g.lastScan) < every {
		return
	}
	g.lastScan = now
	for p, until := range g.live {
		if !until.After(now) {
			delete(g.live, p)
		}
	}
	for p, v := range g.votes {
		for o, until := range v {
			if !until.After(now) {
				delete(v, o)
			}
		}
		if len(v) == 0 {
			delete(g.votes, p)
		}
	}
}
