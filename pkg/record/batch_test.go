package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(b []byte) (int, error) { return c.r.Read(b[:min(len(b), c.n)]) }

// readerLines is the reference: what Reader returns for in, one string a
// line: "N:text" or "N:long SIZE", then the error that ended it.
func readerLines(in string, max int) []string {
	var out []string
	r := NewReader(strings.NewReader(in), max)
	for {
		l, err := r.ReadLine()
		var tl *LineTooLongError
		switch {
		case err == nil:
			out = append(out, fmt.Sprintf("%d:%q", r.Line(), l))
		case errors.As(err, &tl):
			out = append(out, fmt.Sprintf("%d:long %d", tl.Line, tl.Size))
		default:
			return append(out, err.Error())
		}
	}
}

// batchLines reads r to its end with a BatchReader, one LineBatch reused,
// and checks each batch's shape.
func batchLines(t *testing.T, r io.Reader, max, maxLines int) []string {
	t.Helper()
	var out []string
	br := NewBatchReader(r, max, maxLines)
	var b LineBatch
	for {
		err := br.Read(&b)
		if len(b.Lines) > maxLines || (err == nil && len(b.Lines) == 0) {
			t.Fatalf("batch of %d lines (at most %d, at least 1 without error), error %v", len(b.Lines), maxLines, err)
		}
		for i, l := range b.Lines {
			if l.TooLong > 0 {
				out = append(out, fmt.Sprintf("%d:long %d", l.Num, l.TooLong))
				continue
			}
			out = append(out, fmt.Sprintf("%d:%q", l.Num, b.Text(i)))
		}
		if err != nil {
			return append(out, err.Error())
		}
	}
}

// The batch reader's lines are Reader's: whole, byte by byte, in odd
// chunks, with the error at the last data, CRLF, over-long lines (also at
// the end, at the limit and one over it, with and without CR), blank
// lines, a last line without newline, NUL and invalid bytes kept as they
// are; whatever the lines per batch.
func TestBatchReaderLines(t *testing.T) {
	const max = 40
	x := func(n int) string { return strings.Repeat("x", n) }
	rnd := rand.New(rand.NewPCG(1, 2))
	var mix strings.Builder
	for range 2000 {
		switch rnd.IntN(7) {
		case 0:
			mix.WriteString("\r\n")
		case 1:
			mix.WriteString("\n")
		case 2:
			mix.WriteString(x(rnd.IntN(max+3)) + "\r\n")
		case 3:
			mix.WriteString(x(max+rnd.IntN(200)) + "\n")
		case 4:
			mix.WriteString("a\x00b\xff\xfe\n")
		default:
			mix.WriteString(x(rnd.IntN(max+2)) + "\n")
		}
	}
	cases := map[string]string{
		"empty":          "",
		"one":            "one\n",
		"crlf":           "one\r\ntwo\r\n\r\nthree\r\n",
		"no eol":         "one\ntwo",
		"no eol cr":      "one\ntwo\r",
		"blank lines":    "\n\n\n\r\n \n",
		"at limit":       x(max) + "\n" + x(max-1) + "\r\n" + x(max) + "\r\n" + x(max+1) + "\n",
		"long":           "a\n" + x(max*5) + "\nb\n" + x(max*3) + "\r\nc\n",
		"long at end":    "a\n" + x(max*5),
		"limit at end":   "a\n" + x(max),
		"over at end":    "a\n" + x(max+1),
		"over at end cr": "a\n" + x(max) + "\r",
		"nul invalid":    "\x00\x00\n\xff\xfe\xfd\nok\x00\n",
		"random":         mix.String(),
	}
	feeds := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"bytewise": iotest.OneByteReader,
		"chunks7":  func(r io.Reader) io.Reader { return chunkReader{r, 7} },
		"chunks1k": func(r io.Reader) io.Reader { return chunkReader{r, 1000} },
		"dataerr":  iotest.DataErrReader,
	}
	for name, in := range cases {
		want := readerLines(in, max)
		for feed, wrap := range feeds {
			for _, lines := range []int{1, 3, 512} {
				got := batchLines(t, wrap(strings.NewReader(in)), max, lines)
				if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
					t.Errorf("%s, %s, %d lines a batch:\n%.2000s\nwant\n%.2000s", name, feed, lines, g, w)
				}
			}
		}
	}
}

// A line longer than a batch buffer (a 1 MiB limit, lines near it) grows
// the buffer and keeps the default limit's numbers.
func TestBatchReaderBigLines(t *testing.T) {
	big := strings.Repeat("y", DefaultMaxLine)
	in := "a\n" + big + "\n" + big + "z\n" + big[:300<<10] + "\r\nb"
	want := readerLines(in, 0)
	for _, wrap := range []func(io.Reader) io.Reader{
		func(r io.Reader) io.Reader { return r },
		func(r io.Reader) io.Reader { return chunkReader{r, 5000} },
	} {
		got := batchLines(t, wrap(strings.NewReader(in)), 0, 256)
		if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
			t.Errorf("got\n%.500s\nwant\n%.500s", g, w)
		}
	}
}

// failReader gives its data, then its error, with the data's last read.
type failReader struct {
	data string
	err  error
}

func (f *failReader) Read(b []byte) (int, error) {
	n := copy(b, f.data)
	f.data = f.data[n:]
	if f.data == "" {
		return n, f.err
	}
	return n, nil
}

