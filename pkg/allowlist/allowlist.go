// Package allowlist reads the addresses and networks that are never
// banned, the same for block and share: --allow entries, --allow-file
// files, and this host's own addresses.
package allowlist

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// Parse parses an allow-list entry: a CIDR or a single address (an
// IPv4-mapped one folded to IPv4; a zone refused).
func Parse(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not a CIDR")
		}
		a := p.Addr()
		if a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errors.New("not an address or CIDR")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ReadFile reads the allow-file format: one address or CIDR a
// line; blank lines and text after # are ignored. It returns every
// problem found, each as one message.
func ReadFile(path string) ([]netip.Prefix, []string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, []string{fmt.Sprintf("--allow-file: %v", err)}
	}
	defer f.Close()
	var out []netip.Prefix
	var errs []string
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p, err := Parse(line)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s:%d: %q: %v", path, n, line, err))
			continue
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Sprintf("%s: %v", path, err))
	}
	return out, errs
}

// OwnAddrs returns this host's (or network namespace's) addresses,
// IPv4-mapped ones folded to IPv4.
func OwnAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}
