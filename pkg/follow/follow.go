// Package follow reads a growing log file the way tail -F does, for a
// daemon that must not lose or repeat a line: it returns complete lines
// only, keeps reading across rename rotation, copytruncate, deletion and
// re-creation, and gives a Position that a restart resumes from exactly,
// even when the file was rotated while nothing was running.
//
// It polls: the caller asks for lines with Next until ErrNoData, then
// sleeps in Wait (the poll interval, or less when woken, e.g. on SIGHUP).
package follow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrNoData is returned by Next when no complete line is available yet.
var ErrNoData = errors.New("no complete line yet")

// DefaultMaxLine is the longest line Next returns by default.
const DefaultMaxLine = 1 << 20

// Line is one line of the followed file.
type Line struct {
	Text    []byte // without its line ending; valid until the next call to Next
	Name    string // the file it came from, for diagnostics
	Num     int64  // 1-based line number in that file
	TooLong int    // > 0: the line had this many bytes, more than MaxLine; Text is nil
	Torn    bool   // the line has no newline: it ended a file that was rotated away
}

// Follower follows the file at Path. Set the exported fields, then Open.
type Follower struct {
	Path    string
	MaxLine int              // longest line returned; 0 means DefaultMaxLine
	Notify  func(msg string) // told when lines may have been lost; may be nil

	f        *os.File
	name     string
	copyMode bool // f is a static copy: at its end, go on with Path from the start
	pos      Position
	buf      []byte // contiguous bytes of f ending at readOff; buf[r:w] not consumed yet
	r, w     int
	readOff  int64
	// head is the first bytes of f (up to TailSize), taken once f had
	// them: a file truncated and written again to its old size or past it
	// shows by its start even when its lines all end alike (eve.json).
	head     []byte
	skip     int    // bytes of an over-long line skipped so far
	skipTail []byte // the consumed tail when the skipping started

	checked    bool     // the file was checked for rotation since the last Wait
	next       *os.File // the new file at Path; switch to it once f has been quiet
	quietOff   int64    // readOff when the new file was seen
	switchNext bool     // the torn end of the old file was returned: switch now
	goneTold   bool
	draining   bool // stopping: read f to its end, switch, then no more
}

func (fl *Follower) notify(format string, args ...any) {
	if fl.Notify != nil {
		fl.Notify(fmt.Sprintf(format, args...))
	}
}

func (fl *Follower) maxLine() int {
	if fl.MaxLine > 0 {
		return fl.MaxLine
	}
	return DefaultMaxLine
}

// Open starts following. With a saved position it resumes there (finding
// the file by device and inode if it was rotated away meanwhile, and the
// copy if it was truncated); without one it starts after the last complete
// line of the file, or at its start if fromStart. A file that does not
// exist yet is read from its start once it appears.
func (fl *Follower) Open(saved *Position, fromStart bool) error {
	if fl.buf == nil {
		fl.buf = make([]byte, 64<<10)
	}
	if saved != nil {
		return fl.resume(*saved)
	}
	f, err := os.Open(fl.Path)
	if errors.Is(err, fs.ErrNotExist) {
		fl.notify("%s does not exist yet: waiting for it", fl.Path)
		return nil
	}
	if err != nil {
		return err
	}
	var off, lines int64
	if !fromStart {
		if off, lines, err = endOfLastLine(f); err != nil {
			f.Close()
			return err
		}
	}
	return fl.start(f, fl.Path, off, lines, false)
}

func (fl *Follower) resume(saved Position) error {
	if fi, err := os.Stat(fl.Path); err == nil {
		if dev, ino := fileID(fi); dev == saved.Dev && ino == saved.Ino {
			f, err := os.Open(fl.Path)
			if err != nil {
				return err
			}
			if fi.Size() >= saved.Offset && tailMatches(f, saved.Offset, saved.Tail) {
				return fl.start(f, fl.Path, saved.Offset, saved.Line, false)
			}
			// Truncated while we were stopped (copytruncate): the rest of
			// what we had not read is in the copy, if there is one.
			fl.pos = saved
			fl.f = f
			return fl.truncated(saved.Tail)
		}
	}
	// Path is another file now (or none): the saved one was rotated away.
	if name, f := findByID(fl.Path, saved.Dev, saved.Ino); f != nil {
		if fi, err := f.Stat(); err == nil && fi.Size() >= saved.Offset && tailMatches(f, saved.Offset, saved.Tail) {
			return fl.start(f, name, saved.Offset, saved.Line, false)
		}
		f.Close()
	}
	if saved.Offset > 0 {
		fl.notify("%s: the file of the saved position is gone; reading %s from its start (lines written to the old file after the last run are lost)", fl.Path, fl.Path)
	}
	return fl.openPath()
}

