package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		err  error
		want int
	}{
		{nil, OK},
		{base, Failure},
		{New(Config, base), Config},
		{fmt.Errorf("load: %w", New(Usage, base)), Usage},
		{Errorf(Unavailable, "sendmail: %w", base), Unavailable},
	}
	for _, tt := range tests {
		if got := Of(tt.err); got != tt.want {
			t.Errorf("Of(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if New(Config, nil) != nil {
		t.Error("New(code, nil) != nil")
	}
}
