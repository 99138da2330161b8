package rule

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strconv"

	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/rule/seen"
)

// Input is one input record as the engine sees it: the Event its rules
// test, and what the engine counts it by. Pretest.Prepare fills it.
type Input struct {
	Event
	src []byte // src_ip as written
	// srcKey is what the source counts as (same_source_ip,
	// different_srcip, first time seen): src, or its IPv6 network (see
	// sourceKey)
	srcKey []byte
	keyBuf []byte // srcKey's buffer when it is not src
	// net is the IPv6 network the source counts as (the alert's
	// src_prefix); not valid for IPv4 sources and with --ipv6-prefix 128
	net netip.Prefix
	dst []byte // dest_ip as written
	log []byte // full_log (or the compact record) for previous_output
	// compact is the buffer of the compact record (for a record without
	// full_log)
	compact []byte
	seq     uint64    // for feeding each window once per event
	srcSig  []byte    // scratch for the keySrcSig key
	sigBuf  []byte    // scratch for SigID
	ftsKey  seen.Hash // the first-time-seen key (made by prepare)
	// pre holds the results of Test for the rules of preSet that have
	// patterns, computed in the reading goroutine (see Pretest); used
	// only when preSet is the engine's set
	pre    []Failure
	preSet *Set
}

// decoderName is what <decoded_as> compares with: every input record is
// an IDS event, and OSSEC's decoder for snort-fast lines is "snort".
const decoderName = "snort"

// prepare fills ev from the scanned fields of line (all but the parsed
// addresses, which only rules with srcip/dstip need); v6bits is
// --ipv6-prefix.
func prepare(ev *Input, f *record.EventFields, line []byte, v6bits int) {
	ev.IDS = true
	ev.Decoder = decoderName
	ev.src, ev.dst = f.SrcIP, f.DestIP
	ev.sourceKey(v6bits)
	if f.FullLog != nil {
		ev.log = f.FullLog
		ev.SetText(stripStamp(f.FullLog))
	} else {
		// (its own buffer: ev.log may still point into an earlier line's
		// bytes, which appending to it would overwrite)
		ev.compact = record.AppendCompact(ev.compact[:0], line)
		ev.log = ev.compact
		ev.SetText(ev.log)
	}
	ev.SigID = nil
	ev.preSet = nil
	if f.HasSig {
		b := ev.sigBuf[:0]
		b = strconv.AppendInt(b, f.GID, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, f.SID, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, f.Rev, 10)
		ev.sigBuf = b
		ev.SigID = b
	}
	ev.ftsKey = seen.NewHash().Add([]byte(decoderName)).Add(ev.SigID).Add(ev.srcKey).Add(ev.dst)
}

// Net is the IPv6 network the source was counted as (the alert's
// src_prefix); not valid for an IPv4 source, nor with --ipv6-prefix 128.
func (ev *Input) Net() netip.Prefix { return ev.net }

// key returns ev's key for a window kind, nil when ev lacks it.
func (ev *Input) key(k keyKind) []byte {
	switch k {
	case keySrc:
		return ev.srcKey
	case keySig:
		return ev.SigID
	case keySrcSig:
		if ev.srcKey == nil || ev.SigID == nil {
			return nil
		}
		ev.srcSig = append(append(append(ev.srcSig[:0], ev.srcKey...), ' '), ev.SigID...)
		return ev.srcSig
	}
	return []byte{}
}

