package share

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/quietwatch/quietwatch/pkg/command"
)

// TestUsage checks exit codes and diagnostics of bad invocations; none of
// them gets as far as connecting.
func TestUsage(t *testing.T) {
	dir := t.TempDir()
	badCreds := filepath.Join(dir, "bad.creds")
	if err := os.WriteFile(badCreds, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "share: --nats or --serve: one is needed\nshare: run 'share --help' for usage\n"},
		{[]string{"--nats", "x", "--serve", ":4222"}, 2, "share: --nats and --serve: give one"},
		{[]string{"--nats", "x", "extra"}, 2, `share: unexpected argument "extra"`},
		{[]string{"--nats", "x", "--origin", "web.1"}, 2, `share: --origin "web.1": want 1 to 64 letters, digits, '-' or '_'`},
		{[]string{"--nats", "x", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"--nats", "x", "--creds", filepath.Join(dir, "missing")}, 78, "share: --creds: open "},
		{[]string{"--nats", "x", "--creds", badCreds}, 78, "neither a credentials file nor an NKey seed"},
		{[]string{"--nats", "x", "--allow", "nope", "--ttl", "0s", "--quorum", "0"}, 78,
			"share: --allow \"nope\": not an address or CIDR\nshare: --quorum 0: want at least 1\nshare: --ttl 0s: want at least 1s\n"},
		{[]string{"--nats", "x", "--ttl", "48h"}, 78, "share: --ttl 48h0m0s: longer than --max-ttl 24h0m0s\n"},
		{[]string{"--serve", "nohost"}, 2, `share: --serve "nohost": want host:port or :port`},
		{[]string{"--serve", busy, "--store", dir}, 1, "address already in use"},
		{[]string{"keygen"}, 2, "share: keygen: want one FILE"},
		{[]string{"keygen", badCreds}, 78, "exists: not overwritten"},
	} {
		var out, errb bytes.Buffer
		code := command.Run(context.Background(), newApp(testEnv(nil)), append([]string{"share"}, tc.args...), strings.NewReader(""), &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.stderr) || out.Len() != 0 {
			t.Errorf("share %s: exit %d, stderr %q, stdout %q; want exit %d, stderr with %q", strings.Join(tc.args, " "), code, errb.String(), out.String(), tc.code, tc.stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	code := command.Run(context.Background(), newApp(testEnv(nil)), []string{"share", "--help"}, strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "Example:") || !strings.Contains(out.String(), "| share --nats") {
		t.Fatalf("--help: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

type epipeWriter struct{}

func (epipeWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// TestClosedDownstream: block gone, share ends quietly with exit 0.
func TestClosedDownstream(t *testing.T) {
	ns := newServer(t)
	var errb bytes.Buffer
	in := strings.NewReader(alert("198.51.100.70", 10) + "\n" + alert("198.51.100.71", 10) + "\n")
	code := command.Run(context.Background(), newApp(testEnv(ns)), []string{"share", "--nats", "x"}, in, epipeWriter{}, &errb)
	if code != 0 || errb.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
