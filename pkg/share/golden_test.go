package share

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/quietwatch/quietwatch/internal/golden"
	"github.com/quietwatch/quietwatch/pkg/fleet"
)

// goldenNow is the fixed clock of the golden cases.
var goldenNow = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

const (
	localSentinel = `{"sentinel":"local"}`
	peerSentinel  = `{"src_ip":"198.51.100.250","rule":{"level":10},"id":"sentinel"}`
)

// TestGolden runs testdata/share/*.txtar (internal/golden) against an
// in-process NATS server. A case's comment may hold "flags: ..."; sections:
// input (this server's records), peers (one message a line: SUBJECT TTL
// BODY, sent after the input has come out), want.jsonl (stdout), published
// (the subjects share published, sorted, each once) and stderr. share runs
// as origin "golden" with a fixed clock; input is fed whole, byte by byte
// and with CRLF line ends.
func TestGolden(t *testing.T) {
	golden.Run(t, "../../testdata/share", func(t *testing.T, c *golden.Case) {
		input, _ := c.Section("input")
		peers, _ := c.Section("peers")
		for _, feed := range golden.Feeds(input) {
			out, pub, stderr := runGolden(t, c.Flags(nil), feed.Reader(), string(peers))
			c.Expect(t, feed, "want.jsonl", out)
			c.Expect(t, feed, "published", pub)
			c.Expect(t, feed, "stderr", stderr)
		}
	})
}

// runGolden runs share on input (written as each of its reads returns it)
// and then peers' messages.
func runGolden(t *testing.T, flags []string, input io.Reader, peers string) (out, published, stderr string) {
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
	e.Now = func() time.Time { return goldenNow }
	p := start(t, e, append([]string{"--nats", "x", "--origin", "golden"}, flags...)...)
	waitStream(t, ns)
	p.waitSynced(t)
	buf := make([]byte, 64<<10)
	for {
		n, err := input.Read(buf)
		if n > 0 {
			p.writeRaw(t, string(buf[:n]))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
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
