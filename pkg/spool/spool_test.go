package spool

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

func unconsumed(t *testing.T, s *Spool) []Line {
	t.Helper()
	var out []Line
	err := s.EachUnconsumed(func(l Line) error {
		out = append(out, Line{Seq: l.Seq, Data: append([]byte(nil), l.Data...)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func open(t *testing.T, dir string) *Spool {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appendN(t *testing.T, s *Spool, lines ...string) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, l := range lines {
		seq, err := s.Append([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	return seqs
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	s.Close()
	open(t, dir).Close()
}

// TestJournalSurvivesRestart: alerts appended and flushed (not closed, as
// after kill -9) are found again by the next Open; the ones a message took
// are not.
func TestJournalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	seqs := appendN(t, s, "a1", "a2", "a3")
	if seqs[0] != 1 || seqs[2] != 3 {
		t.Fatalf("seqs %v", seqs)
	}
	if _, err := s.Put(Meta{Upto: 2, Created: t0, To: []string{"root"}, Subject: "s", Alerts: []string{"1", "2"}}, []byte("msg1\n")); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "a4")
	s.lock.Close() // a crash: no Close, the lock goes with the process

	s = open(t, dir)
	defer s.Close()
	lines := unconsumed(t, s)
	if len(lines) != 2 || string(lines[0].Data) != "a3" || lines[0].Seq != 3 || string(lines[1].Data) != "a4" || lines[1].Seq != 4 {
		t.Fatalf("unconsumed %+v", lines)
	}
	pending, err := s.Pending()
	if err != nil || len(pending) != 1 || string(pending[0].Msg) != "msg1\n" || pending[0].Meta.Upto != 2 || pending[0].Meta.Subject != "s" {
		t.Fatalf("pending %+v %v", pending, err)
	}
	if st := s.State(); st.Consumed != 2 || len(st.Sent) != 1 || !st.Sent[0].Equal(t0) {
		t.Fatalf("state %+v", st)
	}
	// New entries continue the numbering.
	if seq := appendN(t, s, "a5"); seq[0] != 5 {
		t.Fatalf("next seq %v", seq)
	}
}

// TestMessageWithoutState: a crash after the message file was renamed but
// before the state was written: the message's own number says which
// alerts it holds, so they are not mailed twice.
func TestMessageWithoutState(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	appendN(t, s, "a1", "a2")
	if _, err := s.Put(Meta{Upto: 2, Created: t0}, []byte("m\n")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Remove(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	lines := unconsumed(t, s)
	if len(lines) != 0 {
		t.Fatalf("alerts in a spooled message came back: %+v", lines)
	}
}

func TestRemoveAndCompact(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	appendN(t, s, "a1", "a2")
	e, err := s.Put(Meta{Upto: 2, Created: t0}, []byte("m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(e); err != nil {
		t.Fatal(err)
	}
	journals, _ := filepath.Glob(filepath.Join(dir, "journal-*"))
	if len(journals) != 0 {
		t.Errorf("journal kept after everything was mailed: %v", journals)
	}
	if seq := appendN(t, s, "a3"); seq[0] != 3 {
		t.Fatalf("seq after compaction %v", seq)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	if p, _ := s.Pending(); len(p) != 0 {
		t.Fatalf("removed message came back: %+v", p)
	}
	lines := unconsumed(t, s)
	if len(lines) != 1 || lines[0].Seq != 3 {
		t.Fatalf("%+v", lines)
	}
}

func TestTornJournalLine(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	appendN(t, s, "a1")
	s.Close()
	journals, _ := filepath.Glob(filepath.Join(dir, "journal-*"))
	f, err := os.OpenFile(journals[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"torn`)
	f.Close()
	s = open(t, dir)
	defer s.Close()
	lines := unconsumed(t, s)
	if len(lines) != 2 || string(lines[1].Data) != `{"torn` {
		t.Fatalf("%+v", lines)
	}
	if seq := appendN(t, s, "a3"); seq[0] != 3 {
		t.Fatalf("seq %v", seq)
	}
}

func TestSentPruned(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	for i, at := range []time.Time{t0, t0.Add(30 * time.Minute), t0.Add(61 * time.Minute)} {
		appendN(t, s, "a")
		if _, err := s.Put(Meta{Upto: uint64(i + 1), Created: at}, []byte("m\n")); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.State(); len(st.Sent) != 2 {
		t.Fatalf("sent times older than an hour kept: %v", st.Sent)
	}
}

// TestCloseRacesAppend: a line whose Append succeeded while Close runs is
// in the journal afterwards (Close used to sync, let go of the lock, then
// close the journal file without flushing what was appended meanwhile).
func TestCloseRacesAppend(t *testing.T) {
	for i := range 50 {
		dir := t.TempDir()
		s := open(t, dir)
		var ok int
		started, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				if _, err := s.Append([]byte(`{"a":1}`)); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
				if ok++; ok == 100 {
					close(started)
				}
			}
		}()
		<-started
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		<-done
		s = open(t, dir)
		n := len(unconsumed(t, s))
		s.Close()
		if n != ok {
			t.Fatalf("round %d: %d appends succeeded, %d lines in the journal", i, ok, n)
		}
	}
}

// TestFail: a failed message leaves msg/ (not pending, not resent) and is
// kept in failed/; a second one with the same name does not overwrite it.
func TestFail(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	appendN(t, s, `{"a":1}`)
	e, err := s.Put(Meta{Upto: 1, Created: t0, MessageID: "m1"}, []byte("Subject: x\n\nbody\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Fail(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "failed", e.Name); p != want {
		t.Errorf("failed path %s, want %s", p, want)
	}
	if data, err := os.ReadFile(p); err != nil || !bytes.HasSuffix(data, []byte("\nSubject: x\n\nbody\n")) {
		t.Errorf("failed file %q, %v", data, err)
	}
	if pend, err := s.Pending(); err != nil || len(pend) != 0 {
		t.Errorf("pending after Fail: %v, %v", pend, err)
	}
	// The same name again (an admin moved the first back into msg/ by hand
	// and it failed again, say): both kept.
	if err := os.WriteFile(filepath.Join(dir, "msg", e.Name), []byte("{}\nagain\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p2, err := s.Fail(e)
	if err != nil || p2 == p {
		t.Fatalf("second Fail: %s, %v", p2, err)
	}
	if data, _ := os.ReadFile(p); !bytes.HasSuffix(data, []byte("body\n")) {
		t.Errorf("first failed message overwritten: %q", data)
	}
}

// TestMark: a message stays in msg/ until every transport is through with
// it; the marks survive a restart; one refusal sends it to failed/.
func TestMark(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	need := []string{"mail", "webhook-a"}
	appendN(t, s, "a", "b")
	e1, err := s.Put(Meta{Upto: 1, Created: t0, MessageID: "m1"}, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := s.Put(Meta{Upto: 2, Created: t0, MessageID: "m2"}, []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	if final, _, err := s.Mark(e1.Name, "webhook-a", "sent", need); err != nil || final != "" {
		t.Fatalf("first mark: %q, %v", final, err)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	p, err := s.Pending()
	if err != nil || len(p) != 2 {
		t.Fatalf("pending after restart: %v, %v", p, err)
	}
	if p[0].Meta.Done["webhook-a"] != "sent" || p[0].Meta.Done["mail"] != "" || string(p[0].Msg) != "one" {
		t.Fatalf("marks after restart: %+v %q", p[0].Meta.Done, p[0].Msg)
	}
	if final, _, err := s.Mark(e1.Name, "mail", "sent", need); err != nil || final != "sent" {
		t.Fatalf("second mark: %q, %v", final, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "msg", e1.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sent everywhere, still in msg/: %v", err)
	}
	if final, _, err := s.Mark(e2.Name, "mail", "failed", need); err != nil || final != "" {
		t.Fatalf("failed mark: %q, %v", final, err)
	}
	final, path, err := s.Mark(e2.Name, "webhook-a", "sent", need)
	if err != nil || final != "failed" || path != filepath.Join(dir, "failed", e2.Name) {
		t.Fatalf("last mark: %q %q %v", final, path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil || !bytes.Contains(data, []byte(`"done":{"mail":"failed","webhook-a":"sent"}`)) || !bytes.HasSuffix(data, []byte("\ntwo")) {
		t.Fatalf("failed/ copy: %q, %v", data, err)
	}
}
