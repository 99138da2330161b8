package ban_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// A manual ban (block ban through the socket) made while a backend's last
// check failed does not claim that backend either: the add may sit in a
// chain nothing jumps to. It is pending, like a ban from an alert, and is
// added for good once a check succeeds.
func TestManualNotClaimedOnFailedCheck(t *testing.T) {
	r := newRig(t, ban.Policy{Timeout: time.Hour})
	r.m.SetVerifyEvery(5 * time.Second)
	broken := true
	r.fake.Fail = func(kind string) error {
		if kind == "repair" && broken {
			return errors.New("chain cannot be created")
		}
		return nil
	}
	if _, err := r.m.Handle(t0.Add(time.Second), []*record.Alert{alert("192.0.2.1", 10, "1")}); err == nil {
		t.Fatal("the check did not fail")
	}
	// The check may run again with the manual ban, and fail again.
	ds, err := r.m.Manual(t0.Add(2*time.Second), netip.MustParseAddr("192.0.2.9"), time.Hour)
	if err != nil && !strings.Contains(err.Error(), "fake: check: ") || len(ds) != 1 {
		t.Fatal(err)
	}
	if len(ds[0].Ban.Backends) != 0 || !slices.Equal(ds[0].Ban.Pending, []string{"fake"}) {
		t.Fatalf("manual ban claims %v, pending %v", ds[0].Ban.Backends, ds[0].Ban.Pending)
	}
	broken = false
	next, _ := r.m.NextExpiry()
	if _, err := r.m.Reap(next); err != nil {
		t.Fatal(err)
	}
	for _, b := range r.m.Bans() {
		if !slices.Equal(b.Backends, []string{"fake"}) || len(b.Pending) != 0 {
			t.Errorf("after a good check: %+v", b)
		}
	}
}
