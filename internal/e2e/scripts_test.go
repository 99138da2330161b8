//go:build linux

package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

func script(name string) string { return filepath.Join(repo, "scripts", name) }

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestCheckSuricata runs scripts/check-suricata on variants of the real
// suricata.yaml, read by Suricata's own parser.
func TestCheckSuricata(t *testing.T) {
	hosttest.Require(t, "suricata")
	orig, err := os.ReadFile("/etc/suricata/suricata.yaml")
	if err != nil {
		hosttest.Missing(t, "no /etc/suricata/suricata.yaml: %v", err)
	}
	dir := t.TempDir()
	// Suricata's stock file includes classification.config etc. by
	// absolute path, so the copies stay loadable.
	fastOn := string(orig)
	fastOff := strings.Replace(fastOn, "  - fast:\n      enabled: yes", "  - fast:\n      enabled: no", 1)
	if fastOff == fastOn {
		t.Fatal("stock suricata.yaml has no enabled fast output to turn off")
	}
	eveOff := strings.Replace(fastOn, "  - eve-log:\n      enabled: yes", "  - eve-log:\n      enabled: no", 1)
	tests := []struct {
		name, yaml, fastlog string
		code                int
		stderr              []string
	}{
		{"stock", fastOn, "/var/log/suricata/fast.log", 0, []string{"ok: Suricata writes /var/log/suricata/fast.log", "eve-log is enabled"}},
		{"eve off", eveOff, "/var/log/suricata/fast.log", 0, []string{"ok:"}},
		{"fast off", fastOff, "/var/log/suricata/fast.log", 78, []string{"fast output is not enabled", "enabled: yes"}},
		{"other path", fastOn, "/srv/fast.log", 78, []string{"QW_FASTLOG=/var/log/suricata/fast.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			if err := os.WriteFile(y, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd := exec.Command(script("check-suricata"), y, tt.fastlog)
			cmd.Stderr = &stderr
			code := exitCode(cmd.Run())
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, stderr.String())
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
		})
	}
}

// TestSetupRelay configures a copy of the real Postfix configuration as the
// how-to's relay, twice, and checks the result with Postfix's own tools.
func TestSetupRelay(t *testing.T) {
	hosttest.Require(t, "postconf", "postmap", "postalias")
	dir := t.TempDir()
	conf := filepath.Join(dir, "postfix")
	if out, err := exec.Command("cp", "-a", "/etc/postfix", conf).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/postfix: %v\n%s", err, out)
	}
	aliases := filepath.Join(dir, "aliases")
	if err := os.WriteFile(aliases, []byte("# aliases\nroot: old@example.org\nwww-data: root\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("s3cret-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		cmd := exec.Command(script("setup-relay"), "--relay", "smtp.mailgun.example:587",
			"--user", "postmaster@mail.example.com", "--password-file", pass, "--admin", "name@example.com",
			"--config-dir", conf, "--aliases", aliases, "--no-reload")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("setup-relay: %v\n%s", err, out)
		}
	}
	run()
	first, _ := os.ReadFile(filepath.Join(conf, "main.cf"))
	run() // idempotent
	second, _ := os.ReadFile(filepath.Join(conf, "main.cf"))
	if !bytes.Equal(first, second) {
		t.Error("a second run changed main.cf")
	}
	get := func(param string) string {
		out, err := exec.Command("postconf", "-c", conf, "-h", param).Output()
		if err != nil {
			t.Fatalf("postconf %s: %v", param, err)
		}
		return strings.TrimSpace(string(out))
	}
	for param, want := range map[string]string{
		"relayhost":                  "[smtp.mailgun.example]:587",
		"smtp_sasl_auth_enable":      "yes",
		"smtp_sasl_password_maps":    "hash:" + conf + "/sasl_passwd",
		"smtp_sasl_security_options": "noanonymous",
		"smtp_tls_security_level":    "secure",
		"inet_interfaces":            "loopback-only",
	} {
		if got := get(param); got != want {
			t.Errorf("%s = %q, want %q", param, got, want)
		}
	}
	for _, f := range []string{"sasl_passwd", "sasl_passwd.db"} {
		fi, err := os.Stat(filepath.Join(conf, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	out, err := exec.Command("postmap", "-q", "[smtp.mailgun.example]:587", "hash:"+filepath.Join(conf, "sasl_passwd")).Output()
	if err != nil || strings.TrimSpace(string(out)) != "postmaster@mail.example.com:s3cret-pass" {
		t.Errorf("postmap lookup = %q, %v", out, err)
	}
	out, err = exec.Command("postalias", "-q", "root", "hash:"+aliases).Output()
	if err != nil || strings.TrimSpace(string(out)) != "name@example.com" {
		t.Errorf("root alias = %q, %v", out, err)
	}
	al, _ := os.ReadFile(aliases)
	if strings.Count(string(al), "root:") != 1 || !strings.Contains(string(al), "www-data: root") {
		t.Errorf("aliases file:\n%s", al)
	}
	cmd := exec.Command(script("setup-relay"), "--relay", "x", "--config-dir", conf)
	if code := exitCode(cmd.Run()); code != 2 {
		t.Errorf("missing flags: exit %d, want 2", code)
	}
}

// TestInstallStaged stages an install under a folder and checks what an
// admin gets: binaries, wrapper, unit, settings that are never overwritten.
func TestInstallStaged(t *testing.T) {
	root := t.TempDir()
	install := func() {
		t.Helper()
		out, err := exec.Command(script("install"), "--destdir", root, "--no-build", binDir).CombinedOutput()
		if err != nil {
			t.Fatalf("install: %v\n%s", err, out)
		}
	}
	install()
	for path, mode := range map[string]os.FileMode{
		"usr/local/bin/fastparse":                  0o755,
		"usr/local/bin/correlate":                  0o755,
		"usr/local/bin/notify":                     0o755,
		"usr/local/bin/block":                      0o755,
		"usr/local/lib/quietwatch/quietwatch-run":  0o755,
		"usr/local/lib/quietwatch/uninstall":       0o755,
		"etc/systemd/system/quietwatch.service":    0o644,
		"etc/quietwatch/quietwatch.env":            0o640,
		"etc/quietwatch/local_rules.xml":           0o644,
		"etc/logrotate.d/quietwatch":               0o644,
		"usr/local/share/doc/quietwatch/README.md": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("missing %s", path)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	env := filepath.Join(root, "etc/quietwatch/quietwatch.env")
	if err := os.WriteFile(env, []byte("QW_MAIL_TO=me@example.org\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	install()
	if b, _ := os.ReadFile(env); string(b) != "QW_MAIL_TO=me@example.org\n" {
		t.Errorf("a second install overwrote the admin's settings: %q", b)
	}
	if _, err := os.Stat(env + ".new"); err != nil {
		t.Errorf("the new default settings were not written beside them: %v", err)
	}
	// The installed rules pass the unit's ExecStartPre.
	out, err := exec.Command(filepath.Join(binDir, "correlate"), "--check", "-r", filepath.Join(root, "etc/quietwatch/local_rules.xml")).CombinedOutput()
	if err != nil {
		t.Errorf("correlate --check on the installed rules: %v\n%s", err, out)
	}
	unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/quietwatch.service"))
	for _, want := range []string{"ExecStartPre=/usr/local/bin/correlate --check", "ProtectSystem=strict", "CapabilityBoundingSet=", "Restart=always", "StateDirectory=quietwatch"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}
