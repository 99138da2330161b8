package block

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/firewall"
)

// A subcommand's error that joins several (block flush with two backends
// failing, each backend's program writing two lines) is written as single
// lines "block: ...", never a bare continuation line; the exit code stays.
func TestSubcommandErrorsOneLineEach(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	e := testEnv()
	e.backend = func(name string, _ firewall.Config) (firewall.Backend, error) {
		f := firewall.NewFake(name)
		f.Fail = func(kind string) error {
			if kind == "flush" {
				return errors.New("iptables v1.8.9: Chain 'X' does not exist\nTry `iptables -h' for more information.")
			}
			return nil
		}
		return f, nil
	}
	code, _, errOut := ctl(t, e, "--state", state, "--backend", "dry-run", "--backend", "hosts-deny", "flush")
	if code != exitcode.Failure {
		t.Errorf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) != 4 {
		t.Errorf("want 4 lines, got %q", errOut)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "block: ") {
			t.Errorf("line %q of stderr %q", l, errOut)
		}
	}
}
