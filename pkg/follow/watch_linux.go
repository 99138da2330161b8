//go:build linux

package follow

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A Watcher wakes followers as soon as the kernel says their files were
// written, created, renamed or deleted (inotify), so a new line is read in
// well under a millisecond instead of at the next poll. Polling stays the
// fallback: inotify says nothing about files on network filesystems, and
// a watch can be lost (its folder deleted, the queue overflowing).
//
// It watches each file's folder, not the file: a folder's watch sees the
// file being replaced by rotation, and writes to the rotated-away file
// (FILE.1, FILE-20240101: any name that begins with FILE's), which a
// follower still reads until it is quiet.
type Watcher struct {
	f *os.File // the inotify instance, non-blocking: Close ends Run's read

	mu   sync.Mutex
	dirs map[int][]watch // watch descriptor -> files in that folder
}

type watch struct {
	base string
	wake chan<- struct{}
}

// NewWatcher returns a Watcher; start Run in a goroutine of its own.
func NewWatcher() (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	return &Watcher{f: os.NewFile(uintptr(fd), "inotify"), dirs: make(map[int][]watch)}, nil
}

const watchMask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_MOVED_TO |
	unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_ATTRIB

// Add makes a change to path (or to a file whose name begins with path's)
// send on wake, without blocking: wake should have room for one.
func (w *Watcher) Add(path string, wake chan<- struct{}) error {
	dir := filepath.Dir(path)
	sc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	var wd int
	var aerr error
	if err := sc.Control(func(fd uintptr) {
		wd, aerr = unix.InotifyAddWatch(int(fd), dir, watchMask)
	}); err != nil {
		return err
	}
	if aerr != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: dir, Err: aerr}
	}
	w.mu.Lock()
	w.dirs[wd] = append(w.dirs[wd], watch{base: filepath.Base(path), wake: wake})
	w.mu.Unlock()
	return nil
}

// Run reads the kernel's events and wakes the followers concerned until
// Close.
func (w *Watcher) Run() {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.wakeAll() // the poll carries on alone
			}
			return
		}
		w.dispatch(buf[:n])
	}
}

func (w *Watcher) dispatch(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(b) >= unix.SizeofInotifyEvent {
		// struct inotify_event: wd, mask, cookie, len, name[len]
		wd := int(int32(binary.NativeEndian.Uint32(b[0:])))
		mask := binary.NativeEndian.Uint32(b[4:])
		end := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(b[12:]))
		if end > len(b) {
			return
		}
		name := strings.TrimRight(string(b[unix.SizeofInotifyEvent:end]), "\x00")
		b = b[end:]
		if mask&unix.IN_Q_OVERFLOW != 0 {
			w.wakeAllLocked()
			continue
		}
		for _, wt := range w.dirs[wd] {
			if name == "" || strings.HasPrefix(name, wt.base) {
				poke(wt.wake)
			}
		}
	}
}

func (w *Watcher) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wakeAllLocked()
}

func (w *Watcher) wakeAllLocked() {
	for _, ws := range w.dirs {
		for _, wt := range ws {
			poke(wt.wake)
		}
	}
}

func poke(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Close stops the Watcher; Run returns.
func (w *Watcher) Close() error { return w.f.Close() }