// start makes f the current file, to be read from off (just after a
// complete line), with the bytes before off in the buffer as the tail.
func (fl *Follower) start(f *os.File, name string, off, lines int64, copyMode bool) error {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if fl.f != nil && fl.f != f {
		fl.f.Close()
	}
	if fl.next != nil && fl.next != f {
		fl.next.Close()
	}
	fl.next = nil
	dev, ino := fileID(fi)
	fl.f, fl.name, fl.copyMode = f, name, copyMode
	fl.pos = Position{Dev: dev, Ino: ino, Offset: off, Line: lines}
	fl.r, fl.w, fl.skip, fl.skipTail = 0, 0, 0, nil
	fl.switchNext = false
	fl.head = fl.head[:0]
	k := int64(TailSize)
	if off < k {
		k = off
	}
	if k > 0 {
		n, err := f.ReadAt(fl.buf[:k], off-k)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		fl.r, fl.w = n, n
	}
	fl.readOff = off
	return nil
}

// openPath opens Path from its start, or leaves no file open if it does
// not exist (Next opens it when it appears).
func (fl *Follower) openPath() error {
	f, err := os.Open(fl.Path)
	if errors.Is(err, fs.ErrNotExist) {
		if fl.f != nil {
			fl.f.Close()
			fl.f = nil
			// f was read to its end: what comes next is Path from its
			// start, whenever it appears.
			fl.pos = Position{}
			fl.r, fl.w, fl.skip, fl.skipTail = 0, 0, 0, nil
		}
		return nil
	}
	if err != nil {
		return err
	}
	fl.goneTold = false
	return fl.start(f, fl.Path, 0, 0, false)
}

// switchFile goes on with the next file: the one seen at Path after a
// rotation, or Path from its start.
func (fl *Follower) switchFile() error {
	if next := fl.next; next != nil && !fl.copyMode {
		fl.next = nil
		return fl.start(next, fl.Path, 0, 0, false)
	}
	return fl.openPath()
}

// Position returns how far the lines returned so far reach.
func (fl *Follower) Position() Position {
	p := fl.pos
	if fl.skip > 0 {
		p.Tail = append([]byte(nil), fl.skipTail...)
	} else {
		p.Tail = append([]byte(nil), fl.consumedTail()...)
	}
	return p
}

func (fl *Follower) consumedTail() []byte {
	k := fl.r
	if k > TailSize {
		k = TailSize
	}
	return fl.buf[fl.r-k : fl.r]
}

// Drain prepares a stop. If the file being read is no longer the one at
// Path (deleted, or renamed by a rotation, or a copytruncate copy), a
// restart might not find it again (a deleted file has no name; logrotate
// compresses a renamed one, and a copy, soon), and the lines in it not
// read yet would be lost. Then Drain returns true, and Next returns the
// rest of that file (its partial last line as torn), switches to the file
// now at Path without reading it, and returns ErrNoData: the Position is
// then that new file's start (or nothing, if there is none yet). Lines the
// writer adds to the old file after that are not read: the writer stops
// writing to a rotated file within moments (it reopens its log on
// logrotate's signal). Otherwise Drain returns false and changes nothing.
func (fl *Follower) Drain() bool {
	if fl.f == nil || fl.atPath() {
		return false
	}
	fl.draining = true
	return true
}

// atPath reports whether the file being read is the one at Path.
func (fl *Follower) atPath() bool {
	fi, err := os.Stat(fl.Path)
	if err != nil {
		return false
	}
	dev, ino := fileID(fi)
	return dev == fl.pos.Dev && ino == fl.pos.Ino
}

// Close closes the file being read.
func (fl *Follower) Close() error {
	if fl.next != nil {
		fl.next.Close()
		fl.next = nil
	}
	if fl.f == nil {
		return nil
	}
	err := fl.f.Close()
	fl.f = nil
	return err
}

// Wait sleeps until the poll interval d has passed, wake delivers, or ctx
// is done (then it returns ctx's error).
func (fl *Follower) Wait(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	fl.checked = false
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-wake:
	}
	return nil
}

