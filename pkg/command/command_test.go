package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/quietwatch/quietwatch/pkg/exitcode"
)

func app(action cli.ActionFunc) *cli.App {
	return &cli.App{
		Name:   "demo",
		Flags:  []cli.Flag{&cli.IntFlag{Name: "n"}},
		Action: action,
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		err        error
		code       int
		stderrPart string
	}{
		{"ok", nil, nil, 0, ""},
		{"bad flag", []string{"--nope"}, nil, exitcode.Usage, "demo: flag provided but not defined: -nope"},
		{"bad value", []string{"--n", "x"}, nil, exitcode.Usage, "invalid value"},
		{"config", nil, exitcode.Errorf(exitcode.Config, "rules: bad"), exitcode.Config, "demo: rules: bad\n"},
		{"plain", nil, errors.New("boom"), exitcode.Failure, "demo: boom\n"},
		{"epipe", nil, fmt.Errorf("write: %w", syscall.EPIPE), 0, ""},
		{"reported", nil, exitcode.Reported(exitcode.Config), exitcode.Config, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			a := app(func(*cli.Context) error { return tt.err })
			code := Run(context.Background(), a, append([]string{"demo"}, tt.args...), strings.NewReader(""), &out, &errOut)
			if code != tt.code {
				t.Errorf("code = %d, want %d", code, tt.code)
			}
			if tt.stderrPart == "" && errOut.Len() != 0 {
				t.Errorf("stderr = %q, want empty", errOut.String())
			}
			if !strings.Contains(errOut.String(), tt.stderrPart) {
				t.Errorf("stderr = %q, want it to contain %q", errOut.String(), tt.stderrPart)
			}
			if out.Len() != 0 {
				t.Errorf("stdout = %q, want empty", out.String())
			}
		})
	}
}

func TestHelpGoesToStdout(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Run(context.Background(), app(nil), []string{"demo", "--help"}, strings.NewReader(""), &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "-n value") || errOut.Len() != 0 {
		t.Errorf("code %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}
