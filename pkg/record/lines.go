package record

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine is the longest line a Reader accepts by default.
const DefaultMaxLine = 1 << 20

// LineTooLongError reports a line longer than the reader's limit. The line
// has been skipped; reading may go on.
type LineTooLongError struct {
	Line int // 1-based line number
	Size int // bytes seen before the newline
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("line %d: longer than the limit (%d bytes), skipped", e.Line, e.Size)
}

// Reader reads newline-terminated lines with a size cap. Unlike
// bufio.Scanner it survives an over-long line: the line is skipped and
// reported, and the next one is read normally. A trailing CR is removed,
// and a last line without a newline is returned at EOF.
type Reader struct {
	br   *bufio.Reader
	max  int
	line int
	buf  []byte
}

// NewReader returns a Reader on r that accepts lines up to max bytes
// (DefaultMaxLine if max <= 0).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxLine
	}
	size := 64 << 10
	if max < size {
		size = max + 1
	}
	return &Reader{br: bufio.NewReaderSize(r, size), max: max}
}

// Line returns the 1-based number of the line last returned.
func (r *Reader) Line() int { return r.line }

// Buffered reports how many bytes can be read without touching the
// underlying reader. Writers flush when it is zero, so a quiet input never
// holds output back.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadLine returns the next line without its line ending. The slice is
// valid until the next call. At the end of input it returns io.EOF; an
// over-long line gives a *LineTooLongError and reading may continue.
func (r *Reader) ReadLine() ([]byte, error) {
	r.buf = r.buf[:0]
	long := false
	size := 0
	for {
		chunk, err := r.br.ReadSlice('\n')
		size += len(chunk)
		if !long {
			if size > r.max+1 { // +1: the newline itself
				long = true
				r.buf = r.buf[:0]
			} else if err == nil && len(r.buf) == 0 {
				r.line++
				return trimEOL(chunk), nil
			} else {
				r.buf = append(r.buf, chunk...)
			}
		}
		switch {
		case err == nil:
			r.line++
			if long {
				return nil, &LineTooLongError{Line: r.line, Size: size - 1}
			}
			return trimEOL(r.buf), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if size == 0 {
				return nil, io.EOF
			}
			r.line++
			if long || size > r.max { // (no newline to allow for)
				return nil, &LineTooLongError{Line: r.line, Size: size}
			}
			return trimEOL(r.buf), nil
		default:
			return nil, err
		}
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

// Writer writes records, one line each, through a buffer. Call Flush when
// the input has nothing buffered and at the end.
type Writer struct {
	bw *bufio.Writer
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 64<<10)}
}

// WriteLine writes rec followed by a newline. rec must not contain one.
func (w *Writer) WriteLine(rec []byte) error {
	if w.bw.Available() < len(rec)+1 && w.bw.Buffered() > 0 {
		if err := w.bw.Flush(); err != nil {
			return err
		}
	}
	if _, err := w.bw.Write(rec); err != nil {
		return err
	}
	return w.bw.WriteByte('\n')
}

// Flush writes any buffered records to the underlying writer.
func (w *Writer) Flush() error { return w.bw.Flush() }