// An input that fails (or is stopped: a cancellation is an error of the
// input) gives the whole lines read before, then its error, for good; the
// incomplete line at it is dropped.
func TestBatchReaderError(t *testing.T) {
	stop := errors.New("stopped")
	br := NewBatchReader(&failReader{data: "one\ntwo\nhalf", err: stop}, 0, 10)
	var b LineBatch
	err := br.Read(&b)
	if !errors.Is(err, stop) || len(b.Lines) != 2 || string(b.Text(0)) != "one" || string(b.Text(1)) != "two" || !b.Flush {
		t.Fatalf("got %d lines, flush %v, error %v", len(b.Lines), b.Flush, err)
	}
	for range 2 {
		if err := br.Read(&b); !errors.Is(err, stop) || len(b.Lines) != 0 {
			t.Fatalf("after the error: %d lines, error %v", len(b.Lines), err)
		}
	}
}

// A batch ends before each read after whole lines (Flush: nothing more
// buffered), or when full (Flush only if its last line ended the data
// read); a quiet input's half line does not hold the lines before back.
func TestBatchReaderFlush(t *testing.T) {
	pr, pw := io.Pipe()
	br := NewBatchReader(pr, 0, 2)
	go pw.Write([]byte("a\nb\nc\nhal"))
	var b LineBatch
	if err := br.Read(&b); err != nil || len(b.Lines) != 2 || b.Flush {
		t.Fatalf("first batch: %d lines, flush %v, error %v", len(b.Lines), b.Flush, err)
	}
	// "c" is handed on before the read that would wait for the half line's rest
	if err := br.Read(&b); err != nil || len(b.Lines) != 1 || string(b.Text(0)) != "c" || !b.Flush {
		t.Fatalf("second batch: %d lines, flush %v, error %v", len(b.Lines), b.Flush, err)
	}
	go func() { pw.Write([]byte("f\n")); pw.Close() }()
	if err := br.Read(&b); err != nil || len(b.Lines) != 1 || string(b.Text(0)) != "half" || b.Lines[0].Num != 4 {
		t.Fatalf("third batch: %d lines, error %v", len(b.Lines), err)
	}
	if err := br.Read(&b); err != io.EOF || len(b.Lines) != 0 {
		t.Fatalf("end: %d lines, error %v", len(b.Lines), err)
	}
}

// Several batches in flight (a pool, as the stages use them): each keeps
// its lines while the reader fills the others.
func TestBatchReaderPool(t *testing.T) {
	var in strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&in, "line %d %s\n", i+1, strings.Repeat("z", i%97))
	}
	br := NewBatchReader(chunkReader{strings.NewReader(in.String()), 3001}, 0, 7)
	pool := make([]LineBatch, 3)
	n := 0
	for k := 0; ; k++ {
		b := &pool[k%len(pool)]
		err := br.Read(b)
		if k > 0 {
			// the batch before is still whole
			p := &pool[(k-1)%len(pool)]
			for i, l := range p.Lines {
				if want := fmt.Sprintf("line %d ", l.Num); !bytes.HasPrefix(p.Text(i), []byte(want)) {
					t.Fatalf("batch %d line %d: %q", k-1, i, p.Text(i))
				}
			}
		}
		for _, l := range b.Lines {
			n++
			if l.Num != n {
				t.Fatalf("line %d numbered %d", n, l.Num)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != 5000 {
		t.Fatalf("%d lines, want 5000", n)
	}
}

// Reader gives a last line without newline over the limit as too long, as
// it does one with a newline (it used to allow one byte more there).
func TestReaderLongAtEOF(t *testing.T) {
	for in, want := range map[string]string{
		"a\n" + strings.Repeat("x", 17):          "1:\"a\"\n2:long 17\nEOF",
		"a\n" + strings.Repeat("x", 16) + "\r":   "1:\"a\"\n2:long 17\nEOF",
		"a\n" + strings.Repeat("x", 16):          "1:\"a\"\n2:\"" + strings.Repeat("x", 16) + "\"\nEOF",
		"a\n" + strings.Repeat("x", 17) + "\n":   "1:\"a\"\n2:long 17\nEOF",
		"a\n" + strings.Repeat("x", 16) + "\r\n": "1:\"a\"\n2:long 17\nEOF",
	} {
		if got := strings.Join(readerLines(in, 16), "\n"); got != want {
			t.Errorf("%q: got\n%s\nwant\n%s", in, got, want)
		}
	}
}

// BenchmarkBatchReader cuts fast.log-sized lines; an op is one line.
func BenchmarkBatchReader(b *testing.B) {
	line := strings.Repeat("z", 180) + "\n"
	in := []byte(strings.Repeat(line, 10000))
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	var lb LineBatch
	n := 0
	for n < b.N {
		br := NewBatchReader(bytes.NewReader(in), 0, 512)
		for br.Read(&lb) == nil {
			n += len(lb.Lines)
		}
		n += len(lb.Lines)
	}
}

// FuzzBatchReader: whatever the input, the limit, the lines per batch and
// the sizes the input comes in, the batch reader's lines are Reader's.
func FuzzBatchReader(f *testing.F) {
	f.Add([]byte("one\r\ntwo\n\nxxxxxxxxxxxxxxxxxxxxxxx\nlast"), uint8(8), uint8(2), uint8(3))
	f.Add([]byte("\x00\xff\r\r\n\r"), uint8(1), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, maxLine, lines, chunk uint8) {
		max := int(maxLine%64) + 1
		want := readerLines(string(in), max)
		got := batchLines(t, chunkReader{bytes.NewReader(in), int(chunk) + 1}, max, int(lines%8)+1)
		if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
			t.Fatalf("max %d, %d lines a batch, chunks of %d:\n%s\nwant\n%s", max, lines%8+1, int(chunk)+1, g, w)
		}
	})
}
