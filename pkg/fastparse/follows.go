package fastparse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/follow"
)

// followAll follows each FILE in a goroutine of its own (Suricata 8's
// threaded eve.json is one file per thread); events go to stdout as they
// come, each with one write of its whole line. A follower wakes when the
// kernel says its file changed (inotify), on SIGHUP, and at each poll.
func (s *stage) followAll(ctx context.Context, names []string, posFile string, fromStart bool, poll time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wakes := make([]chan struct{}, len(names))
	for i := range wakes {
		wakes[i] = make(chan struct{}, 1)
	}
	if wt, err := follow.NewWatcher(); err != nil {
		s.out.note("%v: polling every %v only", err, poll)
	} else {
		defer wt.Close()
		for i, name := range names {
			if err := wt.Add(name, wakes[i]); err != nil {
				s.out.note("%v: polling %s every %v only", err, name, poll)
			}
		}
		go wt.Run()
	}
	go func() { // SIGHUP wakes every follower
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-s.e.Hup:
				if !ok {
					return
				}
				for _, c := range wakes {
					select {
					case c <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	if len(names) == 1 {
		return s.follow(ctx, names[0], posFile, fromStart, poll, wakes[0])
	}
	errs := make(chan error, len(names))
	for i, name := range names {
		pf := ""
		if posFile != "" {
			pf = posFile + "." + filepath.Base(name)
		}
		go func() {
			err := s.follow(ctx, name, pf, fromStart, poll, wakes[i])
			if err != nil {
				cancel() // the others stop as on SIGTERM: flushed, saved
			}
			errs <- err
		}()
	}
	var first error
	for range names {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// follow follows one file until ctx is done, one line at a time: a live
// log is slow, and catching up after a restart is still fast enough.
func (s *stage) follow(ctx context.Context, name, posFile string, fromStart bool, poll time.Duration, wake <-chan struct{}) error {
	f, err := s.openFollowed(name, posFile, fromStart)
	if err != nil {
		return err
	}
	defer f.fl.Close()
	defer s.addOther(&f.w.eve)
	return f.run(ctx, poll, wake)
}

// follower is one followed file: its reader, its parser, and the
// position last saved.
type follower struct {
	s        *stage
	fl       *follow.Follower
	w        *worker
	name     string
	posFile  string // "": no --position
	format   int    // formatAuto until the first line that is not blank
	last     *follow.Position
	lastSave time.Time
	now      func() time.Time
}

// openFollowed checks FILE and the position file's folder, loads the
// saved position and opens FILE at it.
func (s *stage) openFollowed(name, posFile string, fromStart bool) (*follower, error) {
	fl := &follow.Follower{Path: name, MaxLine: s.maxLine, Notify: func(m string) { s.out.note("%s", m) }}
	if err := checkFollowed(name); err != nil {
		return nil, err
	}
	format := s.format
	if format == formatAuto {
		format = fileFormat(name)
	}
	fl.MaxLine = s.maxLineFor(format)
	if posFile != "" {
		if err := checkPositionDir(posFile); err != nil {
			return nil, err
		}
	}
	saved := s.loadPosition(posFile)
	if err := fl.Open(saved, fromStart); err != nil {
		return nil, err
	}
	w := s.newWorker(name)
	w.format, w.maxLine = format, fl.MaxLine
	now := s.e.Clock()
	return &follower{s: s, fl: fl, w: w, name: name, posFile: posFile, format: format, last: saved, lastSave: now(), now: now}, nil
}

// loadPosition returns the position saved in posFile, nil without one
// (a damaged one is reported and ignored).
func (s *stage) loadPosition(posFile string) *follow.Position {
	if posFile == "" {
		return nil
	}
	p, ok, err := follow.LoadPosition(posFile)
	switch {
	case err != nil:
		s.out.note("%v: ignored, starting as without one", err)
	case ok:
		return &p
	}
	return nil
}

// run takes the file's lines as they come until ctx is done.
func (f *follower) run(ctx context.Context, poll time.Duration, wake <-chan struct{}) error {
	done := ctx.Done()
	for n := 1; ; n++ {
		l, err := f.fl.Next()
		if errors.Is(err, follow.ErrNoData) {
			if err := f.save(); err != nil {
				return err
			}
			if f.fl.Wait(ctx, poll, wake) != nil {
				return f.stop() // SIGTERM: everything written is flushed and saved
			}
			continue
		}
		if err != nil {
			if serr := f.save(); serr != nil {
				return serr
			}
			return readError(f.name, err)
		}
		if err := f.take(l); err != nil {
			return err
		}
		select {
		case <-done:
			return f.stop()
		default:
		}
		// While catching up there is no pause to save in: save every
		// second or so.
		if n%4096 == 0 && f.now().Sub(f.lastSave) > time.Second {
			if err := f.save(); err != nil {
				return err
			}
		}
	}
}

// take parses one line and writes what came of it; when --strict met a
// bad line, it saves the position and returns exit 65.
func (f *follower) take(l follow.Line) error {
	w := f.w
	var fatal bool
	if l.TooLong > 0 {
		fatal = w.tooLong(l.Name, l.Num)
	} else {
		fatal = w.line(l.Text, l.Name, l.Num, l.Torn)
	}
	err := f.s.out.write(w.out, w.errs, w.skipped, false)
	w.out, w.errs, w.skipped = w.out[:0], w.errs[:0], 0
	if f.format == formatAuto && w.format != formatAuto {
		// the first line said what the file is
		f.format = w.format
		f.fl.MaxLine = f.s.maxLineFor(f.format)
		w.maxLine = f.fl.MaxLine
	}
	if err != nil {
		return err
	}
	if fatal {
		f.save()
		return exitcode.Reported(exitcode.DataErr)
	}
	return nil
}

// save flushes the events written and saves the position, if it moved.
func (f *follower) save() error {
	if err := f.s.out.flush(); err != nil {
		return err
	}
	if f.posFile == "" {
		return nil
	}
	pos := f.fl.Position()
	if f.last != nil && pos.Equal(*f.last) {
		return nil
	}
	if err := follow.SavePosition(f.posFile, pos); err != nil {
		return err
	}
	f.last, f.lastSave = &pos, f.now()
	return nil
}

// stop ends a run on SIGTERM. A file that is no longer FILE (deleted, or
// rotated away: a restart might not find it again) is read to its end
// first, and the position saved is then the next file's start: else the
// lines not read yet in it could be lost.
func (f *follower) stop() error {
	if f.fl.Drain() {
		for {
			l, err := f.fl.Next()
			if errors.Is(err, follow.ErrNoData) {
				break
			}
			if err != nil {
				f.save()
				return readError(f.name, err)
			}
			if err := f.take(l); err != nil {
				return err
			}
		}
	}
	return f.save()
}

// fileFormat decides the format of the file at name by its first bytes
// that are not blank; formatAuto if it is missing or has none yet (its
// first line decides then).
func fileFormat(name string) int {
	if fi, err := os.Stat(name); err != nil || !fi.Mode().IsRegular() {
		return formatAuto // a FIFO's open would wait for a writer
	}
	f, err := os.Open(name)
	if err != nil {
		return formatAuto
	}
	defer f.Close()
	format, _ := peekFormat(io.LimitReader(f, 64<<10))
	return format
}

// checkFollows refuses several -f that would share a position file.
func checkFollows(names []string) error {
	seen := make(map[string]string)
	for _, n := range names {
		b := filepath.Base(n)
		if prev, ok := seen[b]; ok {
			return fmt.Errorf("-f %s and -f %s: several followed files need different names (each keeps its position in POSFILE.<name>)", prev, n)
		}
		seen[b] = n
	}
	return nil
}
