//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// TestCheckSuricataEVE: an eve-only sensor (fast output off, eve-log
// writing alerts) is accepted when quietwatch reads its eve.json, and
// check-suricata says what to set when it does not.
func TestCheckSuricataEVE(t *testing.T) {
	hosttest.Require(t, "suricata")
	orig, err := os.ReadFile("/etc/suricata/suricata.yaml")
	if err != nil {
		hosttest.Missing(t, "no /etc/suricata/suricata.yaml: %v", err)
	}
	dir := t.TempDir()
	fastOn := string(orig)
	eveOnly := strings.Replace(fastOn, "  - fast:\n      enabled: yes", "  - fast:\n      enabled: no", 1)
	neither := strings.Replace(eveOnly, "  - eve-log:\n      enabled: yes", "  - eve-log:\n      enabled: no", 1)
	threaded := strings.Replace(eveOnly, "      filename: eve.json\n", "      filename: eve.json\n      threaded: yes\n", 1)
	if eveOnly == fastOn || neither == eveOnly || threaded == eveOnly {
		t.Fatal("stock suricata.yaml is not as expected (fast and eve-log enabled, eve.json)")
	}
	tests := []struct {
		name, yaml string
		env        []string
		code       int
		stderr     string
	}{
		{"eve only, read as eve", eveOnly, []string{"QW_FASTLOG=/var/log/suricata/eve.json", "QW_FORMAT=eve"}, 0, "ok: Suricata writes alerts to eve.json /var/log/suricata/eve.json (QW_FORMAT=eve)"},
		{"eve only, auto", eveOnly, []string{"QW_FASTLOG=/var/log/suricata/eve.json"}, 0, "(QW_FORMAT=auto)"},
		{"eve only, read as fast.log", eveOnly, []string{"QW_FASTLOG=/var/log/suricata/fast.log"}, 78, `set QW_FASTLOG="/var/log/suricata/eve.json" and QW_FORMAT=eve`},
		{"eve only, QW_FORMAT=fast", eveOnly, []string{"QW_FASTLOG=/var/log/suricata/eve.json", "QW_FORMAT=fast"}, 78, "set QW_FORMAT=eve (or auto)"},
		{"eve only, other path", eveOnly, []string{"QW_FASTLOG=/srv/eve.json"}, 78, `quietwatch reads /srv/eve.json: set QW_FASTLOG="/var/log/suricata/eve.json"`},
		{"neither", neither, []string{"QW_FASTLOG=/var/log/suricata/eve.json"}, 78, "eve-log does not write alerts"},
		{"threaded", threaded, []string{"QW_FASTLOG=/var/log/suricata/eve.1.json /var/log/suricata/eve.2.json"}, 0, "ok:"},
		{"threaded, one file", threaded, []string{"QW_FASTLOG=/var/log/suricata/eve.json"}, 78, "eve.N.json, one per thread"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := filepath.Join(dir, strings.NewReplacer(" ", "-", ",", "", "=", "-").Replace(tt.name)+".yaml")
			writeFile(t, y, []byte(tt.yaml), 0o644)
			env := append([]string{"QW_FORMAT="}, tt.env...)
			code, _, stderr := checkSuricata(env, "--settings", filepath.Join(dir, "none.env"), y)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, want %d with %q\n%s", code, tt.code, tt.stderr, stderr)
			}
		})
	}
}
