package banstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"syscall"
	"time"
)

// DamageError says the state file cannot be read as a state file: its
// bytes are wrong (cut short, overwritten, not a bbolt file), as opposed to
// an error of the system (permissions, a full disk).
type DamageError struct{ Err error }

func (e *DamageError) Error() string { return e.Err.Error() }
func (e *DamageError) Unwrap() error { return e.Err }

// IsDamage reports whether err says the file's content is damaged.
func IsDamage(err error) bool {
	var d *DamageError
	return errors.As(err, &d)
}

// guard runs fn, turning a panic (bbolt panics on pages it cannot make
// sense of) and a memory fault (a read past the end of a file cut short
// faults in bbolt's memory map) into a DamageError. Faults become panics
// only in the goroutine that set SetPanicOnFault, which is this one.
func guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = &DamageError{Err: fmt.Errorf("unreadable: %v", r)}
		}
	}()
	return fn()
}

// bbolt's meta page, as laid out in the file (go.etcd.io/bbolt's
// internal/common.Meta after a 16-byte page header).
const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2
	pageHeader  = 16
	metaSize    = 64 // up to and with the checksum
	noFreelist  = ^uint64(0)
)

type meta struct {
	pageSize             uint32
	root, freelist, high uint64
	txid                 uint64
}

// readMeta decodes and checks one meta page at off.
func readMeta(f *os.File, off int64) (meta, error) {
	b := make([]byte, pageHeader+metaSize)
	if _, err := f.ReadAt(b, off); err != nil {
		return meta{}, err
	}
	b = b[pageHeader:]
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(b[:56])
	switch {
	case le.Uint32(b[0:]) != boltMagic:
		return meta{}, errors.New("not a state file (no bbolt magic number)")
	case le.Uint32(b[4:]) != boltVersion:
		return meta{}, errors.New("bbolt version mismatch")
	case le.Uint64(b[56:]) != h.Sum64():
		return meta{}, errors.New("meta page checksum mismatch")
	}
	return meta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]),
		high: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}, nil
}

// precheck looks at the file's meta pages before bbolt maps it: at least
// one must be intact and describe a file no longer than the file is (a
// file cut short would otherwise fault inside bbolt). A missing or empty
// file is fine: bbolt makes a new one.
func precheck(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("not a regular file")
	}
	m0, err0 := readMeta(f, 0)
	second := int64(os.Getpagesize())
	if err0 == nil {
		second = int64(m0.pageSize)
	}
	m1, err1 := readMeta(f, second)
	var errs []error
	for _, c := range []struct {
		m   meta
		err error
	}{{m0, err0}, {m1, err1}} {
		if c.err == nil {
			c.err = c.m.fits(size)
		}
		if c.err == nil {
			return nil
		}
		if !errors.Is(c.err, io.EOF) {
			errs = append(errs, c.err)
		} else {
			errs = append(errs, errors.New("file cut short"))
		}
	}
	return &DamageError{Err: errors.Join(errs...)}
}

func (m meta) fits(size int64) error {
	if m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		return fmt.Errorf("bad page size %d", m.pageSize)
	}
	pages := uint64(size) / uint64(m.pageSize)
	if m.high > pages || m.high < 4 {
		return fmt.Errorf("file cut short: %d pages of %d", pages, m.high)
	}
	if m.root < 2 || m.root >= m.high || (m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.high)) {
		return errors.New("meta page points outside the file")
	}
	return nil
}

// isSystem reports whether err comes from the system rather than from the
// file's content.
func isSystem(err error) bool {
	var pe *fs.PathError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &errno)
}

// lockFree reports whether no other process holds path (bbolt's flock),
// waiting at most wait; a file in use is never moved aside.
func lockFree(path string, wait time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return ErrLocked
		}
		time.Sleep(10 * time.Millisecond)
	}
}
