package command

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Hooks is what every stage takes from the process besides its streams:
// the wall clock and SIGHUP deliveries. Main takes them from the process
// with ProcessHooks; tests build them with a fixed clock and a channel of
// their own. A stage with more to replace (a firewall, a transport) keeps
// them in its own env struct, which embeds Hooks.
type Hooks struct {
	// Now is the wall clock.
	Now func() time.Time
	// Hup delivers SIGHUP; nil: no SIGHUP handling.
	Hup <-chan os.Signal
}

// ProcessHooks returns the process's hooks: time.Now and SIGHUP caught
// (so a SIGHUP never kills the stage). stop ends the delivery.
func ProcessHooks() (h Hooks, stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return Hooks{Now: time.Now, Hup: hup}, func() { signal.Stop(hup) }
}

// Clock returns h.Now, or time.Now when it is unset (tests that fill only
// the parts they replace).
func (h Hooks) Clock() func() time.Time {
	if h.Now == nil {
		return time.Now
	}
	return h.Now
}

// Diag writes a stage's diagnostics: one "prog: message" line each, the
// same prefix Run gives the errors a stage returns.
type Diag struct {
	Prog string
	W    io.Writer
}

// Printf writes one line "Prog: " + the formatted message (a trailing
// newline in format is not doubled).
func (d Diag) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	fmt.Fprintf(d.W, "%s: %s\n", d.Prog, msg)
}