// Next returns the next complete line, or ErrNoData when there is none yet.
func (fl *Follower) Next() (Line, error) {
	for {
		if fl.switchNext {
			if err := fl.switchFile(); err != nil {
				return Line{}, err
			}
			if fl.draining {
				fl.draining = false
				return Line{}, ErrNoData
			}
			continue
		}
		if fl.f == nil {
			if fl.checked {
				return Line{}, ErrNoData
			}
			fl.checked = true
			if err := fl.openPath(); err != nil {
				return Line{}, err
			}
			if fl.f == nil {
				return Line{}, ErrNoData
			}
		}
		if i := bytes.IndexByte(fl.buf[fl.r:fl.w], '\n'); i >= 0 {
			return fl.take(i, false), nil
		}
		if fl.skip > 0 || fl.w-fl.r > fl.maxLine() {
			if fl.skip == 0 {
				fl.skipTail = append(fl.skipTail[:0], fl.consumedTail()...)
			}
			fl.skip += fl.w - fl.r
			fl.r = fl.w
		}
		n, err := fl.fill()
		if errors.Is(err, errChanged) {
			// Truncated and written again past our offset: the size does
			// not show it, the bytes we read last do.
			if err := fl.truncated(fl.Position().Tail); err != nil {
				return Line{}, err
			}
			continue
		}
		if err != nil {
			return Line{}, err
		}
		if n > 0 {
			continue
		}
		// At the end of f.
		if fl.copyMode || fl.draining {
			if l, ok := fl.finish(); ok {
				return l, nil
			}
			continue
		}
		if fl.checked {
			return Line{}, ErrNoData
		}
		fl.checked = true
		before := fl.f
		if err := fl.check(); err != nil {
			return Line{}, err
		}
		if fl.switchNext {
			if l, ok := fl.finish(); ok {
				return l, nil
			}
			continue
		}
		if fl.f != before && fl.f != nil {
			continue // truncated: reading the copy, or the file from its start
		}
		return Line{}, ErrNoData
	}
}

// take consumes the line of i bytes at r (and its newline).
func (fl *Follower) take(i int, torn bool) Line {
	text := fl.buf[fl.r : fl.r+i]
	used := i
	if !torn {
		used++
	}
	fl.r += used
	fl.pos.Offset += int64(used + fl.skip)
	fl.pos.Line++
	l := Line{Name: fl.name, Num: fl.pos.Line, Torn: torn}
	if fl.skip > 0 {
		l.TooLong = fl.skip + i
		fl.skip, fl.skipTail = 0, fl.skipTail[:0]
		return l
	}
	if len(text) > 0 && text[len(text)-1] == '\r' {
		text = text[:len(text)-1]
	}
	l.Text = text
	return l
}

// finish ends the current file before switching to Path: a partial line
// left at its end is returned as torn, then the next call switches.
func (fl *Follower) finish() (Line, bool) {
	fl.switchNext = true
	if fl.w > fl.r || fl.skip > 0 {
		return fl.take(fl.w-fl.r, true), true
	}
	return Line{}, false
}

// fill reads more of f into the buffer, keeping TailSize bytes before r.
func (fl *Follower) fill() (int, error) {
	if fl.w == len(fl.buf) {
		keep := fl.r
		if keep > TailSize {
			keep = TailSize
		}
		if fl.r-keep > 0 {
			n := copy(fl.buf, fl.buf[fl.r-keep:fl.w])
			fl.r, fl.w = keep, n
		}
		if fl.w == len(fl.buf) {
			nb := make([]byte, 2*len(fl.buf))
			copy(nb, fl.buf[:fl.w])
			fl.buf = nb
		}
	}
	// Read from TailSize bytes before the offset, in one pread, and check
	// those are still the bytes read last: so data from a file truncated
	// and written again meanwhile is never taken for the rest of the old.
	k := min(fl.w, TailSize)
	var last [TailSize]byte
	copy(last[:k], fl.buf[fl.w-k:fl.w])
	n, err := fl.f.ReadAt(fl.buf[fl.w-k:], fl.readOff-int64(k))
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if err != nil {
		copy(fl.buf[fl.w-k:fl.w], last[:k])
		return 0, err
	}
	if n < k || !bytes.Equal(fl.buf[fl.w-k:fl.w], last[:k]) {
		copy(fl.buf[fl.w-k:fl.w], last[:k])
		return 0, errChanged
	}
	n -= k
	fl.w += n
	fl.readOff += int64(n)
	return n, nil
}

// errChanged says the bytes before the read offset are not what was read.
var errChanged = errors.New("file changed under the read offset")

