package command

import (
	"bytes"
	"testing"
	"time"
)

func TestDiag(t *testing.T) {
	var b bytes.Buffer
	d := Diag{Prog: "demo", W: &b}
	d.Printf("stdin:%d: %s", 3, "bad")
	d.Printf("ends with a newline\n")
	if want := "demo: stdin:3: bad\ndemo: ends with a newline\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestHooksClock(t *testing.T) {
	fixed := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := (Hooks{Now: func() time.Time { return fixed }}).Clock()(); !got.Equal(fixed) {
		t.Errorf("Clock() = %v, want %v", got, fixed)
	}
	if got := (Hooks{}).Clock()(); time.Since(got) > time.Minute {
		t.Errorf("zero Hooks: Clock() = %v, want about now", got)
	}
	h, stop := ProcessHooks()
	defer stop()
	if h.Hup == nil || h.Now == nil {
		t.Error("ProcessHooks: Hup or Now unset")
	}
}
