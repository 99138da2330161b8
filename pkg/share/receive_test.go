package share

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/fleet"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// TestDelayedMessage: a message that reaches a server late (it was cut
// off and its NATS server kept the message for it) ends when its origin
// said, not a TTL after its arrival; a stored one a TTL after it was
// stored.
func TestDelayedMessage(t *testing.T) {
	now := goldenNow
	var out bytes.Buffer
	w := record.NewWriter(&out)
	rc := newReceiver("web3", fleet.NewGuard(fleet.DefaultPolicy()), 100, func() time.Time { return now }, newOutput(w), newDiags(&out, "share", func() time.Time { return now }))
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	body := func(ip string) []byte { return []byte(`{"src_ip":"` + ip + `","rule":{"level":10}}`) }
	rc.handle("qw.ban.web1.198-51-100-1", "3", ms(now.Add(-time.Second)), body("198.51.100.1"), time.Time{})
	rc.handle("qw.ban.web1.198-51-100-2", "3", ms(now.Add(2*time.Second)), body("198.51.100.2"), time.Time{})
	rc.handle("qw.ban.web1.198-51-100-3", "3", ms(now.Add(time.Hour)), body("198.51.100.3"), time.Time{})
	rc.handle("qw.ban.web1.198-51-100-4", "3", "", body("198.51.100.4"), now.Add(-4*time.Second))
	rc.handle("qw.ban.web1.198-51-100-5", "3", "x", body("198.51.100.5"), now.Add(-2*time.Second))
	got := out.String() // each peer record is flushed at once
	for _, want := range []string{
		`"src_ip":"198.51.100.2","rule":{"level":10},"fleet":{"origin":"web1","received":"2026-12-02T00:00:00.000000+0000","expires":"2026-12-02T00:00:02.000000+0000","ttl_s":2}}`,
		`"src_ip":"198.51.100.3","rule":{"level":10},"fleet":{"origin":"web1","received":"2026-12-02T00:00:00.000000+0000","expires":"2026-12-02T00:00:03.000000+0000","ttl_s":3}}`,
		`"src_ip":"198.51.100.5","rule":{"level":10},"fleet":{"origin":"web1","received":"2026-12-02T00:00:00.000000+0000","expires":"2026-12-02T00:00:01.000000+0000","ttl_s":1}}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(got, "198.51.100.1") || strings.Contains(got, "198.51.100.4") {
		t.Errorf("an expired ban written:\n%s", got)
	}
}
