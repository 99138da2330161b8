package share

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/quietwatch/quietwatch/pkg/fleet"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenNow is the fixed clock of the golden cases.
var goldenNow = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

const (
	localSentinel = `{"sentinel":"local"}`
	peerSentinel  = `{"src_ip":"198.51.100.250","rule":{"level":10},"id":"sentinel"}`
)

// TestGolden runs testdata/share/*.txtar against an in-process NATS
// server. A case's comment may hold "flags: ..."; sections: input (this
// server's records), peers (one message a line: SUBJECT TTL BODY, sent
// after the input has come out), want.jsonl (stdout), published (the
// subjects share published, sorted, each once) and optional stderr. share runs as
// origin "golden" with a fixed clock; input is fed whole, byte by byte and
// with CRLF line ends.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/share/*.txtar")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sec := map[string]string{}
			for _, f := range ar.Files {
				sec[f.Name] = string(f.Data)
			}
			var flags []string
			for _, l := range strings.Split(string(ar.Comment), "\n") {
				if f, ok := strings.CutPrefix(l, "flags:"); ok {
					flags = strings.Fields(f)
				}
			}
			modes := []string{"whole", "bytes", "crlf"}
			if *update {
				modes = modes[:1]
			}
			for _, mode := range modes {
				out, pub, stderr := runGolden(t, flags, sec["input"], sec["peers"], mode)
				if *update {
					for i := range ar.Files {
						switch ar.Files[i].Name {
						case "want.jsonl":
							ar.Files[i].Data = []byte(out)
						case "published":
							ar.Files[i].Data = []byte(pub)
						case "stderr":
							ar.Files[i].Data = []byte(stderr)
						}
					}
					if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if out != sec["want.jsonl"] {
					t.Errorf("%s: stdout:\n%s\nwant:\n%s", mode, out, sec["want.jsonl"])
				}
				if pub != sec["published"] {
					t.Errorf("%s: published:\n%s\nwant:\n%s", mode, pub, sec["published"])
				}
				if want, ok := sec["stderr"]; ok && stderr != want {
					t.Errorf("%s: stderr:\n%s\nwant:\n%s", mode, stderr, want)
				}
			}
		})
	}
}

func runGolden(t *testing.T, flags []string, input, peers, mode string) (out, published, stderr string) {
	t.Helper()
	ns := newServer(t)
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(fleet.BanPrefix + ".golden.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	e := testEnv(ns)
	e.now = func() time.Time { return goldenNow }
	p := start(t, e, append([]string{"--nats", "x", "--origin", "golden"}, flags...)...)
	waitStream(t, ns)
	p.waitSynced(t)
	switch mode {
	case "whole":
		p.writeRaw(t, input)
	case "bytes":
		for i := 0; i < len(input); i++ {
			p.writeRaw(t, input[i:i+1])
		}
	case "crlf":
		p.writeRaw(t, strings.ReplaceAll(input, "\n", "\r\n"))
	}
	p.write(t, localSentinel)
	var lines []string
	for {
		l := p.next(t, 5*time.Second)
		if l == localSentinel {
			break
		}
		lines = append(lines, l)
	}
	for _, l := range strings.Split(strings.TrimSuffix(peers, "\n"), "\n") {
		if l == "" {
			continue
		}
		f := strings.SplitN(l, " ", 3)
		if len(f) != 3 {
			t.Fatalf("peers: %q: want SUBJECT TTL BODY", l)
		}
		m := &nats.Msg{Subject: f[0], Data: []byte(f[2]), Header: nats.Header{}}
		if f[1] != "-" {
			m.Header.Set(fleet.TTLHeader, f[1])
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	sm := &nats.Msg{Subject: fleet.BanPrefix + ".zz-sentinel.198-51-100-250", Data: []byte(peerSentinel), Header: nats.Header{}}
	sm.Header.Set(fleet.TTLHeader, "60")
	if err := nc.PublishMsg(sm); err != nil {
		t.Fatal(err)
	}
	for {
		l := p.next(t, 5*time.Second)
		if strings.Contains(l, `"id":"sentinel"`) {
			break
		}
		lines = append(lines, l)
	}
	if c := p.end(t); c != 0 {
		t.Fatalf("exit %d; stderr:\n%s", c, p.stderr.String())
	}
	for l := range p.lines {
		lines = append(lines, l)
	}
	// Everything share published was routed to sub before share had its
	// acknowledgement and ended: after a round trip it is all in sub.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var pubs []string
	for {
		m, err := sub.NextMsg(10 * time.Millisecond)
		if err != nil {
			break
		}
		if !strings.Contains(string(m.Data), `"id":"own"`) { // the case's own-origin peer message
			pubs = append(pubs, m.Subject)
		}
	}
	// A publish that must wait for the stream may go out after a later
	// one: the order of publishing is no contract.
	slices.Sort(pubs)
	pubs = slices.Compact(pubs) // the live-path repeats
	return joinLines(lines), joinLines(pubs), p.stderr.String()
}

func joinLines(ls []string) string {
	if len(ls) == 0 {
		return ""
	}
	return strings.Join(ls, "\n") + "\n"
}
