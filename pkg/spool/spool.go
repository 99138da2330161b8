// Package spool is notify's durable on-disk queue: a journal of the alerts
// that are still to be mailed, and the rendered messages waiting for the
// MTA. A message is on disk (fsync'd, atomically renamed) before it is
// handed over and is removed only once the MTA has accepted it, so a
// restart, even after kill -9, sends what was pending.
//
// Layout of the spool directory:
//
//	lock                      flock(2) held while a notify uses the spool
//	state                     {"consumed":N,"sent":[times]}: journal entries up to N are
//	                          in messages; send times of the last hour (the hourly limit)
//	journal-<base>.jsonl      alert lines, entry numbers base, base+1, ...
//	msg/<upto>.eml            a message: one JSON line of metadata, then the message;
//	                          it holds the journal entries up to <upto>
//	failed/<upto>.eml         a message the MTA refused for good, moved out of msg/:
//	                          kept, never resent by notify (the admin may resend it)
//	tmp/                      files being written, renamed into place when complete
//
// A message goes out through one or more transports (mail, webhooks). Its
// metadata's "done" records the transports through with it (Mark); it
// leaves msg/ once every transport is: removed if each sent it, moved to
// failed/ if one refused it for good.
//
// Messages consume journal entries in order (every message takes all the
// entries up to its number), so one counter says what is still to mail.
package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// ErrLocked is returned by Open when another process uses the spool.
var ErrLocked = errors.New("spool in use by another process")

// State is what the spool remembers besides its files.
type State struct {
	Consumed uint64      `json:"consumed"` // journal entries up to this one are in messages
	Sent     []time.Time `json:"sent"`     // when recent messages were made (the hourly limit)
}

// Meta describes a spooled message.
type Meta struct {
	Upto      uint64    `json:"upto"` // the message holds the journal entries up to this one
	Created   time.Time `json:"created"`
	From      string    `json:"from"`
	To        []string  `json:"to"`
	Subject   string    `json:"subject"`
	MessageID string    `json:"message_id"`
	Alerts    []string  `json:"alerts"`            // the ids of the alerts it shows
	Omitted   int       `json:"omitted,omitempty"` // alerts it counts but does not show
	Digest    bool      `json:"digest,omitempty"`
	// Part and Parts: the message is part Part of Parts of one
	// notification too large for one message (0, 0: it is not). The
	// parts count as one message for the hourly limit.
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
	// Done says which transports are through with the message ("mail",
	// "webhook-...": "sent" or "failed"), so that after a restart each
	// transport sends only what it has not sent (see Mark).
	Done map[string]string `json:"done,omitempty"`
}

// Entry is a message in the spool.
type Entry struct {
	Name string // file name under msg/
	Meta Meta
	Msg  []byte
}

// Line is an alert line from the journal with its entry number.
type Line struct {
	Seq  uint64
	Data []byte
}

// Spool is an open spool directory. Its methods are safe for concurrent use.
type Spool struct {
	dir  string
	lock *os.File

	mu      sync.Mutex
	state   State
	next    uint64 // number of the next journal entry
	journal *os.File
	jw      *bufio.Writer
	jfiles  []string
	dirty   bool // written since the last fsync
	closed  bool

	marks sync.Mutex // serializes Mark's read-modify-write of a message
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("spool closed")

// Open opens (creating if needed) the spool in dir and locks it.
//
// A spool another user can write to is refused (an *UnsafeError): a
// message planted there would be mailed by this process, with the
// planter's recipients and sender. dir, its msg/, tmp/ and failed/ and
// every file Open and the other methods read must belong to the user the
// process runs as and be writable by no group or other user; dir's
// ancestors must belong to root or to that user, and be writable by
// others only with the sticky bit (as /tmp). Symbolic links inside the
// spool are never followed. What Open creates is 0700 (folders) or 0600
// (files), whatever the umask.
func Open(dir string) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := checkPath(dir); err != nil {
		return nil, err
	}
	for _, d := range []string{"msg", "tmp", "failed"} {
		p := filepath.Join(dir, d)
		if d != "failed" {
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("spool: %w", err)
			}
		}
		if err := checkDir(p); err != nil && (d != "failed" || !errors.Is(err, os.ErrNotExist)) {
			return nil, err
		}
	}
	lock, err := openFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("spool %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("spool %s: lock: %w", dir, err)
	}
	s := &Spool{dir: dir, lock: lock}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

