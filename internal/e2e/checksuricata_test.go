//go:build linux

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// checkSuricata runs scripts/check-suricata with env added to an
// environment without QW_FASTLOG.
func checkSuricata(env []string, args ...string) (code int, stdout, stderr string) {
	cmd := exec.Command(script("check-suricata"), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QW_FASTLOG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return exitCode(cmd.Run()), out.String(), errb.String()
}

// TestCheckSuricataUsage needs no Suricata: help and usage errors come first.
func TestCheckSuricataUsage(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		code, stdout, stderr := checkSuricata(nil, arg)
		if code != 0 || !strings.Contains(stdout, "--settings FILE") || stderr != "" {
			t.Errorf("check-suricata %s: exit %d, stdout %q, stderr %q", arg, code, stdout, stderr)
		}
	}
	for _, args := range [][]string{{"--bogus"}, {"a", "b", "c"}, {"--settings"}} {
		code, _, stderr := checkSuricata(nil, args...)
		if code != 2 || !strings.HasPrefix(stderr, "check-suricata: ") {
			t.Errorf("check-suricata %s: exit %d, want 2\n%s", strings.Join(args, " "), code, stderr)
		}
	}
}

// TestCheckSuricataSettings checks that the path quietwatch reads comes from
// the settings file when none is given, as quietwatch-run reads it.
func TestCheckSuricataSettings(t *testing.T) {
	hosttest.Require(t, "suricata")
	if _, err := os.Stat("/etc/suricata/suricata.yaml"); err != nil {
		hosttest.Missing(t, "no /etc/suricata/suricata.yaml: %v", err)
	}
	dir := t.TempDir()
	other := filepath.Join(dir, "other.env")
	writeFile(t, other, []byte("# settings\nQW_POLL=100ms\nQW_FASTLOG=\"/srv/suricata/fast.log\"\n"), 0o640)
	stock := filepath.Join(dir, "stock.env")
	writeFile(t, stock, []byte("QW_FASTLOG=/var/log/suricata/fast.log\n"), 0o640)
	tests := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stderr string
	}{
		{"settings elsewhere", nil, []string{"--settings", other}, 78,
			"quietwatch reads /srv/suricata/fast.log: set QW_FASTLOG=/var/log/suricata/fast.log in " + other},
		{"settings stock", nil, []string{"--settings=" + stock}, 0, "ok: Suricata writes /var/log/suricata/fast.log"},
		{"argument first", nil, []string{"--settings", other, "/etc/suricata/suricata.yaml", "/var/log/suricata/fast.log"}, 0, "ok:"},
		{"environment before the file", []string{"QW_FASTLOG=/var/log/suricata/fast.log"}, []string{"--settings", other}, 0, "ok:"},
		{"settings missing", nil, []string{"--settings", filepath.Join(dir, "none.env")}, 78, "cannot read the settings file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := checkSuricata(tt.env, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, want %d with %q\n%s", code, tt.code, tt.stderr, stderr)
			}
		})
	}
}
