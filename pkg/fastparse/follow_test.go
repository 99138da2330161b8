package fastparse

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// syncBuffer collects the output of successive fastparse runs.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	count int // lines
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count += bytes.Count(p, []byte("\n"))
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// instance is one fastparse -f process, run in-process.
type instance struct {
	cancel context.CancelFunc
	code   chan int
}

func startFollow(t *testing.T, args []string, stdout, stderr *syncBuffer) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, code: make(chan int, 1)}
	go func() { in.code <- run(ctx, append([]string{"fastparse"}, args...), nil, stdout, stderr, &env{}) }()
	return in
}

// stop is SIGTERM: fastparse must flush, save its position and exit 0.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	select {
	case code := <-in.code:
		if code != 0 {
			t.Fatalf("fastparse exited %d after SIGTERM", code)
		}
	case <-time.After(time.Minute):
		t.Fatal("fastparse did not stop")
	}
}

// suricata writes fast.log the way Suricata does: appends through one open
// file, which logrotate renames (the writer goes on writing to the old file
// until it reopens) or copies and truncates.
type suricata struct {
	t        *testing.T
	path     string
	f        *os.File
	next     int // sequence number of the next line
	genStart int // sequence number of the first line in the current file
	rotation int
	lineFn   func(n int) string // the line of sequence number n; nil: seqLine
}

func (s *suricata) open() {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	s.f = f
}

func seqLine(n int) string {
	return fmt.Sprintf("05/14/2020-22:%02d:%02d.%06d  [**] [1:2024364:3] ET SCAN seq %d [**] [Classification: Web Application Attack] [Priority: 1] {TCP} 192.0.2.%d:%d -> 198.51.100.44:80\n",
		n/60000%60, n/1000%60, n%1000000, n, n%250+1, 1024+n%60000)
}

// write appends lines up to sequence number until (exclusive), in chunks,
// some of them cut in the middle of a line.
func (s *suricata) write(until int) {
	for s.next < until {
		var b strings.Builder
		for i := 0; i < 500 && s.next < until; i++ {
			if s.lineFn != nil {
				b.WriteString(s.lineFn(s.next))
			} else {
				b.WriteString(seqLine(s.next))
			}
			s.next++
		}
		chunk := b.String()
		cut := len(chunk) / 3
		for _, part := range []string{chunk[:cut], chunk[cut:]} {
			if _, err := s.f.WriteString(part); err != nil {
				s.t.Fatal(err)
			}
		}
	}
}

func (s *suricata) renameRotate() {
	s.rotation++
	if err := os.Rename(s.path, fmt.Sprintf("%s.%d", s.path, s.rotation)); err != nil {
		s.t.Fatal(err)
	}
	s.write(s.next + 100) // until the writer reopens on SIGHUP
	s.f.Close()
	s.open()
	s.genStart = s.next
}