func (s *Spool) load() error {
	tmp, _ := os.ReadDir(filepath.Join(s.dir, "tmp"))
	for _, e := range tmp { // leftovers of a crash mid-write: never renamed, never promised
		os.Remove(filepath.Join(s.dir, "tmp", e.Name()))
	}
	data, err := readFile(filepath.Join(s.dir, "state"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := record.Unmarshal(data, &s.state); err != nil {
			return fmt.Errorf("spool: %s: %w", filepath.Join(s.dir, "state"), err)
		}
	}
	msgs, err := s.Pending()
	if err != nil {
		return err
	}
	for _, m := range msgs {
		s.state.Consumed = max(s.state.Consumed, m.Meta.Upto)
	}
	s.next = s.state.Consumed + 1
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, e := range ents {
		base, ok := journalBase(e.Name())
		if !ok {
			continue
		}
		n, err := countLines(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return err
		}
		if base+n > s.next {
			s.next = base + n
		}
		if base+n-1 <= s.state.Consumed {
			os.Remove(filepath.Join(s.dir, e.Name())) // all in messages already
			continue
		}
		s.jfiles = append(s.jfiles, e.Name())
	}
	return nil
}

func journalBase(name string) (uint64, bool) {
	if !strings.HasPrefix(name, "journal-") || !strings.HasSuffix(name, ".jsonl") {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "journal-"), ".jsonl"), 10, 64)
	return n, err == nil
}

func countLines(path string) (uint64, error) {
	f, err := openFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n uint64
	buf := make([]byte, 64<<10)
	last := byte('\n')
	for {
		k, err := f.Read(buf)
		if k > 0 {
			n += uint64(bytes.Count(buf[:k], []byte{'\n'}))
			last = buf[k-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
	}
	if last != '\n' { // a torn last line still has its number
		n++
	}
	return n, nil
}

// State returns the spool's state.
func (s *Spool) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state
	st.Sent = append([]time.Time(nil), st.Sent...)
	return st
}

// EachUnconsumed calls fn, oldest first, with each journal line that is
// in no message yet. Line.Data is valid only during the call. The journal
// is streamed, never loaded whole. Call it after Open, before Append.
func (s *Spool) EachUnconsumed(fn func(Line) error) error {
	s.mu.Lock()
	files := append([]string(nil), s.jfiles...)
	consumed := s.state.Consumed
	s.mu.Unlock()
	sort.Slice(files, func(i, j int) bool {
		a, _ := journalBase(files[i])
		b, _ := journalBase(files[j])
		return a < b
	})
	for _, name := range files {
		base, _ := journalBase(name)
		f, err := openFile(filepath.Join(s.dir, name), os.O_RDONLY, 0)
		if err != nil {
			return err
		}
		r := record.NewReader(f, 0)
		seq := base
		for {
			line, err := r.ReadLine()
			if errors.Is(err, io.EOF) {
				break
			}
			var long *record.LineTooLongError
			if err != nil && !errors.As(err, &long) {
				f.Close()
				return fmt.Errorf("spool: %s: %w", name, err)
			}
			if err == nil && seq > consumed {
				if err := fn(Line{Seq: seq, Data: line}); err != nil {
					f.Close()
					return err
				}
			}
			seq++
		}
		f.Close()
	}
	return nil
}

// Append adds an alert line (without newline) to the journal and returns
// its entry number. The line reaches the operating system on the next
// Flush (and survives a crash of the process from then on) and the disk on
// the next Sync.
func (s *Spool) Append(line []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if s.journal == nil {
		name := fmt.Sprintf("journal-%020d.jsonl", s.next)
		f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
		s.journal, s.jw = f, bufio.NewWriterSize(f, 64<<10)
		s.jfiles = append(s.jfiles, name)
	}
	if s.jw.Available() < len(line)+1 && s.jw.Buffered() > 0 {
		if err := s.jw.Flush(); err != nil {
			return 0, fmt.Errorf("spool: journal: %w", err)
		}
	}
	s.jw.Write(line)     //nolint:errcheck // sticky: seen at Flush
	s.jw.WriteByte('\n') //nolint:errcheck
	s.dirty = true
	seq := s.next
	s.next++
	return seq, nil
}

// Flush writes buffered journal lines to the operating system.
func (s *Spool) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *Spool) flushLocked() error {
	if s.jw == nil {
		return nil
	}
	if err := s.jw.Flush(); err != nil {
		return fmt.Errorf("spool: journal: %w", err)
	}
	return nil
}

