package fastparse

import (
	"io"
	"sync"

	"github.com/quietwatch/quietwatch/pkg/command"
)

// outSize is how many bytes of events are collected before one write.
const outSize = 64 << 10

// output is the one way fastparse writes, for whole files and followed
// ones alike: events to stdout, each record whole in one write (many
// records to a write), diagnostics to stderr, a line each. Several
// followed files share it.
type output struct {
	mu      sync.Mutex
	w       io.Writer
	diag    command.Diag
	buf     []byte // whole events not written yet
	skipped int    // lines skipped
}

func newOutput(w io.Writer, diag command.Diag) *output {
	return &output{w: w, diag: diag}
}

// write takes what a worker produced: events (whole lines), diagnostics
// (whole lines, written at once) and the count of lines skipped. The
// events are collected up to outSize; with flush they are all written
// now (the input has nothing more for the moment).
func (o *output) write(events, diags []byte, skipped int, flush bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.skipped += skipped
	if len(diags) > 0 {
		o.diag.W.Write(diags)
	}
	if len(o.buf) == 0 && (flush || len(events) >= outSize) {
		// nothing collected: no copy
		return o.send(events)
	}
	if len(o.buf)+len(events) > outSize {
		if err := o.send(o.buf); err != nil {
			return err
		}
		o.buf = o.buf[:0]
	}
	o.buf = append(o.buf, events...)
	if flush || len(o.buf) >= outSize {
		err := o.send(o.buf)
		o.buf = o.buf[:0]
		return err
	}
	return nil
}

// flush writes the events collected.
func (o *output) flush() error {
	return o.write(nil, nil, 0, true)
}

func (o *output) send(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := o.w.Write(b)
	return err
}

// note writes one diagnostic line, "fastparse: " and the message.
func (o *output) note(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.diag.Printf(format, args...)
}