// sourceKey sets ev.srcKey, what the source is counted as, and ev.net:
// an IPv6 address counts as its network of v6bits bits (ev.net, the
// alert's src_prefix, when v6bits < 128), an IPv4-mapped IPv6 address as
// the IPv4 address ("192.0.2.1"), anything else (IPv4, no address, not an
// address) as written. An attacker's addresses within one /64 count
// together: a host or a home line is usually given a whole /64, so the
// address alone is no identity for an IPv6 source.
//
// An IPv6 key is the network's bytes in hex and its length
// ("20010db800000000/64", "20010db8000000000000000000000001/128"): cheaper
// to make than the canonical text, and never taken for an IPv4 address.
func (ev *Input) sourceKey(v6bits int) {
	ev.srcKey, ev.net = ev.src, netip.Prefix{}
	if bytes.IndexByte(ev.src, ':') < 0 {
		return // IPv4 (or none): the fast path
	}
	b, ok := parse6(ev.src)
	if !ok { // another form (an IPv4 tail, a zone), or not an address
		a, err := netip.ParseAddr(string(ev.src))
		if err != nil {
			return
		}
		b = a.As16() // (IPv6: with a colon, ParseAddr takes nothing else)
	}
	if a := netip.AddrFrom16(b); a.Is4In6() {
		ev.keyBuf = a.Unmap().AppendTo(ev.keyBuf[:0])
		ev.srcKey = ev.keyBuf
		return
	}
	for i := range b {
		if n := v6bits - 8*i; n < 8 {
			b[i] &^= 0xff >> max(n, 0)
		}
	}
	k := hex.AppendEncode(ev.keyBuf[:0], b[:(v6bits+7)/8])
	k = append(k, '/')
	k = strconv.AppendInt(k, int64(v6bits), 10)
	ev.keyBuf, ev.srcKey = k, k
	if v6bits < 128 {
		ev.net = netip.PrefixFrom(netip.AddrFrom16(b), v6bits)
	}
}

// parse6 parses the usual text of an IPv6 address, hex groups with at
// most one "::" (as fastparse writes every address), without making a
// string of it (netip.ParseAddr's copy and parse were most of the cost of
// an IPv6 source). It accepts nothing netip.ParseAddr refuses (fuzzed
// against it) and says false for the forms it leaves to it: an IPv4 tail
// ("::ffff:192.0.2.1"), a zone ("fe80::1%eth0").
func parse6(s []byte) (ip [16]byte, ok bool) {
	ellipsis := -1 // where "::" is in ip
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return ip, true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, uint32(0)
	digits:
		for ; off < len(s); off++ {
			c := s[off]
			switch {
			case '0' <= c && c <= '9':
				acc = acc<<4 | uint32(c-'0')
			case 'a' <= c && c <= 'f':
				acc = acc<<4 | uint32(c-'a'+10)
			case 'A' <= c && c <= 'F':
				acc = acc<<4 | uint32(c-'A'+10)
			default:
				break digits
			}
			if off > 3 {
				return ip, false // a group of more than 4 digits
			}
		}
		if off == 0 {
			return ip, false
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return ip, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return ip, false // a second "::"
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return ip, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return ip, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return ip, false // "::" standing for no group
	}
	return ip, true
}

// stripStamp returns the log text without its leading timestamp, as OSSEC
// tests rules: Suricata's "MM/DD/YYYY-HH:MM:SS.uuuuuu" or Snort's
// year-less "MM/DD-HH:MM:SS.uuuuuu", with the blanks after it. Text of
// another shape is returned whole.
func stripStamp(s []byte) []byte {
	n := stampLen(s)
	if n == 0 {
		return s
	}
	for n < len(s) && s[n] == ' ' {
		n++
	}
	return s[n:]
}

func stampLen(s []byte) int {
	digits := func(i, n int) bool {
		if i+n > len(s) {
			return false
		}
		for _, c := range s[i : i+n] {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	at := func(i int, c byte) bool { return i < len(s) && s[i] == c }
	if !digits(0, 2) || !at(2, '/') || !digits(3, 2) {
		return 0
	}
	i := 5
	if at(5, '/') && digits(6, 4) {
		i = 10
	}
	// i is at the '-' before the time
	if !at(i, '-') || !digits(i+1, 2) || !at(i+3, ':') || !digits(i+4, 2) || !at(i+6, ':') || !digits(i+7, 2) {
		return 0
	}
	j := i + 9
	if at(j, '.') {
		j++
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
	}
	if j < len(s) && s[j] != ' ' {
		return 0
	}
	return j
}
