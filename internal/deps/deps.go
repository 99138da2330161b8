//go:build tools

// Package deps pins modules that the stages use.
package deps

import (
	_ "github.com/coreos/go-iptables/iptables"
	_ "github.com/json-iterator/go"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/urfave/cli/v2"
	_ "github.com/vishvananda/netlink"
	_ "go.etcd.io/bbolt"
)
