package correlate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/record"
)

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSIGHUPReloadsRules(t *testing.T) {
	rules := rulesFile(t, `<group name="t"><rule id="100" level="5"><match>[Priority: 1]</match><description>v1</description></rule></group>`)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var stderr syncBuffer
	hup := make(chan os.Signal, 1)
	code := make(chan int, 1)
	go func() {
		code <- run(context.Background(), []string{"correlate", "--no-builtin", "-r", rules}, inR, outW, &stderr, &env{Hooks: command.Hooks{Now: wallClock, Hup: hup}})
		outW.Close()
	}()
	out := bufio.NewReader(outR)
	level := func(sec float64) int {
		t.Helper()
		if _, err := io.WriteString(inW, ev(sec, "192.0.2.1", 1)+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := out.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var a record.Alert
		if err := record.Unmarshal(line, &a); err != nil {
			t.Fatal(err)
		}
		return a.Rule.Level
	}
	waitFor := func(s string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), s); {
			if time.Now().After(deadline) {
				t.Fatalf("stderr never said %q: %s", s, stderr.String())
			}
			time.Sleep(time.Millisecond)
		}
	}
	if l := level(0); l != 5 {
		t.Fatalf("level %d before reload", l)
	}
	os.WriteFile(rules, []byte(`<group name="t"><rule id="100" level="9"><match>[Priority: 1]</match><description>v2</description></rule></group>`), 0o600)
	hup <- nil
	waitFor("rules reloaded (1 rules)")
	if l := level(1); l != 9 {
		t.Errorf("level %d after reload, want 9", l)
	}
	os.WriteFile(rules, []byte(`<group name="t"><rule id="100" level="99"/></group>`), 0o600)
	hup <- nil
	waitFor("rules not reloaded")
	if l := level(2); l != 9 {
		t.Errorf("level %d after a broken reload, want 9 (kept)", l)
	}
	inW.Close()
	io.Copy(io.Discard, out)
	if c := <-code; c != 0 {
		t.Errorf("exit %d", c)
	}
	if !strings.Contains(stderr.String(), `bad level "99"`) {
		t.Errorf("the broken reload's error was not reported: %s", stderr.String())
	}
}

// SIGTERM (the context) ends a run whose input is still open: the alert in
// hand is out, the first-time-seen keys are saved, exit 0.
func TestStopSavesState(t *testing.T) {
	dir := t.TempDir()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"correlate", "-r", howto, "--state", dir}, inR, outW, io.Discard, fixedEnv())
		outW.Close()
	}()
	if _, err := io.WriteString(inW, ev(0, "192.0.2.9", 2)+"\n"); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(outR)
	line, err := out.ReadBytes('\n')
	if err != nil || !strings.Contains(string(line), `"id":"20100"`) {
		t.Fatalf("alert %q, %v", line, err)
	}
	cancel()
	io.Copy(io.Discard, out)
	if c := <-code; c != 0 {
		t.Errorf("exit %d", c)
	}
	if fi, err := os.Stat(dir + "/first-time-seen"); err != nil || fi.Size() == 0 {
		t.Errorf("state not saved: %v", err)
	}
	inW.Close()
}

// SIGTERM while lines read from the input wait in the pipeline (the writer
// of stdout is slow): every line read is evaluated and its alert written
// before the exit; nothing new is read.
func TestStopDrainsLinesRead(t *testing.T) {
	for round := 0; round < 3; round++ {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		code := make(chan int, 1)
		go func() {
			code <- run(ctx, []string{"correlate", "-r", howto}, inR, outW, io.Discard, fixedEnv())
			outW.Close()
		}()
		var written atomic.Int64
		go func() {
			for i := 0; ; i++ {
				if _, err := io.WriteString(inW, ev(float64(i), fmt.Sprintf("192.0.2.%d", i%200+1), 1)+"\n"); err != nil {
					return
				}
				written.Add(1)
			}
		}()
		// nobody reads stdout: the rules goroutine blocks writing the first
		// alert, the reader fills every batch, then the input stalls
		want := int64(batches)
		for deadline := time.Now().Add(10 * time.Second); written.Load() < want; {
			if time.Now().After(deadline) {
				t.Fatalf("only %d lines were read", written.Load())
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		out, _ := io.ReadAll(outR)
		if c := <-code; c != 0 {
			t.Errorf("exit %d", c)
		}
		inW.Close()
		if n := int64(strings.Count(string(out), "\n")); n != written.Load() {
			t.Fatalf("round %d: %d alerts for %d lines read", round, n, written.Load())
		}
	}
}

// Whole lines before a half line on a quiet pipe are not held back.
func TestHalfLineDoesNotHoldBack(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"correlate", "-r", howto}, inR, outW, io.Discard, fixedEnv())
		outW.Close()
	}()
	go io.WriteString(inW, ev(0, "192.0.2.1", 1)+"\n"+ev(1, "192.0.2.1", 1)+"\n"+ev(2, "192.0.2.1", 1)[:40])
	out := bufio.NewReader(outR)
	got := make(chan int, 1)
	go func() {
		n := 0
		for n < 2 {
			if _, err := out.ReadBytes('\n'); err != nil {
				break
			}
			n++
		}
		got <- n
	}()
	select {
	case n := <-got:
		if n != 2 {
			t.Errorf("%d alerts, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the two whole lines were held back behind the half line")
	}
	cancel()
	io.Copy(io.Discard, out)
	if c := <-code; c != 0 {
		t.Errorf("exit %d", c)
	}
	inW.Close()
}

// TestStopWithSlowRegex: SIGTERM ends correlate within about a second even
// when its rules are slow on every line (64 regexes of the kind that is
// slowest for its size, against the most of a text a regex sees: four
// seconds an event): the lines read but not evaluated by then are dropped
// and counted. It took minutes (with a 64 KiB pattern against a 1 MiB log,
// ten per event).
func TestStopWithSlowRegex(t *testing.T) {
	var rules strings.Builder
	rules.WriteString("<group name=\"slow,\">\n")
	pattern := strings.Repeat(`\.*a`, 125) + "b" // any character, then a, ...: about 60 ms each
	for i := range 64 {
		fmt.Fprintf(&rules, "<rule id=\"%d\" level=\"5\"><regex>%s</regex><description>slow</description></rule>\n", 100001+i, pattern)
	}
	rules.WriteString("</group>\n")
	path := rulesFile(t, rules.String())
	var input strings.Builder
	for i := range 100 {
		fmt.Fprintf(&input, `{"timestamp":"2020-05-14T22:10:%02d.000000+0000","src_ip":"192.0.2.1","full_log":"%s"}`+"\n", i%60, strings.Repeat("a", 8<<10))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	in := &firstRead{r: strings.NewReader(input.String())}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"correlate", "--no-builtin", "-r", path}, in, io.Discard, &stderr, fixedEnv())
	}()
	// Once the first read has returned, its seven lines are being tested,
	// four seconds each (a stop during a read counts its data as unread).
	// The bound is a second and one regex; 10 s only ends a failing test.
	for !in.returned.Load() {
		runtime.Gosched()
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("correlate still running 10 s after SIGTERM")
	}
	if got := stderr.String(); !strings.Contains(got, "correlate: stopped 1s after SIGTERM with ") || !strings.Contains(got, " lines read but not evaluated (rules too slow for them)") {
		t.Errorf("stderr: %s", got)
	}
}

// firstRead notes when its first Read returned.
type firstRead struct {
	r        io.Reader
	returned atomic.Bool
}

func (f *firstRead) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	f.returned.Store(true)
	return n, err
}
