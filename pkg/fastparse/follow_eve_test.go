package fastparse

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// eveSeqLine is sequence line n as Suricata's eve.json would have it: an
// alert whose signature carries n, and every tenth time a flow record
// before it (skipped, counted).
func eveSeqLine(n int) string {
	alert := fmt.Sprintf(`{"timestamp":"2020-05-14T22:%02d:%02d.%06d+0000","flow_id":%d,"in_iface":"eth0","event_type":"alert","src_ip":"198.51.100.%d","src_port":%d,"dest_ip":"198.51.100.44","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN seq %d","category":"Web Application Attack","severity":1},"app_proto":"http"}`+"\n",
		n/60000%60, n/1000%60, n%1000000, 1000000+n, n%250+1, 1024+n%60000, n)
	if n%10 == 0 {
		return fmt.Sprintf(`{"timestamp":"2020-05-14T22:10:17.000000+0000","flow_id":%d,"event_type":"flow","flow":{"pkts_toserver":1}}`+"\n", n) + alert
	}
	return alert
}

// onlySummaries checks that stderr has nothing but the count of eve.json
// records that were not alerts, one line per run.
func onlySummaries(t *testing.T, stderr string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if l != "" && !strings.Contains(l, "eve.json records not alerts, skipped (flow ") {
			t.Errorf("stderr: %s", l)
		}
	}
}

// TestFollowEVERotations: eve.json is followed exactly like fast.log
// (--format auto decides by its first byte): rename rotation,
// copytruncate, both while stopped too, restarts from the position file:
// every alert comes out exactly once.
func TestFollowEVERotations(t *testing.T) {
	const total = 40000
	dir := t.TempDir()
	s := &suricata{t: t, path: filepath.Join(dir, "eve.json"), lineFn: eveSeqLine}
	s.open()
	defer func() { s.f.Close() }()
	posFile := filepath.Join(dir, "fastparse.pos")
	args := []string{"-f", s.path, "--position", posFile, "--poll", "5ms"}
	var stdout, stderr syncBuffer
	s.write(10)
	in := startFollow(t, append(args, "--from-start"), &stdout, &stderr)
	inCurrent := func() { caughtUp(t, &stdout, s.genStart+1) }
	steps := []struct {
		at int
		do func()
	}{
		{5000, func() { inCurrent(); s.renameRotate() }},
		{10000, func() { inCurrent(); in.stop(t) }},
		{12000, s.copyTruncate}, // while stopped
		{14000, func() { in = startFollow(t, args, &stdout, &stderr) }},
		{20000, func() { inCurrent(); s.copyTruncate() }},
		{25000, func() { inCurrent(); in.stop(t) }},
		{27000, s.renameRotate}, // while stopped
		{29000, func() { in = startFollow(t, args, &stdout, &stderr) }},
		{35000, func() { inCurrent(); s.renameRotate() }},
	}
	for _, step := range steps {
		s.write(step.at)
		step.do()
	}
	s.write(total)
	caughtUp(t, &stdout, total)
	in.stop(t)
	checkOnce(t, stdout.String(), total)
	onlySummaries(t, stderr.String())
}

// TestFollowSeveral: Suricata 8's threaded eve (eve.1.json, eve.2.json)
// followed as several -f, each with its position in POSFILE.<name>,
// across a restart: every alert of both comes out exactly once.
func TestFollowSeveral(t *testing.T) {
	const half = 10000
	dir := t.TempDir()
	var ws [2]*suricata
	for i := range ws {
		k := i
		ws[i] = &suricata{t: t, path: filepath.Join(dir, fmt.Sprintf("eve.%d.json", i+1)),
			lineFn: func(n int) string { return eveSeqLine(2*n + k) }}
		ws[i].open()
		defer ws[i].f.Close()
	}
	posFile := filepath.Join(dir, "fastparse.pos")
	args := []string{"-f", ws[0].path, "-f", ws[1].path, "--position", posFile, "--poll", "5ms", "--format", "eve"}
	var stdout, stderr syncBuffer
	for _, w := range ws {
		w.write(1)
	}
	in := startFollow(t, append(args, "--from-start"), &stdout, &stderr)
	for _, w := range ws {
		w.write(half / 2)
	}
	caughtUp(t, &stdout, half)
	in.stop(t)
	for _, w := range ws {
		w.write(half * 3 / 4)
	}
	in = startFollow(t, args, &stdout, &stderr)
	for _, w := range ws {
		w.write(half)
	}
	caughtUp(t, &stdout, 2*half)
	in.stop(t)
	checkOnce(t, stdout.String(), 2*half)
	onlySummaries(t, stderr.String())
	for _, name := range []string{"fastparse.pos.eve.1.json", "fastparse.pos.eve.2.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
}

// TestFollowInotify: with a poll of an hour and no SIGHUP, a line written
// to the followed file comes out: inotify woke the follower. Then the
// file is rotated away (renamed, a new one created): the new file's lines
// come out too.
func TestFollowInotify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "eve.json")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	in := startFollow(t, []string{"-f", path, "--poll", "1h", "--format", "eve"}, &stdout, &stderr)
	appendLine := func(p string, n int) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(eveSeqLine(n))
		f.Close()
	}
	// Until fastparse has opened the file, a line written now would be
	// before its start (it starts at the end): write until it sees one.
	deadline := time.Now().Add(time.Minute)
	n := 1
	for ; stdout.lines() == 0; n++ {
		if time.Now().After(deadline) {
			t.Fatal("no line after a minute")
		}
		appendLine(path, n)
		time.Sleep(20 * time.Millisecond) // polling for the result, with a deadline
	}
	// Now each line must come out without a poll.
	for range 3 {
		seen := stdout.lines()
		appendLine(path, n)
		n++
		caughtUpWithin(t, &stdout, seen+1, time.Minute)
	}
	// Rename rotation: the new file is read from its start.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	seen := stdout.lines()
	appendLine(path, n)
	caughtUpWithin(t, &stdout, seen+1, time.Minute)
	in.stop(t)
	if stderr.String() != "" {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// caughtUpWithin waits until n lines came out, failing after d.
func caughtUpWithin(t *testing.T, out *syncBuffer, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for out.lines() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines out after %v, want %d", out.lines(), d, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
