package rule

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
	"github.com/quietwatch/quietwatch/pkg/rule/seen"
	"github.com/quietwatch/quietwatch/pkg/rule/window"
)

// event is an event line at second sec from src, with a signature of
// priority prio (as fastparse writes one).
func event(sec float64, src string, prio int) string {
	t := time.Date(2020, 5, 14, 22, 10, 0, 0, time.UTC).Add(time.Duration(sec * float64(time.Second)))
	sid := 2024360 + prio
	full := fmt.Sprintf("%s  [**] [1:%d:1] TEST [**] [Classification: x] [Priority: %d] {TCP} %s:1000 -> 198.51.100.44:80",
		t.Format("01/02/2006-15:04:05.000000"), sid, prio, src)
	return fmt.Sprintf(`{"timestamp":"%s","src_ip":"%s","dest_ip":"198.51.100.44","alert":{"gid":1,"signature_id":%d,"rev":1},"full_log":"%s"}`,
		t.Format("2006-01-02T15:04:05.000000-0700"), src, sid, full)
}

const howto = "../../testdata/rules/local_rules.xml"

// ruleSet loads the built-in rules (with builtin) and the rules of xml
// (the how-to's file when xml is howto).
func ruleSet(t *testing.T, builtin bool, xml string) *Set {
	t.Helper()
	var srcs []Source
	if builtin {
		srcs = append(srcs, Builtin())
	}
	if xml == howto {
		data, err := os.ReadFile(howto)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, Source{Name: howto, Data: data})
	} else if xml != "" {
		srcs = append(srcs, Source{Name: "rules.xml", Data: []byte(xml)})
	}
	return load(t, srcs...)
}

// outcome is what one event came to: the rule that would be alerted (""
// for none: no rule, level 0, noalert, no_log) and its previous_output.
type outcome struct {
	id   string
	prev int
}

// evaluate runs lines through a new engine for set (--ipv6-prefix 64),
// each at its own timestamp, and returns the alerted outcomes in order.
func evaluate(t *testing.T, set *Set, lines ...string) []outcome {
	t.Helper()
	e := NewEngine(set, window.NewStore(50000), seen.New(1000000), 64)
	pt := NewPretest(e, nil)
	var out []outcome
	for _, l := range lines {
		var f record.EventFields
		if err := record.ScanEvent([]byte(l), &f); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		ev := &Input{}
		pt.Prepare(ev, &f, []byte(l))
		if !e.Pretested(ev) {
			t.Fatalf("%q: not pretested for the engine's set", l)
		}
		now, ok := record.ParseTime(f.Timestamp)
		if !ok {
			t.Fatalf("%q: no time", l)
		}
		res := e.Eval(ev, now)
		if r := res.Rule(); r != nil && r.Level > 0 && !r.NoAlert && !r.NoLog {
			out = append(out, outcome{id: fmt.Sprint(r.ID), prev: len(res.Previous)})
		}
	}
	return out
}

// alerted is the rule ids of outcomes, space-separated.
func alerted(out []outcome) string {
	var s []string
	for _, o := range out {
		s = append(s, o.id)
	}
	return strings.Join(s, " ")
}

func TestTimeframeBoundary(t *testing.T) {
	set := ruleSet(t, true, howto)
	for _, tt := range []struct {
		last float64
		want string
	}{{120, "300012"}, {120.000001, "300011"}} {
		out := evaluate(t, set, event(0, "192.0.2.1", 1), event(1, "192.0.2.1", 1), event(2, "192.0.2.1", 1), event(3, "192.0.2.1", 1), event(tt.last, "192.0.2.1", 1))
		if len(out) != 5 || out[4].id != tt.want {
			t.Errorf("5th at %vs: %v, want last %s", tt.last, alerted(out), tt.want)
		}
	}
}

const small = `<group name="t,">
  <rule id="1" level="5"><match>[Priority: 1]</match><description>base</description></rule>
  <rule id="2" level="9" frequency="3" timeframe="100" ignore="30">
    <if_matched_sid>1</if_matched_sid><same_source_ip/><description>three</description>
  </rule>
  <rule id="3" level="9" frequency="3" timeframe="100">
    <if_matched_sid>1</if_matched_sid><different_srcip/><description>three sources</description>
  </rule>
</group>`

