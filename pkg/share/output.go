package share

import (
	"sync"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// output is stdout, shared by the local records and the peers' ones: each
// record is one whole line, and a peer's is flushed at once.
type output struct {
	mu   sync.Mutex
	w    *record.Writer
	err  error
	fail chan struct{} // closed on the first write error
}

func newOutput(w *record.Writer) *output { return &output{w: w, fail: make(chan struct{})} }

func (o *output) setErr(err error) {
	if o.err == nil {
		o.err = err
		close(o.fail)
	}
}

// local writes a record of the local pipeline; flush when the input has
// nothing more buffered.
func (o *output) local(line []byte, flush bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	if err := o.w.WriteLine(line); err != nil {
		o.setErr(err)
		return err
	}
	if flush {
		if err := o.w.Flush(); err != nil {
			o.setErr(err)
			return err
		}
	}
	return nil
}

func (o *output) peer(line []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return
	}
	if err := o.w.WriteLine(line); err != nil {
		o.setErr(err)
		return
	}
	if err := o.w.Flush(); err != nil {
		o.setErr(err)
	}
}

func (o *output) flush() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	if err := o.w.Flush(); err != nil {
		o.setErr(err)
	}
	return o.err
}
