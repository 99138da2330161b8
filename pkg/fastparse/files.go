package fastparse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"

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
	record.LineBatch
	out   []byte // encoded events
	errs  []byte // diagnostics
	skip  int    // lines skipped
	fatal bool   // --strict stops after this batch
	ready chan struct{}
}

// batchLines is the most lines in a batch.
const batchLines = 512

// read parses r to its end (a last line without newline included).
func (s *stage) read(ctx context.Context, r io.Reader, name string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := cancelable(ctx, r)
	format := s.format
	if format == formatAuto {
		format, in = peekFormat(in)
	}
	lines := record.NewBatchReader(in, s.maxLineFor(format), batchLines)

	n := runtime.GOMAXPROCS(0)
	work := make(chan *batch, n)
	order := make(chan *batch, 2*n)
	free := make(chan *batch, 3*n+1)
	var workers sync.WaitGroup
	for range n {
		w := s.newWorker(name)
		w.format, w.maxLine = format, s.maxLineFor(format)
		workers.Add(1)
		go func() {
			defer workers.Done()
			defer s.addOther(&w.eve)
			for b := range work {
				w.batch(b, name)
				b.ready <- struct{}{}
			}
		}()
	}
	werr := make(chan error, 1)
	go func() { werr <- s.writeBatches(order, free, cancel) }()

	rerr := s.cut(ctx, lines, name, work, order, free)
	close(work)
	close(order)
	defer workers.Wait() // their counts are in before the summary
	if err := <-werr; err != nil {
		return err
	}
	return rerr
}

// writeBatches is the writing goroutine: batches in input order, each
// written at once (a batch ends where the input had nothing more
// buffered, so a slow pipe's lines are never held back). A failed write
// or --strict's stop cancels the reading.
func (s *stage) writeBatches(order <-chan *batch, free chan<- *batch, cancel func()) error {
	var err error
	for b := range order {
		<-b.ready
		if err == nil {
			err = s.out.write(b.out, b.errs, b.skip, true)
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
	return err
}

// cut reads lines into batches and hands them to the workers and, in the
// same order, to the writer.
func (s *stage) cut(ctx context.Context, lines *record.BatchReader, name string, work, order chan<- *batch, free <-chan *batch) error {
	for {
		var b *batch
		select {
		case b = <-free:
		default:
			b = &batch{ready: make(chan struct{}, 1)}
		}
		err := lines.Read(&b.LineBatch)
		if len(b.Lines) > 0 {
			order <- b
			work <- b
		}
		switch {
		case err == io.EOF:
			return nil
		case ctx.Err() != nil:
			return nil // SIGTERM, or the writer stopped: it says why
		case err != nil:
			return readError(name, err)
		}
	}
}

// batch parses the lines of b.
func (w *worker) batch(b *batch, name string) {
	w.out, w.errs, w.skipped = b.out[:0], b.errs[:0], 0
	b.fatal = false
	for i, l := range b.Lines {
		var fatal bool
		if l.TooLong > 0 {
			fatal = w.tooLong(name, int64(l.Num))
		} else {
			fatal = w.line(b.Text(i), name, int64(l.Num), false)
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