func TestIgnoreFallsBackAndExpires(t *testing.T) {
	var lines []string
	for i := 0; i < 40; i++ {
		lines = append(lines, event(float64(i), "192.0.2.1", 1))
	}
	var fired []int
	for i, o := range evaluate(t, ruleSet(t, false, small), lines...) {
		if o.id == "2" {
			fired = append(fired, i+1)
		} else if o.id != "1" {
			t.Errorf("event %d: rule %s", i+1, o.id)
		}
	}
	// fires on the 3rd (t=2), silent until t=32, fires at t=32 (33rd)
	if fmt.Sprint(fired) != "[3 33]" {
		t.Errorf("rule 2 fired on events %v, want [3 33]", fired)
	}
}

func TestDifferentSrcIP(t *testing.T) {
	set := ruleSet(t, false, strings.Replace(small, `<same_source_ip/>`, `<srcip>203.0.113.0/24</srcip><same_source_ip/>`, 1))
	out := evaluate(t, set, event(0, "192.0.2.1", 1), event(1, "192.0.2.1", 1), event(2, "192.0.2.1", 1), event(3, "192.0.2.2", 1), event(4, "192.0.2.3", 1))
	// 3rd: only one other source counted (none): 1 of 3; 4th: 192.0.2.1 x3 differ -> 4 >= 3
	if want := "1 1 1 3 1"; alerted(out) != want {
		t.Errorf("ids %v, want %s", alerted(out), want)
	}
}

// different_srcip: the current source's own earlier events do not push the
// other sources' events out of the count (A X X B X: the last X counts A
// and B).
func TestDifferentSrcIPNotPushedOut(t *testing.T) {
	set := ruleSet(t, false, `<group name="t,">
  <rule id="1" level="5"><match>[Priority: 1]</match><description>base</description></rule>
  <rule id="3" level="9" frequency="3" timeframe="100">
    <if_matched_sid>1</if_matched_sid><srcip>192.0.2.9</srcip><different_srcip/><description>three sources, the last from .9</description>
  </rule>
</group>`)
	out := evaluate(t, set, event(0, "192.0.2.1", 1), event(1, "192.0.2.9", 1), event(2, "192.0.2.9", 1), event(3, "192.0.2.2", 1), event(4, "192.0.2.9", 1))
	if want := "1 1 1 1 3"; alerted(out) != want {
		t.Errorf("ids %v, want %s", alerted(out), want)
	}
}

func TestUsedUpWithoutIgnore(t *testing.T) {
	var lines []string
	for i := 0; i < 10; i++ {
		lines = append(lines, event(float64(i), "192.0.2.1", 1))
	}
	out := evaluate(t, ruleSet(t, false, strings.Replace(small, ` ignore="30"`, ``, 1)), lines...)
	if want := "1 1 2 1 1 2 1 1 2 1"; alerted(out) != want {
		t.Errorf("ids %v, want %s (fires on every 3rd, the counted events used up)", alerted(out), want)
	}
}

func TestBuiltinChain(t *testing.T) {
	var lines []string
	for i := 0; i < 60; i++ {
		lines = append(lines, event(float64(i*10), "192.0.2.7", 3))
	}
	out := evaluate(t, ruleSet(t, true, ""), lines...)
	got := alerted(out)
	if !strings.HasPrefix(got, "20100 20101 20101 20101 20101 20101 20101 20101 20151 20152") {
		t.Errorf("ids start %s", got)
	}
	found := false
	for _, o := range out {
		if o.id == "20161" {
			found = true
			if o.prev != 2 {
				t.Errorf("20161 with %d previous events, want 2", o.prev)
			}
			break
		}
	}
	if !found {
		t.Errorf("20161 never fired: %s", got)
	}
}

// A pretest cut short (its late flag set) leaves the event unpretested, so
// the stage knows to test it again or drop it; the engine then tests the
// rules itself.
func TestPretestCutShort(t *testing.T) {
	set := ruleSet(t, false, small)
	e := NewEngine(set, window.NewStore(10), seen.New(10), 64)
	var late atomic.Bool
	late.Store(true)
	l := []byte(event(0, "192.0.2.1", 1))
	var f record.EventFields
	if err := record.ScanEvent(l, &f); err != nil {
		t.Fatal(err)
	}
	ev := &Input{}
	NewPretest(e, &late).Prepare(ev, &f, l)
	if e.Pretested(ev) {
		t.Fatal("a pretest cut short counts as done")
	}
	NewPretest(e, nil).Run(ev)
	if !e.Pretested(ev) {
		t.Fatal("pretest not done")
	}
	if r := e.Eval(ev, 0).Rule(); r == nil || r.ID != 1 {
		t.Errorf("rule %v, want 1", r)
	}
	// another engine (a reload) does not take the old pretest
	if NewEngine(ruleSet(t, false, small), window.NewStore(10), seen.New(10), 64).Pretested(ev) {
		t.Error("pretested for a set loaded later")
	}
}
