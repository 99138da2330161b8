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
	// bbolt uses the valid meta page with the higher transaction id.
	var use meta
	switch {
	case err0 == nil && (err1 != nil || m0.txid >= m1.txid):
		use = m0
	case err1 == nil:
		use = m1
	default:
		if errors.Is(err0, io.EOF) || errors.Is(err1, io.EOF) {
			return &DamageError{Err: errors.New("file cut short")}
		}
		return &DamageError{Err: err0}
	}
	if err := use.fits(size); err != nil {
		return &DamageError{Err: err}
	}
	if err := (&walker{f: f, m: use, seen: map[uint64]bool{}}).check(); err != nil {
		return &DamageError{Err: err}
	}
	return nil
}

// walker checks the page tree bbolt will walk, reading the file (no
// memory map): every page inside the file, of the kind expected, used
// once (a cycle would make bbolt recurse until the stack overflows, which
// no recover catches), and every element inside its page.
type walker struct {
	f    *os.File
	m    meta
	seen map[uint64]bool
}

const (
	branchFlag   = 0x01
	leafFlag     = 0x02
	freelistFlag = 0x10
	bucketFlag   = 0x01
	elemSize     = 16
)

// page reads page id with its overflow pages.
func (w *walker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= w.m.high {
		return nil, fmt.Errorf("page %d outside the file", id)
	}
	if w.seen[id] {
		return nil, fmt.Errorf("page %d used twice", id)
	}
	w.seen[id] = true
	ps := uint64(w.m.pageSize)
	head := make([]byte, pageHeader)
	if _, err := w.f.ReadAt(head, int64(id*ps)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	le := binary.LittleEndian
	if le.Uint64(head) != id {
		return nil, fmt.Errorf("page %d identifies as %d", id, le.Uint64(head))
	}
	over := uint64(le.Uint32(head[12:]))
	if id+over >= w.m.high {
		return nil, fmt.Errorf("page %d runs past the file", id)
	}
	for i := id + 1; i <= id+over; i++ {
		w.seen[i] = true
	}
	b := make([]byte, (over+1)*ps)
	if _, err := w.f.ReadAt(b, int64(id*ps)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return b, nil
}

func (w *walker) check() error {
	if w.m.freelist != noFreelist {
		b, err := w.page(w.m.freelist)
		if err != nil {
			return fmt.Errorf("freelist: %w", err)
		}
		le := binary.LittleEndian
		if le.Uint16(b[8:]) != freelistFlag {
			return errors.New("freelist: not a freelist page")
		}
		count, idx := uint64(le.Uint16(b[10:])), uint64(0)
		if count == 0xFFFF {
			if len(b) < pageHeader+8 {
				return errors.New("freelist: cut short")
			}
			count, idx = le.Uint64(b[pageHeader:]), 1
		}
		if (idx+count)*8 > uint64(len(b)-pageHeader) {
			return errors.New("freelist: runs past its page")
		}
		for i := idx; i < idx+count; i++ {
			if id := le.Uint64(b[pageHeader+8*i:]); id < 2 || id >= w.m.high {
				return fmt.Errorf("freelist: page %d outside the file", id)
			}
		}
	}
	return w.tree(w.m.root, nil, 0)
}

// tree checks the node at page id (or, if inline is set, the inline page)
// and everything below it.
func (w *walker) tree(id uint64, inline []byte, depth int) error {
	if depth > 64 {
		return errors.New("tree too deep")
	}
	b := inline
	if b == nil {
		var err error
		if b, err = w.page(id); err != nil {
			return err
		}
	}
	if len(b) < pageHeader {
		return errors.New("inline bucket cut short")
	}
	le := binary.LittleEndian
	flags, count := le.Uint16(b[8:]), int(le.Uint16(b[10:]))
	if pageHeader+count*elemSize > len(b) {
		return fmt.Errorf("page %d: %d elements do not fit", id, count)
	}
	for i := range count {
		e := b[pageHeader+i*elemSize:]
		off := pageHeader + i*elemSize
		switch flags {
		case branchFlag:
			pos, ksize := int(le.Uint32(e)), int(le.Uint32(e[4:]))
			if off+pos+ksize > len(b) || pos < 0 {
				return fmt.Errorf("page %d: key past the page", id)
			}
			if err := w.tree(le.Uint64(e[8:]), nil, depth+1); err != nil {
				return err
			}
		case leafFlag:
			eflags, pos, ksize, vsize := le.Uint32(e), int(le.Uint32(e[4:])), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
			if pos < 0 || off+pos+ksize+vsize > len(b) {
				return fmt.Errorf("page %d: element past the page", id)
			}
			if eflags&bucketFlag == 0 {
				continue
			}
			v := b[off+pos+ksize : off+pos+ksize+vsize]
			if len(v) < 16 {
				return fmt.Errorf("page %d: bucket value cut short", id)
			}
			var err error
			if root := le.Uint64(v); root == 0 {
				err = w.tree(0, v[16:], depth+1)
			} else {
				err = w.tree(root, nil, depth+1)
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("page %d: not a branch or leaf page", id)
		}
	}
	if count == 0 && flags != leafFlag && flags != branchFlag {
		return fmt.Errorf("page %d: not a branch or leaf page", id)
	}
	return nil
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