// check looks at Path once f is at its end: truncated (copytruncate),
// replaced (rename rotation, deletion and re-creation) or gone.
func (fl *Follower) check() error {
	fi, err := os.Stat(fl.Path)
	if errors.Is(err, fs.ErrNotExist) {
		// Deleted or renamed, no new file yet: the writer may still be
		// writing to f, so keep reading it.
		return nil
	}
	if err != nil {
		return err
	}
	if dev, ino := fileID(fi); dev == fl.pos.Dev && ino == fl.pos.Ino {
		cur, err := fl.f.Stat()
		if err != nil {
			return err
		}
		if cur.Size() < fl.readOff || !fl.lastReadStillThere() || !fl.headStillThere() {
			return fl.truncated(fl.Position().Tail)
		}
		return nil
	}
	// A new file at Path. The writer may still append to the old one until
	// it reopens (logrotate's create, then SIGHUP), so switch only after f
	// stayed quiet for a whole poll interval. Open the new file now, so a
	// second rotation meanwhile cannot take it away.
	if fl.next == nil {
		next, err := os.Open(fl.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		fl.next, fl.quietOff = next, fl.readOff
		return nil
	}
	if fl.quietOff != fl.readOff {
		fl.quietOff = fl.readOff
		return nil
	}
	fl.switchNext = true
	return nil
}

// lastReadStillThere reports whether the last bytes read are still in the
// file where they were, which a truncation followed by new writes beyond
// the old offset would change.
func (fl *Follower) lastReadStillThere() bool {
	k := fl.w
	if k > TailSize {
		k = TailSize
	}
	if k == 0 {
		return true
	}
	var b [TailSize]byte
	n, _ := fl.f.ReadAt(b[:k], fl.readOff-int64(k))
	return n == k && bytes.Equal(b[:k], fl.buf[fl.w-k:fl.w])
}

// headStillThere reports whether f still starts with the bytes it started
// with when first looked at here (taken now, the first time: true then).
// Checked at the end of f only, once a poll interval: one small read.
func (fl *Follower) headStillThere() bool {
	want := min(fl.readOff, TailSize)
	if want == 0 || fl.copyMode {
		return true
	}
	var b [TailSize]byte
	if int64(len(fl.head)) >= want {
		n, _ := fl.f.ReadAt(b[:len(fl.head)], 0)
		return n == len(fl.head) && bytes.Equal(b[:n], fl.head)
	}
	n, _ := fl.f.ReadAt(b[:want], 0)
	fl.head = append(fl.head[:0], b[:n]...)
	return true
}

// truncated handles a file cut back (copytruncate). Lines written after
// the last read and before the truncation are only in the copy logrotate
// made: if a file next to Path holds the bytes just before the consumed
// offset (tail) there, read the rest of it first.
func (fl *Follower) truncated(tail []byte) error {
	off, lines := fl.pos.Offset, fl.pos.Line
	if off > 0 {
		if name, c := findCopy(fl.Path, off, tail); c != nil {
			return fl.start(c, name, off, lines, true)
		}
		fl.notify("%s was truncated and no copy of it was found: reading it from its start (lines written just before the truncation may be lost)", fl.Path)
	}
	return fl.openPath()
}

// endOfLastLine returns the offset after the last newline of f and the
// number of lines before it.
func endOfLastLine(f *os.File) (off, lines int64, err error) {
	buf := make([]byte, 256<<10)
	var pos int64
	for {
		n, err := f.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			lines += int64(bytes.Count(chunk, []byte{'\n'}))
			if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
				off = pos + int64(i) + 1
			}
			pos += int64(n)
		}
		if errors.Is(err, io.EOF) {
			return off, lines, nil
		}
		if err != nil {
			return 0, 0, err
		}
	}
}

func tailMatches(f *os.File, off int64, tail []byte) bool {
	if len(tail) == 0 {
		return true
	}
	b := make([]byte, len(tail))
	n, _ := f.ReadAt(b, off-int64(len(tail)))
	return n == len(b) && bytes.Equal(b, tail)
}

// siblings lists the regular files next to path whose names start with
// its name (fast.log.1, fast.log-20260101, ...), newest first; compressed
// ones are of no use.
func siblings(path string) []string {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type cand struct {
		name string
		mod  time.Time
	}
	var cs []cand
	for _, e := range entries {
		n := e.Name()
		if n == base || !strings.HasPrefix(n, base) || !e.Type().IsRegular() {
			continue
		}
		switch filepath.Ext(n) {
		case ".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z":
			continue
		}
		if fi, err := e.Info(); err == nil {
			cs = append(cs, cand{filepath.Join(dir, n), fi.ModTime()})
		}
	}
	for i := 1; i < len(cs); i++ { // newest first; a handful of files
		for j := i; j > 0 && cs[j].mod.After(cs[j-1].mod); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.name
	}
	return names
}

// findByID opens the file next to path with the given device and inode.
func findByID(path string, dev, ino uint64) (string, *os.File) {
	for _, name := range siblings(path) {
		fi, err := os.Stat(name)
		if err != nil {
			continue
		}
		if d, i := fileID(fi); d == dev && i == ino {
			if f, err := os.Open(name); err == nil {
				return name, f
			}
		}
	}
	return "", nil
}

// findCopy opens the newest file next to path that holds tail just before
// off: the copy copytruncate made of the file we were reading.
func findCopy(path string, off int64, tail []byte) (string, *os.File) {
	if len(tail) == 0 {
		return "", nil
	}
	for _, name := range siblings(path) {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Size() >= off && tailMatches(f, off, tail) {
			return name, f
		}
		f.Close()
	}
	return "", nil
}
