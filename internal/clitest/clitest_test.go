package clitest

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/quietwatch/quietwatch/pkg/block"
	"github.com/quietwatch/quietwatch/pkg/correlate"
	"github.com/quietwatch/quietwatch/pkg/fastparse"
	"github.com/quietwatch/quietwatch/pkg/notify"
)

var update = flag.Bool("update", false, "rewrite the scripts' golden files")

func TestMain(m *testing.M) {
	stage := func(main func([]string, io.Reader, io.Writer, io.Writer) int) func() {
		return func() { os.Exit(main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
	}
	testscript.Main(m, map[string]func(){
		"fastparse": stage(fastparse.Main),
		"correlate": stage(correlate.Main),
		"notify":    stage(notify.Main),
		"block":     stage(block.Main),
	})
}

// TestScript runs testdata/script/*.txtar. $REPO is the repository root
// (for testdata/rules and samples).
func TestScript(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join(repo, "testdata", "script"),
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("REPO", repo)
			env.Setenv("TZ", "UTC")
			return nil
		},
	})
}
