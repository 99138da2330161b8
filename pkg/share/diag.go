package share

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/quietwatch/quietwatch/pkg/command"
)

// diags writes share's diagnostics, one line each, and keeps a flood of
// the same kind (a peer's refused bans, say) to one line now and a count
// every interval.
type diags struct {
	mu       sync.Mutex
	out      command.Diag
	now      func() time.Time
	interval time.Duration
	seen     map[string]bool
	counts   map[string]int
	last     time.Time
}

func newDiags(w io.Writer, prog string, now func() time.Time) *diags {
	return &diags{out: command.Diag{Prog: prog, W: w}, now: now, interval: 10 * time.Second, seen: map[string]bool{}, counts: map[string]int{}, last: now()}
}

func (d *diags) printf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.line(fmt.Sprintf(format, args...))
}

func (d *diags) line(msg string) {
	d.out.Printf("%s", strings.ReplaceAll(msg, "\n", " "))
}

// limited writes the first message of kind and then only counts them;
// the counts go out with flush.
func (d *diags) limited(kind, format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.seen[kind] {
		d.seen[kind] = true
		d.line(fmt.Sprintf(format, args...) + " (more of these are counted)")
	} else {
		d.counts[kind]++
	}
	if now := d.now(); now.Sub(d.last) >= d.interval {
		d.flushLocked(now)
	}
}

// flush writes the counts gathered since the last flush.
func (d *diags) flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.flushLocked(d.now())
}

func (d *diags) flushLocked(now time.Time) {
	d.last = now
	if len(d.counts) == 0 {
		return
	}
	kinds := make([]string, 0, len(d.counts))
	for k := range d.counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, d.counts[k])
	}
	d.line("more since the last report: " + strings.Join(parts, ", "))
	clear(d.counts)
}
