package fastparse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"

	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// files reads each FILE (or stdin) to its end.
func (s *stage) files(ctx context.Context, names []string, stdin io.Reader) error {
	if len(names) == 0 {
		names = []string{"-"}
	}
	for _, name := range names {
		if ctx.Err() != nil {
			return nil
		}
		var err error
		if name == "-" {
			err = s.read(ctx, stdin, "stdin")
		} else {
			var f *os.File
			if f, err = openInput(name); err != nil {
				return err
			}
			err = s.read(ctx, f, name)
			f.Close()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// openInput opens a FILE argument. A folder is refused at once, in one
// clear line (read(2) would say "is a directory" at the first read, after
// the name twice).
func openInput(name string) (*os.File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: is a directory, not a log file", name)
	}
	return f, nil
}

// A batch is a run of input lines parsed by one worker. Lines are cut by
// the reading goroutine, batches parsed in parallel and written in order,
// so fastparse uses every core of a small machine on a big replay.
type batch struct {
	text  []byte
	lines []lineRef
	out   []byte // encoded events
	errs  []byte // diagnostics
	skip  int    // lines skipped
	fatal bool   // --strict stops after this batch
	ready chan struct{}
}

type lineRef struct {
	start, end int
	num        int64
	tooLong    int // > 0: a line of this size was skipped
}

const (
	batchLines = 512
	batchBytes = 128 << 10
)

// read parses r to its end (a last line without newline included).
func (s *stage) read(ctx context.Context, r io.Reader, name string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rd := record.NewReader(cancelable(ctx, r), s.maxLine)

	n := runtime.GOMAXPROCS(0)
	work := make(chan *batch, n)
	order := make(chan *batch, 2*n)
	free := make(chan *batch, 3*n+1)
	for i := 0; i < n; i++ {
		go func(w *worker) {
			for b := range work {
				w.batch(b, name)
				b.ready <- struct{}{}
			}
		}(s.newWorker(name))
	}
	// The writer: batches in input order, each written at once (a batch
	// ends where the input had nothing more buffered, so a slow pipe's
	// lines are never held back).
	werr := make(chan error, 1)
	go func() {
		var err error
		for b := range order {
			<-b.ready
			if err == nil {
				// A batch is whole records: one write each, unbuffered, so
				// nothing waits for more input.
				s.skipped += b.skip
				if len(b.errs) > 0 {
					s.stderr.Write(b.errs)
				}
				if len(b.out) > 0 {
					_, err = s.stdout.Write(b.out)
				}
				if err == nil && b.fatal {
					err = exitcode.Reported(exitcode.DataErr)
				}
				if err != nil {
					cancel() // stop reading
				}
			}
			select {
			case free <- b:
			default:
			}
		}
		werr <- err
	}()

	rerr := s.cut(ctx, rd, name, work, order, free)
	close(work)
	close(order)
	if err := <-werr; err != nil {
		return err
	}
	return rerr
}

// cut reads lines into batches and hands them to the workers and, in the
// same order, to the writer.
func (s *stage) cut(ctx context.Context, rd *record.Reader, name string, work, order, free chan *batch) error {
	var b *batch
	send := func() {
		order <- b
		work <- b
		b = nil
	}
	for {
		if b == nil {
			select {
			case b = <-free:
				b.text, b.lines = b.text[:0], b.lines[:0]
			default:
				b = &batch{ready: make(chan struct{}, 1)}
			}
		}
		line, err := rd.ReadLine()
		long, _ := err.(*record.LineTooLongError)
		switch {
		case err == nil:
			b.lines = append(b.lines, lineRef{start: len(b.text), end: len(b.text) + len(line), num: int64(rd.Line())})
			b.text = append(b.text, line...)
		case errors.Is(err, io.EOF):
			if len(b.lines) > 0 {
				send()
			}
			return nil
		case long != nil:
			b.lines = append(b.lines, lineRef{num: int64(long.Line), tooLong: long.Size})
		default:
			if len(b.lines) > 0 {
				send()
			}
			if ctx.Err() != nil {
				return nil // SIGTERM, or the writer stopped: it says why
			}
			return readError(name, err)
		}
		if len(b.lines) >= batchLines || len(b.text) >= batchBytes || rd.Buffered() == 0 {
			send()
			if ctx.Err() != nil {
				return nil
			}
		}
	}
}

// batch parses the lines of b.
func (w *worker) batch(b *batch, name string) {
	w.out, w.errs, w.skipped = b.out[:0], b.errs[:0], 0
	b.fatal = false
	for _, l := range b.lines {
		var fatal bool
		if l.tooLong > 0 {
			fatal = w.tooLong(name, l.num)
		} else {
			fatal = w.line(b.text[l.start:l.end], name, l.num, false)
		}
		if fatal {
			b.fatal = true
			break
		}
	}
	b.out, b.errs, b.skip = w.out, w.errs, w.skipped
}

// readError says that reading name failed, naming it once: an
// *fs.PathError already names the file.
func readError(name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("read %s: %w", name, err)
}
