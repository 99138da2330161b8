//go:build !linux

package firewall

import "errors"

var errLinuxOnly = errors.New("needs Linux")

func newIPTables(Config) (Backend, error) {
	return nil, &UnavailableError{Backend: "iptables", Err: errLinuxOnly}
}

func newIPSet(Config) (Backend, error) {
	return nil, &UnavailableError{Backend: "ipset", Err: errLinuxOnly}
}

func newNFTables(Config) (Backend, error) {
	return nil, &UnavailableError{Backend: "nftables", Err: errLinuxOnly}
}
