package correlate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// ev is an event line at second sec (microseconds us) from src.
func ev(sec float64, src string, prio int) string {
	t := time.Date(2020, 5, 14, 22, 10, 0, 0, time.UTC).Add(time.Duration(sec * float64(time.Second)))
	sid := 2024360 + prio
	full := fmt.Sprintf("%s  [**] [1:%d:1] TEST [**] [Classification: x] [Priority: %d] {TCP} %s:1000 -> 198.51.100.44:80",
		t.Format("01/02/2006-15:04:05.000000"), sid, prio, src)
	return fmt.Sprintf(`{"timestamp":"%s","src_ip":"%s","dest_ip":"198.51.100.44","alert":{"gid":1,"signature_id":%d,"rev":1},"full_log":"%s"}`,
		t.Format("2006-01-02T15:04:05.000000-0700"), src, sid, full)
}

// correlate runs the stage on lines with args and returns the rule ids of
// the alerts, the alerts, stderr and the exit code.
func correlate(t *testing.T, args []string, lines ...string) ([]string, []record.Alert, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	in := strings.Join(lines, "\n") + "\n"
	code := run(context.Background(), append([]string{"correlate"}, args...), strings.NewReader(in), &out, &errb, fixedEnv())
	var ids []string
	var alerts []record.Alert
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" {
			continue
		}
		var a record.Alert
		if err := record.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("bad alert %q: %v", l, err)
		}
		ids = append(ids, a.Rule.ID)
		alerts = append(alerts, a)
	}
	return ids, alerts, errb.String(), code
}