// Sync flushes the journal and makes it durable (fsync) if it changed.
func (s *Spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	if !s.dirty || s.journal == nil {
		return nil
	}
	s.dirty = false
	if err := s.journal.Sync(); err != nil {
		return fmt.Errorf("spool: journal: %w", err)
	}
	return nil
}

// Put stores a message durably and records that it holds the journal
// entries up to meta.Upto, and that it was made at meta.Created (kept in
// the state for an hour, for the hourly limit; for the first part only of
// a message in parts). The journal is synced
// first, so the message never holds entries that a crash could lose.
func (s *Spool) Put(meta Meta, msg []byte) (Entry, error) {
	if err := s.Sync(); err != nil {
		return Entry{}, err
	}
	head, err := record.Marshal(meta)
	if err != nil {
		return Entry{}, fmt.Errorf("spool: %w", err)
	}
	name := fmt.Sprintf("%020d.eml", meta.Upto)
	data := make([]byte, 0, len(head)+1+len(msg))
	data = append(append(append(data, head...), '\n'), msg...)
	if err := s.writeFile(filepath.Join("msg", name), data); err != nil {
		return Entry{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.Consumed = max(s.state.Consumed, meta.Upto)
	if meta.Part <= 1 {
		s.state.Sent = append(pruneSent(s.state.Sent, meta.Created), meta.Created)
	}
	if err := s.saveStateLocked(); err != nil {
		return Entry{}, err
	}
	s.compactLocked()
	return Entry{Name: name, Meta: meta, Msg: msg}, nil
}

func pruneSent(sent []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(sent) && now.Sub(sent[i]) >= time.Hour {
		i++
	}
	return append([]time.Time(nil), sent[i:]...)
}

// compactLocked starts a new journal once every entry is in a message.
func (s *Spool) compactLocked() {
	if s.state.Consumed+1 < s.next {
		return
	}
	if s.journal != nil {
		s.jw.Flush() //nolint:errcheck // everything in it is consumed
		s.journal.Close()
		s.journal, s.jw = nil, nil
	}
	for _, name := range s.jfiles {
		os.Remove(filepath.Join(s.dir, name))
	}
	s.jfiles = nil
}

func (s *Spool) saveStateLocked() error {
	data, err := record.Marshal(s.state)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return s.writeFile("state", data)
}

// writeFile writes data to name atomically and durably: a temporary file,
// fsync, rename, fsync of the directory.
func (s *Spool) writeFile(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "w-*")
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("spool: %w", err)
	}
	return syncDir(filepath.Dir(filepath.Join(s.dir, name)))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// Pending returns the spooled messages, oldest first.
func (s *Spool) Pending() ([]Entry, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "msg"))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var out []Entry
	for _, e := range ents { // ReadDir sorts by name: zero-padded numbers
		if !strings.HasSuffix(e.Name(), ".eml") {
			continue
		}
		path := filepath.Join(s.dir, "msg", e.Name())
		data, err := readFile(path)
		if err != nil {
			return nil, err
		}
		i := bytes.IndexByte(data, '\n')
		var m Meta
		if i < 0 {
			return nil, fmt.Errorf("spool: %s: no metadata line", path)
		}
		if err := record.Unmarshal(data[:i], &m); err != nil {
			return nil, fmt.Errorf("spool: %s: %w", path, err)
		}
		out = append(out, Entry{Name: e.Name(), Meta: m, Msg: data[i+1:]})
	}
	return out, nil
}

