//go:build linux

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDetectBackend runs scripts/detect-backend against stand-ins for the
// host's iptables, iptables-save, ipset and nft.
func TestDetectBackend(t *testing.T) {
	tests := []struct {
		name  string
		stubs map[string]string // program -> its output
		sysNF bool              // /sys/module/nf_tables exists
		want  string
	}{
		{"debian 12", map[string]string{"iptables": "iptables v1.8.9 (nf_tables)", "ipset": ""}, true, "nftables"},
		{"legacy in use with ipset", map[string]string{"iptables": "iptables v1.8.9 (legacy)", "iptables-save": "-A INPUT -j ACCEPT", "ipset": "", "nft": ""}, true, "ipset"},
		{"legacy in use", map[string]string{"iptables": "iptables v1.8.9 (legacy)", "iptables-save": "-A INPUT -j ACCEPT"}, true, "iptables"},
		{"old iptables", map[string]string{"iptables": "iptables v1.6.1", "iptables-save": "-A INPUT -j ACCEPT"}, false, "iptables"},
		{"legacy unused, firewalld on nft", map[string]string{"iptables": "iptables v1.8.9 (legacy)", "iptables-save": "*filter\nCOMMIT", "ipset": "", "nft": "table inet firewalld"}, true, "nftables"},
		{"no iptables, nf_tables", map[string]string{}, true, "nftables"},
		{"no iptables, nft answers", map[string]string{"nft": "table inet filter"}, false, "nftables"},
		{"nothing", map[string]string{}, false, "iptables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			sys := filepath.Join(dir, "sys")
			if err := os.MkdirAll(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.sysNF {
				if err := os.MkdirAll(filepath.Join(sys, "module", "nf_tables"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for prog, out := range tt.stubs {
				body := "#!/bin/sh\nprintf '%s\\n' '" + out + "'\n"
				if err := os.WriteFile(filepath.Join(bin, prog), []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("/bin/bash", script("detect-backend"))
			cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "QW_SYSFS=" + sys}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			if got := strings.TrimSpace(stdout.String()); got != tt.want {
				t.Errorf("got %q, want %q; stderr:\n%s", got, tt.want, stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), "detect-backend: ") || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr: %q", stderr.String())
			}
		})
	}
}
