package correlate

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// FuzzCorrelate feeds arbitrary input to the whole stage: it must not
// crash, and every line it writes must be a JSON object that starts with
// the bytes of an input line.
func FuzzCorrelate(f *testing.F) {
	f.Add([]byte(ev(0, "192.0.2.1", 1) + "\n" + ev(1, "192.0.2.1", 2) + "\n"))
	f.Add([]byte(`{"full_log":"05/14-22:10:17.391373  [**] [Priority: 1]","timestamp":"2020-05-14T22:10:17Z","src_ip":"::1"}` + "\n{}\n[]\n"))
	f.Add([]byte(`{"alert":{"gid":1,"signature_id":2,"rev":3},"src_ip":"a\u0000b","timestamp":"x"}`))
	// IPv6 sources counted by network, mapped, zoned, malformed
	f.Add([]byte(ev(0, "2001:db8::1", 1) + "\n" + ev(1, "2001:db8::2", 1) + "\n" + ev(2, "::ffff:192.0.2.1", 1) + "\n" + ev(3, "fe80::1%eth0", 2) + "\n" + ev(4, "2001:db8::1::2", 2) + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		code := run(context.Background(), []string{"correlate", "-r", howto, "--explain"}, bytes.NewReader(in), &out, io.Discard, fixedEnv())
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			if l == "" {
				continue
			}
			if !record.Valid([]byte(l)) {
				t.Fatalf("invalid alert %q", l)
			}
		}
	})
}
