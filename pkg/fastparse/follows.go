package fastparse

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/quietwatch/quietwatch/pkg/follow"
)

// followAll follows each FILE in a goroutine of its own (Suricata 8's
// threaded eve.json is one file per thread); events go to stdout as they
// come, each with one write of its whole line. A follower wakes when the
// kernel says its file changed (inotify), on SIGHUP, and at each poll.
func (s *stage) followAll(ctx context.Context, names []string, posFile string, fromStart bool, poll time.Duration, wake <-chan struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wakes := make([]chan struct{}, len(names))
	for i := range wakes {
		wakes[i] = make(chan struct{}, 1)
	}
	if wt, err := follow.NewWatcher(); err != nil {
		s.note("%v: polling every %v only", err, poll)
	} else {
		defer wt.Close()
		for i, name := range names {
			if err := wt.Add(name, wakes[i]); err != nil {
				s.note("%v: polling %s every %v only", err, name, poll)
			}
		}
		go wt.Run()
	}
	go func() { // SIGHUP wakes every follower
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-wake:
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

// note writes one diagnostic line.
func (s *stage) note(format string, args ...any) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	fmt.Fprintf(s.stderr, "fastparse: "+format+"\n", args...)
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