// Mark records that transport is through with the message named name
// (status "sent" or "failed"). When every transport in need is through
// with it, the message leaves msg/: it is removed if each sent it, moved
// to failed/ (Fail) if one refused it; Mark then returns "sent" or
// "failed" (and with "failed" the new path). Otherwise the message's
// metadata is rewritten (atomically, durably) with the mark, and Mark
// returns "". The mark is on disk before Mark returns, so a restart sends
// the message again only through the transports that had not taken it.
func (s *Spool) Mark(name, transport, status string, need []string) (final, path string, err error) {
	s.marks.Lock()
	defer s.marks.Unlock()
	file := filepath.Join(s.dir, "msg", name)
	data, err := readFile(file)
	if err != nil {
		return "", "", err
	}
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		return "", "", fmt.Errorf("spool: %s: no metadata line", file)
	}
	var m Meta
	if err := record.Unmarshal(data[:i], &m); err != nil {
		return "", "", fmt.Errorf("spool: %s: %w", file, err)
	}
	if m.Done == nil {
		m.Done = map[string]string{}
	}
	m.Done[transport] = status
	final = "sent"
	for _, t := range need {
		switch m.Done[t] {
		case "":
			final = ""
		case "failed":
			if final != "" {
				final = "failed"
			}
		}
	}
	e := Entry{Name: name, Meta: m, Msg: data[i+1:]}
	switch final {
	case "sent":
		return final, "", s.Remove(e)
	case "failed":
		// The metadata says which transport refused it.
		if err := s.rewrite(e); err != nil {
			return "", "", err
		}
		path, err := s.Fail(e)
		return final, path, err
	}
	return "", "", s.rewrite(e)
}

// rewrite stores e over its message file.
func (s *Spool) rewrite(e Entry) error {
	head, err := record.Marshal(e.Meta)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	data := make([]byte, 0, len(head)+1+len(e.Msg))
	data = append(append(append(data, head...), '\n'), e.Msg...)
	return s.writeFile(filepath.Join("msg", e.Name), data)
}

// Remove deletes a message the MTA has accepted.
func (s *Spool) Remove(e Entry) error {
	if err := os.Remove(filepath.Join(s.dir, "msg", e.Name)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return syncDir(filepath.Join(s.dir, "msg"))
}

// Fail moves a message the MTA refused for good out of msg/ into failed/,
// where it is kept (never deleted, never sent again by the spool's user)
// for the admin. It returns the message's new path.
func (s *Spool) Fail(e Entry) (string, error) {
	dir := filepath.Join(s.dir, "failed")
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("spool: %w", err)
	}
	dst := filepath.Join(dir, e.Name)
	for i := 1; ; i++ { // never overwrite an earlier failed message
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		dst = filepath.Join(dir, fmt.Sprintf("%s.%d.eml", strings.TrimSuffix(e.Name, ".eml"), i))
	}
	if err := os.Rename(filepath.Join(s.dir, "msg", e.Name), dst); err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return dst, err
	}
	return dst, syncDir(filepath.Join(s.dir, "msg"))
}

// Close syncs the journal and releases the lock. Flushing, syncing and
// closing happen under one hold of the lock, so a line appended
// concurrently either is in the journal or got ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	err := s.flushLocked()
	if err == nil && s.dirty && s.journal != nil {
		s.dirty = false
		if serr := s.journal.Sync(); serr != nil {
			err = fmt.Errorf("spool: journal: %w", serr)
		}
	}
	s.closed = true
	if s.journal != nil {
		if cerr := s.journal.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("spool: %w", cerr)
		}
		s.journal, s.jw = nil, nil
	}
	s.mu.Unlock()
	s.lock.Close()
	return err
}

