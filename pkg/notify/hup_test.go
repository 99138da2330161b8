package notify

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReloadsTemplate: a SIGHUP (through the env's Hup) re-reads
// --template, and the alerts read after it use the new one; a broken one
// keeps the old, with one diagnostic; the stage goes on either way.
func TestSIGHUPReloadsTemplate(t *testing.T) {
	tmpl := filepath.Join(t.TempDir(), "body.tmpl")
	// write replaces the file whole (a rename), as an editor or config
	// tool does: the second SIGHUP of a pair may still be handled while
	// the next write happens, and must read one template or the other,
	// never a truncated file.
	write := func(text string) {
		t.Helper()
		tmp := tmpl + ".new"
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, tmpl); err != nil {
			t.Fatal(err)
		}
	}
	// hup is unbuffered: the second of two sends returns only once the
	// first SIGHUP was handled.
	hup := make(chan os.Signal)
	signal := func() {
		t.Helper()
		for range 2 {
			select {
			case hup <- syscall.SIGHUP:
			case <-time.After(10 * time.Second): // a guard against a hang, not a measure
				t.Fatal("nothing takes SIGHUP")
			}
		}
	}
	write("first template: {{len .Alerts}} alert(s)\n")
	e := fixedEnv()
	e.Hup = hup
	pr, pw := io.Pipe()
	var stdout, stderr bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(context.Background(), []string{"notify", "--dry-run", "--to", "root", "--hostname", "vm",
			"--group-window", "0", "--template", tmpl}, pr, &stdout, &stderr, e)
	}()
	write("second template: {{len .Alerts}} alert(s)\n")
	signal()
	io.WriteString(pw, alertLine("h1", "one", 10)) //nolint:errcheck // read by run
	write("{{ broken")
	signal()
	io.WriteString(pw, alertLine("h2", "two", 10)) //nolint:errcheck // read by run
	pw.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := strings.Count(stdout.String(), "second template: 1 alert(s)"); got != 2 || strings.Contains(stdout.String(), "first template") {
		t.Errorf("want both mails in the second template:\n%s", stdout.String())
	}
	// Two lines for the two SIGHUPs after the broken write, and a third
	// when the first pair's second SIGHUP was handled after that write.
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	if len(lines) < 2 || len(lines) > 3 || lines[0] != lines[len(lines)-1] || !strings.HasPrefix(lines[0], "notify: SIGHUP: --template: ") || !strings.HasSuffix(lines[0], " (keeping the old template)") {
		t.Errorf("stderr: want one line per broken reload (two SIGHUPs):\n%s", stderr.String())
	}
}