func rulesFile(t *testing.T, xml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.xml")
	if err := os.WriteFile(p, []byte(xml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const howto = "../../testdata/rules/local_rules.xml"

func TestMaxKeysEvicts(t *testing.T) {
	var lines []string
	for i := 0; i < 10; i++ {
		lines = append(lines, ev(float64(i), "192.0.2.1", 1), ev(float64(i), "192.0.2.2", 1))
	}
	ids, _, _, _ := correlate(t, []string{"-r", howto, "--max-keys", "1"}, lines...)
	for _, id := range ids {
		if id != "300011" {
			t.Fatalf("with one key for two alternating sources a composite fired: %v", ids)
		}
	}
	ids, _, _, _ = correlate(t, []string{"-r", howto, "--max-keys", "2"}, lines...)
	if ids[8] != "300012" || ids[9] != "300012" {
		t.Errorf("with two keys: %v", ids)
	}
}

func TestStatePersistsFirstTimeSeen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ids, _, _, _ := correlate(t, []string{"-r", howto, "--state", dir}, ev(0, "192.0.2.5", 2))
	if strings.Join(ids, " ") != "20100" {
		t.Fatalf("first run %v", ids)
	}
	ids, _, _, _ = correlate(t, []string{"-r", howto, "--state", dir}, ev(10, "192.0.2.5", 2), ev(11, "192.0.2.6", 2))
	if strings.Join(ids, " ") != "300001 20100" {
		t.Errorf("second run %v, want 300001 20100", ids)
	}
}

func TestWallClock(t *testing.T) {
	_, alerts, _, _ := correlate(t, []string{"-r", howto, "--clock", "wall"}, ev(0, "192.0.2.1", 1))
	if len(alerts) != 1 || alerts[0].ID != fmt.Sprintf("%d.1", wallClock().Unix()) {
		t.Errorf("alerts %+v", alerts)
	}
}

func TestConfigErrors(t *testing.T) {
	ids, _, stderr, code := correlate(t, []string{"-r", "../../testdata/rules/broken/three-mistakes.xml"}, ev(0, "192.0.2.1", 1))
	want := `correlate: ../../testdata/rules/broken/three-mistakes.xml:5:32: unknown attribute "severity" on <rule>
correlate: ../../testdata/rules/broken/three-mistakes.xml:11:21: bad level "eleven": want a number from 0 to 15
correlate: ../../testdata/rules/broken/three-mistakes.xml:18:5: if_sid 399999 names no rule
`
	if code != 78 || stderr != want || ids != nil {
		t.Errorf("exit %d, ids %v, stderr:\n%s\nwant:\n%s", code, ids, stderr, want)
	}
	_, _, stderr, code = correlate(t, []string{"-t", "-r", howto})
	if code != 0 || stderr != "" {
		t.Errorf("--check: exit %d, %s", code, stderr)
	}
	_, _, stderr, code = correlate(t, []string{"-t", "-r", "/nonexistent/rules.xml"})
	if code != 78 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d, %s", code, stderr)
	}
	for _, args := range [][]string{{"--clock", "sundial"}, {"--no-builtin"}, {"--max-keys", "0"}, {"--bogus"}} {
		if _, _, _, code := correlate(t, args); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestExplain(t *testing.T) {
	_, _, stderr, _ := correlate(t, []string{"-r", howto, "--explain"}, ev(0, "192.0.2.1", 2))
	for _, want := range []string{
		"correlate: stdin:1: rule 300011 (level 10) no: match \"[Priority: 1]\" not found\n",
		"correlate: stdin:1: rule 20100 (level 8) matched: first time seen\n",
		"correlate: stdin:1: alert: rule 20100 level 8\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("explain lacks %q:\n%s", want, stderr)
		}
	}
}

func TestIDsAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	os.WriteFile(a, []byte(ev(0, "192.0.2.1", 1)+"\n"+ev(0, "192.0.2.1", 1)+"\n"), 0o600)
	os.WriteFile(b, []byte(ev(0, "192.0.2.1", 1)+"\n"), 0o600)
	_, alerts, stderr, code := correlate(t, []string{"-r", howto, a, b})
	var got []string
	for _, al := range alerts {
		got = append(got, al.ID)
	}
	if code != 0 || stderr != "" || strings.Join(got, " ") != "1589494200.1 1589494200.2 1589494200.3" {
		t.Errorf("ids %v, exit %d, %s", got, code, stderr)
	}
	_, _, stderr, code = correlate(t, []string{"-r", howto, filepath.Join(dir, "none.jsonl")})
	if code != 1 || !strings.Contains(stderr, "none.jsonl") {
		t.Errorf("missing input: exit %d, %s", code, stderr)
	}
}

func TestTreeFeatures(t *testing.T) {
	p := rulesFile(t, `<var name="ADMIN">203.0.113.12</var>
<group name="base,">
  <rule id="10" level="5"><match>[Priority: </match><description>any priority</description></rule>
</group>
<group name="local,">
  <rule id="11" level="0"><if_sid>10</if_sid><id>^1:2024363:</id><description>ignore priority 3</description></rule>
  <rule id="12" level="7"><if_group>base</if_group><srcip>$ADMIN</srcip><options>no_log</options><description>admin</description></rule>
  <rule id="13" level="6"><if_sid>10</if_sid><regex>Priority: 2]</regex><description>prio 2</description></rule>
  <rule id="14" level="9"><if_level>6</if_level><dstip>!198.51.100.0/24</dstip><description>elsewhere</description></rule>
  <rule id="15" level="4" noalert="1"><if_sid>10</if_sid><match>from-noalert</match><description>quiet</description></rule>
</group>`)
	ids, _, stderr, code := correlate(t, []string{"--no-builtin", "-r", p},
		ev(0, "192.0.2.1", 3),    // 11: level 0, dropped
		ev(1, "203.0.113.12", 1), // 12: no_log, not written
		ev(2, "192.0.2.1", 2),    // 13
		ev(3, "192.0.2.1", 1),    // 10
		strings.Replace(ev(4, "192.0.2.1", 2), "198.51.100.44", "192.0.2.99", -1), // 13 -> 14 (if_level 6, dstip outside)
		strings.Replace(ev(5, "192.0.2.1", 1), "TEST", "from-noalert", 1),         // 15 noalert
	)
	if code != 0 || stderr != "" || strings.Join(ids, " ") != "13 10 14" {
		t.Errorf("ids %v (exit %d, %s), want 13 10 14", ids, code, stderr)
	}
}

func TestFutureTimestampNotBelieved(t *testing.T) {
	future := strings.Replace(ev(1, "192.0.2.1", 1), "2020-05-14T", "2099-05-14T", 1)
	_, alerts, _, _ := correlate(t, []string{"-r", howto}, ev(0, "192.0.2.1", 1), future, ev(2, "192.0.2.1", 1))
	var got []string
	for _, a := range alerts {
		got = append(got, a.ID)
	}
	if want := "1589494200.1 1589494200.2 1589494202.3"; strings.Join(got, " ") != want {
		t.Errorf("ids %v, want %s: a 2099 event is evaluated at the newest believable time", got, want)
	}
}

// The bound on believable event times is the env's clock plus maxAhead,
// not the process's: with the clock at wallClock (2020-05-14 22:10:17), an
// event stamped two days later is evaluated at the newest believable time,
// one stamped 23 hours later at its own.
func TestAheadBoundUsesClockHook(t *testing.T) {
	later := func(sec float64, day string) string {
		return strings.Replace(ev(sec, "192.0.2.1", 1), "2020-05-14T", day, 1)
	}
	_, alerts, _, _ := correlate(t, []string{"-r", howto}, ev(0, "192.0.2.1", 1), later(1, "2020-05-16T"), later(2, "2020-05-15T"))
	var got []string
	for _, a := range alerts {
		got = append(got, a.ID)
	}
	if want := "1589494200.1 1589494200.2 1589580602.3"; strings.Join(got, " ") != want {
		t.Errorf("ids %v, want %s", got, want)
	}
}

// A first event without a timestamp must not pin the event clock to the
// machine's clock: the replayed events after it keep their own times.
func TestNoTimestampFirstKeepsEventClock(t *testing.T) {
	var lines []string
	for i := 0; i < 6; i++ {
		lines = append(lines, ev(float64(i*60), "192.0.2.1", 1))
	}
	ids, _, _, _ := correlate(t, []string{"-r", howto}, lines...)
	if want := "300011 300011 300011 300011 300011 300011"; strings.Join(ids, " ") != want {
		t.Fatalf("without the stamp-less line: %v, want %s", ids, want)
	}
	noStamp := strings.Replace(ev(0, "192.0.2.1", 1), `"timestamp"`, `"ts"`, 1)
	ids, alerts, _, _ := correlate(t, []string{"-r", howto}, append([]string{noStamp}, lines...)...)
	if want := "300011 300011 300011 300011 300011 300011 300011"; strings.Join(ids, " ") != want {
		t.Errorf("with a stamp-less first line: %v, want %s", ids, want)
	}
	if len(alerts) == 7 && (alerts[0].ID != "0.1" || alerts[1].ID != "1589494200.2") {
		t.Errorf("ids %s %s, want 0.1 (time unknown) and 1589494200.2", alerts[0].ID, alerts[1].ID)
	}
	// after the first stamped event, a stamp-less one is evaluated at the newest time seen
	_, alerts, _, _ = correlate(t, []string{"-r", howto}, lines[0], lines[1], noStamp)
	if len(alerts) != 3 || alerts[2].ID != "1589494260.3" {
		t.Errorf("alerts %+v", alerts)
	}
}

// A damaged state file keeps the keys before the damage (one diagnostic):
// no burst of first-time alerts for them, and the file is written back.
func TestTruncatedStateKeepsKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	var first []string
	for i := 0; i < 5; i++ {
		first = append(first, ev(float64(i), fmt.Sprintf("192.0.2.%d", i+1), 2))
	}
	if ids, _, _, _ := correlate(t, []string{"-r", howto, "--state", dir}, first...); strings.Join(ids, " ") != "20100 20100 20100 20100 20100" {
		t.Fatalf("first run %v", ids)
	}
	path := filepath.Join(dir, "first-time-seen")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, data[:len(data)-3], 0o600)
	ids, _, stderr, code := correlate(t, []string{"-r", howto, "--state", dir}, first...)
	n20100 := strings.Count(strings.Join(ids, " "), "20100")
	if code != 0 || n20100 != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "truncated") {
		t.Errorf("after truncation: ids %v (want one 20100: the cut key), exit %d, stderr %q", ids, code, stderr)
	}
	ids, _, stderr, _ = correlate(t, []string{"-r", howto, "--state", dir}, first...)
	if strings.Contains(strings.Join(ids, " "), "20100") || stderr != "" {
		t.Errorf("third run: ids %v, stderr %q: the state file was not repaired", ids, stderr)
	}
}
