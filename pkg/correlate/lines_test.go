package correlate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/quietwatch/quietwatch/pkg/record"
)

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(b []byte) (int, error) { return c.r.Read(b[:min(len(b), c.n)]) }

// The reading goroutine splits its blocks into lines as record.Reader
// does: over-long lines (also at the end, and one just at the limit),
// CRLF, blank lines, a last line without newline, whatever the sizes the
// input arrives in. Every way of feeding must give the same output as
// the reference: the lines record.Reader returns, numbered the same.
func TestReaderEdges(t *testing.T) {
	atLimit := `{"a":"` + strings.Repeat("y", maxLine-8) + `"}`
	// random lines: events, short objects, blanks, CRLF, bad JSON, now and
	// then an over-long one
	rnd := rand.New(rand.NewPCG(1, 2))
	var mix strings.Builder
	for i := range 3000 {
		switch rnd.IntN(8) {
		case 0:
			mix.WriteString("\r\n")
		case 1:
			mix.WriteString("{}\n")
		case 2:
			mix.WriteString(`{"a":"` + strings.Repeat("z", rnd.IntN(5000)) + "\"}\r\n")
		case 3:
			mix.WriteString("{nope\n")
		default:
			mix.WriteString(ev(float64(i), fmt.Sprintf("192.0.2.%d", rnd.IntN(5)), 1+rnd.IntN(3)) + "\n")
		}
		if i%1000 == 500 {
			mix.WriteString(strings.Repeat("x", maxLine+rnd.IntN(3)) + "\n")
		}
	}
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"random", mix.String()},
		{"mixed", ev(0, "192.0.2.1", 1) + "\n" + strings.Repeat("x", maxLine+5) + "\n" + ev(1, "192.0.2.1", 1) + "\r\n\n\r\n" +
			atLimit + "\n" + atLimit + "z\n" + ev(2, "192.0.2.2", 2)},
		{"long at end", ev(0, "192.0.2.1", 1) + "\n" + strings.Repeat("x", maxLine+70000)},
		{"long crlf", strings.Repeat("x", maxLine) + "\r\n" + ev(2, "192.0.2.2", 2) + "\n"},
		// a blank line, then an over-long one in the same slot of the next batch
		{"blank then long", strings.Repeat("\n", batches*batchLines) + strings.Repeat("x", maxLine+1) + "\n" + ev(0, "192.0.2.1", 1) + "\n"},
		// short lines: more than a batch's worth in one read
		{"short lines", strings.Repeat("{}\n", 3*batchLines) + strings.Repeat("\n", 300) + "[1]\n" + ev(0, "192.0.2.1", 1)},
		{"many", strings.Repeat(ev(0, "192.0.2.1", 3)+"\n", 600) + "{bad\n" + ev(1, "192.0.2.1", 3)},
	} {
		// the reference: record.Reader's lines and over-long reports
		var wantDiag, wantIDs []string
		rd := record.NewReader(strings.NewReader(tc.in), 0)
		for {
			l, err := rd.ReadLine()
			if err == io.EOF {
				break
			}
			var tl *record.LineTooLongError
			if errors.As(err, &tl) {
				wantDiag = append(wantDiag, fmt.Sprintf("correlate: stdin:%d: line of %d bytes is longer than the limit, skipped", tl.Line, tl.Size))
				continue
			}
			var f record.EventFields
			if len(bytes.TrimSpace(l)) > 0 && record.ScanEvent(l, &f) == nil {
				wantIDs = append(wantIDs, fmt.Sprint(rd.Line()))
			}
		}
		var outs []string
		for _, feed := range []func(io.Reader) io.Reader{
			func(r io.Reader) io.Reader { return r },
			func(r io.Reader) io.Reader { return chunkReader{r, 1000} },
			func(r io.Reader) io.Reader { return chunkReader{r, 65537} },
			iotest.DataErrReader,
		} {
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"correlate", "-r", howto}, feed(strings.NewReader(tc.in)), &out, &errb, fixedEnv())
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", tc.name, code, errb.String())
			}
			outs = append(outs, out.String()+"\n--\n"+errb.String())
		}
		for i, o := range outs[1:] {
			if o != outs[0] {
				got, want := strings.Split(o, "\n"), strings.Split(outs[0], "\n")
				j := 0
				for j < len(got) && j < len(want) && got[j] == want[j] {
					j++
				}
				t.Errorf("%s: feed %d differs from whole at output line %d of %d/%d:\n%.300s\nwhole:\n%.300s", tc.name, i+1, j+1, len(got), len(want), got[min(j, len(got)-1)], want[min(j, len(want)-1)])
			}
		}
		// the line numbers of the diagnostics and alert ids follow the reference
		var gotDiag []string
		for _, l := range strings.Split(outs[0], "\n") {
			if strings.Contains(l, "longer than the limit") {
				gotDiag = append(gotDiag, l)
			}
		}
		if strings.Join(gotDiag, "\n") != strings.Join(wantDiag, "\n") {
			t.Errorf("%s: diagnostics\n%s\nwant\n%s", tc.name, strings.Join(gotDiag, "\n"), strings.Join(wantDiag, "\n"))
		}
		var gotIDs []string
		for _, l := range strings.Split(strings.TrimSpace(strings.Split(outs[0], "\n--\n")[0]), "\n") {
			var a record.Alert
			if err := record.Unmarshal([]byte(l), &a); err != nil {
				t.Fatalf("%s: bad alert %.200q: %v", tc.name, l, err)
			}
			gotIDs = append(gotIDs, a.ID[strings.IndexByte(a.ID, '.')+1:])
		}
		if strings.Join(gotIDs, " ") != strings.Join(wantIDs, " ") {
			t.Errorf("%s: alerts for lines %.300v, want %.300v", tc.name, gotIDs, wantIDs)
		}
	}
}