func (s *suricata) copyTruncate() {
	s.rotation++
	data, err := os.ReadFile(s.path)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(fmt.Sprintf("%s.%d", s.path, s.rotation), data, 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Truncate(s.path, 0); err != nil {
		s.t.Fatal(err)
	}
	s.genStart = s.next
}

// TestFollowRotationsAndRestarts writes 200,000 lines while the file is
// rotated eight times (rename and copytruncate, two of them while
// fastparse is stopped) and fastparse is stopped and restarted twice with
// a position file, and proves every line came out exactly once.
func TestFollowRotationsAndRestarts(t *testing.T) {
	const total = 200000
	dir := t.TempDir()
	s := &suricata{t: t, path: filepath.Join(dir, "fast.log")}
	s.open()
	defer func() { s.f.Close() }()
	posFile := filepath.Join(dir, "fastparse.pos")
	args := []string{"-f", s.path, "--position", posFile, "--poll", "5ms", "--tz", "UTC"}
	var stdout, stderr syncBuffer

	// The first run has no position yet: --from-start, so that nothing
	// written before it opened the file is missed.
	in := startFollow(t, append(args, "--from-start"), &stdout, &stderr)
	// A poller must reach each file before the next rotation takes it out
	// of sight (with a 200 ms poll and daily rotation, no race): so before
	// each rotation, and before each stop (one rotation happens while
	// stopped), wait until fastparse has read a line of the current file.
	// How far behind it is within that file does not matter.
	inCurrent := func() { caughtUp(t, &stdout, s.genStart+1) }
	rename := func() { inCurrent(); s.renameRotate() }
	copyTruncate := func() { inCurrent(); s.copyTruncate() }
	stop := func() { inCurrent(); in.stop(t) }
	steps := []struct {
		at int
		do func()
	}{
		{25000, rename},
		{50000, stop},
		{53000, s.copyTruncate}, // while stopped
		{56000, func() { in = startFollow(t, args, &stdout, &stderr) }},
		{75000, copyTruncate},
		{100000, rename},
		{125000, copyTruncate},
		{140000, stop},
		{150000, s.renameRotate}, // while stopped
		{156000, func() { in = startFollow(t, args, &stdout, &stderr) }},
		{180000, rename},
		{190000, copyTruncate},
	}
	for _, step := range steps {
		s.write(step.at)
		step.do()
	}
	s.write(total)
	caughtUp(t, &stdout, total)
	in.stop(t)
	checkOnce(t, stdout.String(), total)
	if stderr.String() != "" {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// caughtUp waits until n lines came out (polling, with a deadline).
func caughtUp(t *testing.T, out *syncBuffer, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for out.lines() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines out after 2 minutes, want %d", out.lines(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func head(ns []int) []int {
	if len(ns) > 5 {
		return ns[:5]
	}
	return ns
}

// TestFollowWake: SIGHUP (env's Hup) makes a quiet follower look
// at the file at once instead of at the next poll.
func TestFollowWake(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fast.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"fastparse", "-f", path, "--poll", "1h", "--tz", "UTC"}, nil, &stdout, &stderr, &env{Hooks: command.Hooks{Hup: hup}})
	}()
	// Until fastparse has opened the file, a line written now would be
	// before its start (it starts at the end): wake it until it sees one.
	deadline := time.Now().Add(time.Minute)
	for n := 0; stdout.lines() == 0; n++ {
		if time.Now().After(deadline) {
			t.Fatal("no line after a minute of wake-ups")
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(seqLine(n))
		f.Close()
		select {
		case hup <- syscall.SIGHUP:
		default: // the last one is not taken yet
		}
		time.Sleep(20 * time.Millisecond) // polling for the result, with a deadline
	}
	cancel()
	if c := <-code; c != 0 || stderr.String() != "" {
		t.Fatalf("exit %d, stderr %q", c, stderr.String())
	}
}

// TestRealEdgeLines: the real CRLF lines, the real torn line and the
// blank line of the shared corpus, through the whole stage: the torn line
// is reported with its line number and the record glued after it kept.
func TestRealEdgeLines(t *testing.T) {
	name := filepath.Join("..", "..", "testdata", "corpus", "fastlog", "real-lines-edge.txt")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"fastparse", "--tz", "UTC", "--year", "2024", name}, nil, &stdout, &stderr, &env{}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 7 {
		t.Errorf("%d events, want 7:\n%s", n, stdout.String())
	}
	if !strings.Contains(stdout.String(), `"timestamp":"2024-11-13T18:01:55.044396+0000"`) {
		t.Errorf("the record glued to the torn line is missing:\n%s", stdout.String())
	}
	for _, want := range []string{
		name + ":8: record cut short after 18 bytes at column 1, the next one glued to it: skipped\n",
		name + ":11: blank line: skipped\n",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestFollowStopAfterDelete: SIGTERM shortly after fast.log was deleted
// and a new one created, with lines of the deleted one not read yet: they
// are read before the exit, and the restart reads the new file from its
// start. (4,400-4,600 of 30,000 lines were lost: the saved position named
// the deleted file, so the restart began with the new one.)
func TestFollowStopAfterDelete(t *testing.T) {
	const old, total = 60000, 62000
	dir := t.TempDir()
	s := &suricata{t: t, path: filepath.Join(dir, "fast.log")}
	s.open()
	defer func() { s.f.Close() }()
	s.write(old)
	posFile := filepath.Join(dir, "fastparse.pos")
	args := []string{"-f", s.path, "--position", posFile, "--poll", "5ms", "--tz", "UTC"}
	var stdout, stderr syncBuffer
	in := startFollow(t, append(args, "--from-start"), &stdout, &stderr)
	caughtUp(t, &stdout, 1) // reading the old file, far from its end
	s.f.Close()
	if err := os.Remove(s.path); err != nil {
		t.Fatal(err)
	}
	s.open()
	s.write(old + 1000)
	in.stop(t)
	if n := stdout.lines(); n < old {
		t.Fatalf("%d lines out at the stop, want the whole deleted file's %d", n, old)
	}
	s.write(total)
	in = startFollow(t, args, &stdout, &stderr)
	caughtUp(t, &stdout, total)
	in.stop(t)
	checkOnce(t, stdout.String(), total)
	if stderr.String() != "" {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// checkOnce checks that the events are sequence lines 0 to total-1, each
// exactly once.
func checkOnce(t *testing.T, out string, total int) {
	t.Helper()
	seen := make([]int, total)
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var ev record.Event
		if err := record.Unmarshal([]byte(line), &ev); err != nil || ev.Alert == nil {
			t.Fatalf("output line %d: %v: %q", i+1, err, line)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(ev.Alert.Signature, "ET SCAN seq "))
		if err != nil || n < 0 || n >= total {
			t.Fatalf("output line %d: signature %q", i+1, ev.Alert.Signature)
		}
		seen[n]++
	}
	var missing, repeated []int
	for n, c := range seen {
		switch {
		case c == 0:
			missing = append(missing, n)
		case c > 1:
			repeated = append(repeated, n)
		}
	}
	if len(missing) > 0 || len(repeated) > 0 {
		t.Errorf("%d lines missing (first %v), %d repeated (first %v)", len(missing), head(missing), len(repeated), head(repeated))
	}
}