// UnsafeError is the error for a spool, or a file or folder in it, that
// another user could write to (or that is a symbolic link).
type UnsafeError struct {
	Path    string
	Problem string // "writable by others (mode 0777)", ...
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("spool: %s: %s: refusing a spool another user could write to (notify would mail what they put there)", e.Path, e.Problem)
}

func unsafeErr(path, format string, args ...any) error {
	return &UnsafeError{Path: path, Problem: fmt.Sprintf(format, args...)}
}

// userName returns "uid N (name)" for messages.
func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return "uid " + id + " (" + u.Username + ")"
	}
	return "uid " + id
}

// checkOwned checks what st describes: a folder (dir) or a regular file,
// not a symbolic link, owned by the user the process runs as, writable by
// no group and no other user.
func checkOwned(path string, st *syscall.Stat_t, dir bool) error {
	uid := uint32(os.Geteuid())
	switch typ := st.Mode & syscall.S_IFMT; {
	case typ == syscall.S_IFLNK:
		return unsafeErr(path, "is a symbolic link")
	case dir && typ != syscall.S_IFDIR:
		return unsafeErr(path, "is not a directory")
	case !dir && typ != syscall.S_IFREG:
		return unsafeErr(path, "is not a regular file")
	case st.Uid != uid:
		return unsafeErr(path, "owned by %s, not by %s that notify runs as (chown it)", userName(st.Uid), userName(uid))
	case st.Mode&0o002 != 0:
		return unsafeErr(path, "writable by others (mode %04o; chmod o-w)", st.Mode&0o7777)
	case st.Mode&0o020 != 0:
		return unsafeErr(path, "writable by its group (mode %04o; chmod g-w)", st.Mode&0o7777)
	}
	return nil
}

// checkDir checks a folder of the spool (never following a link).
func checkDir(path string) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return fmt.Errorf("spool: %w", &os.PathError{Op: "lstat", Path: path, Err: err})
	}
	return checkOwned(path, &st, true)
}

// openFile opens a file of the spool without following a link, and checks
// it (checkOwned) on the open descriptor, so what is checked is what is
// read.
func openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if errors.Is(err, syscall.ELOOP) {
		return nil, unsafeErr(path, "is a symbolic link")
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %s: %w", path, err)
	}
	if err := checkOwned(path, &st, false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readFile is os.ReadFile through openFile.
func readFile(path string) ([]byte, error) {
	f, err := openFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("spool: %s: %w", path, err)
	}
	return data, nil
}

// checkPath checks the spool folder and the way to it. The folder must be
// the user's own (checkOwned). Every folder above it, on the path as given
// and on the path its links lead to, must belong to root or to the user and
// be writable by others only if sticky (as /tmp): whoever can rename the
// spool's parent can swap the spool for one of theirs. A link on the way
// must belong to root or to the user too.
func checkPath(dir string) error {
	uid := uint32(os.Geteuid())
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := checkDir(real); err != nil {
		return err
	}
	check := func(p string, follow bool) error {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return fmt.Errorf("spool: %w", &os.PathError{Op: "lstat", Path: p, Err: err})
		}
		if st.Uid != 0 && st.Uid != uid {
			return unsafeErr(dir, "%s is owned by %s, neither root nor %s that notify runs as", p, userName(st.Uid), userName(uid))
		}
		if st.Mode&syscall.S_IFMT == syscall.S_IFLNK || !follow {
			return nil
		}
		if st.Mode&0o022 != 0 && st.Mode&syscall.S_ISVTX == 0 {
			return unsafeErr(dir, "%s is writable by others (mode %04o) and not sticky", p, st.Mode&0o7777)
		}
		return nil
	}
	// The path as given: its links (the folders are checked below, on the
	// path the links lead to).
	for p := abs; ; p = filepath.Dir(p) {
		if err := check(p, false); err != nil {
			return err
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		if err := check(p, true); err != nil {
			return err
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	return nil
}
