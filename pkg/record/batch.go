package record

import (
	"bytes"
	"io"
)

// A LineBatch is a run of whole lines of one input, left in the buffer
// they were read into: a stage hands batches from its reading goroutine to
// the ones that parse, evaluate and write, with no copy of each line.
type LineBatch struct {
	// Data holds the lines, and after them possibly the start of an
	// incomplete line (the next batch begins with a copy of it).
	Data  []byte
	Lines []BatchLine
	// Flush says the input had nothing more buffered after these lines:
	// the next read may block, so what came of them should be written
	// now, not held back for more input.
	Flush bool
}

// BatchLine is one line of a LineBatch.
type BatchLine struct {
	Start, End int // the line in Data, without its line end (a CR before the newline removed)
	Num        int // 1-based line number in the input
	// TooLong > 0: the line was longer than the limit, TooLong bytes
	// before its newline (its CR included), and was skipped (Start == End).
	TooLong int
}

// Text returns line i of b, with no room to append to.
func (b *LineBatch) Text(i int) []byte {
	l := b.Lines[i]
	return b.Data[l.Start:l.End:l.End]
}

// Sizes of a BatchReader's reads and buffers.
const (
	// batchRead is the most read from the input at once.
	batchRead = 64 << 10
	// batchMinRead: with less room than this left in a batch's buffer,
	// the buffer is replaced by a larger one before the next read.
	batchMinRead = 4 << 10
	// batchBuffer is the size of a new batch buffer.
	batchBuffer = 256 << 10
)

// BatchReader cuts an input into LineBatches, reading it in blocks of up
// to 64 KiB straight into the batches' buffers. Its lines are those of a
// Reader with the same limit: a trailing CR removed, a last line without
// newline kept, an over-long line reported (as a BatchLine with TooLong
// set, numbered like a *LineTooLongError) and skipped. A batch ends when
// it holds maxLines lines and before each read of the input that comes
// after a whole line (which may block: a quiet pipe holding half a line
// never holds the whole lines before it back).
type BatchReader struct {
	r        io.Reader
	max      int // longest line
	maxLines int // lines per batch
	num      int // lines so far
	err      error

	prev []byte // the last batch's Data, whose prev[pos:] is the next batch's start
	pos  int    // the start of the first line not yet cut, in the current Data
	from int    // Data[pos:from] holds no newline (searched already)
	long bool   // in a line over the limit: its bytes are dropped
	size int    // bytes of that line dropped so far
}

// NewBatchReader returns a BatchReader of r for lines of up to maxLine
// bytes (DefaultMaxLine if maxLine <= 0), at most maxLines (at least 1)
// to a batch.
func NewBatchReader(r io.Reader, maxLine, maxLines int) *BatchReader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &BatchReader{r: r, max: maxLine, maxLines: max(maxLines, 1)}
}

// Line returns the number of lines read so far (the last one's Num).
func (r *BatchReader) Line() int { return r.num }

// Read fills b (its buffers reused) with the next lines. It returns nil
// with at least one line in b, or the error that ended the input, with the
// last lines before it in b (maybe none): io.EOF at the end (a last line
// without newline included), else the input's error (an incomplete line
// at it is dropped: it never was a whole record). Once an error is
// returned every later Read returns it with no lines.
//
// The start of an incomplete line at the end of b is copied from b.Data
// by the next Read: b.Data must not be written to (b passed to another
// BatchReader, or its bytes changed) until then. Passing b itself to the
// next Read is fine.
func (r *BatchReader) Read(b *LineBatch) error {
	r.begin(b)
	for {
		if r.cut(b) {
			// full: flush if nothing more is buffered
			b.Flush = r.pos == len(b.Data)
			return r.end(b, nil)
		}
		r.dropLong(b)
		if r.err != nil {
			if r.err == io.EOF && (r.pos < len(b.Data) || r.long) {
				r.line(b, len(b.Data))
			}
			r.pos, r.from = len(b.Data), len(b.Data)
			b.Flush = true
			return r.end(b, r.err)
		}
		if len(b.Lines) > 0 {
			// before a read that may block, the whole lines read so far
			// are handed on
			b.Flush = true
			return r.end(b, nil)
		}
		r.fill(b)
	}
}

// begin starts b with the incomplete line left at the end of the last
// batch.
func (r *BatchReader) begin(b *LineBatch) {
	var rest []byte
	if r.prev != nil {
		rest = r.prev[r.pos:]
	}
	if cap(b.Data) < len(rest)+batchRead {
		// (a long line coming in small reads: grow geometrically)
		b.Data = make([]byte, 0, max(batchBuffer, 2*len(rest)+batchRead))
	}
	// (b.Data may be the last batch's own buffer: copy moves the bytes
	// down correctly)
	b.Data = append(b.Data[:0], rest...)
	b.Lines = b.Lines[:0]
	b.Flush = false
	r.from -= r.pos
	r.pos = 0
}

// end remembers b as the batch the next one continues.
func (r *BatchReader) end(b *LineBatch, err error) error {
	r.prev = b.Data
	return err
}

// cut takes the whole lines in b.Data after from; it reports whether b
// is full.
func (r *BatchReader) cut(b *LineBatch) (full bool) {
	for len(b.Lines) < r.maxLines {
		nl := bytes.IndexByte(b.Data[r.from:], '\n')
		if nl < 0 {
			r.from = len(b.Data)
			return false
		}
		r.line(b, r.from+nl)
		r.pos = r.from + nl + 1
		r.from = r.pos
	}
	return true
}

// line takes the line at b.Data[pos:end] (without its newline).
func (r *BatchReader) line(b *LineBatch, end int) {
	n := end - r.pos
	r.num++
	switch {
	case r.long:
		r.long = false
		b.Lines = append(b.Lines, BatchLine{Start: r.pos, End: r.pos, Num: r.num, TooLong: r.size + n})
	case n > r.max:
		b.Lines = append(b.Lines, BatchLine{Start: r.pos, End: r.pos, Num: r.num, TooLong: n})
	default:
		if n > 0 && b.Data[end-1] == '\r' {
			end--
		}
		b.Lines = append(b.Lines, BatchLine{Start: r.pos, End: end, Num: r.num})
	}
}

// dropLong drops the bytes of an incomplete line that is over the limit
// already, counting them.
func (r *BatchReader) dropLong(b *LineBatch) {
	rest := len(b.Data) - r.pos
	if !r.long && rest <= r.max {
		return
	}
	if !r.long {
		r.long, r.size = true, 0
	}
	r.size += rest
	b.Data = b.Data[:r.pos]
	r.from = r.pos
}

// fill reads once from the input into b.Data, after replacing a buffer
// that is nearly full (it holds no whole line yet).
func (r *BatchReader) fill(b *LineBatch) {
	if cap(b.Data)-len(b.Data) < batchMinRead {
		nd := make([]byte, 0, max(batchBuffer, 2*(len(b.Data)-r.pos)+batchRead))
		b.Data = append(nd, b.Data[r.pos:]...)
		r.from -= r.pos
		r.pos = 0
	}
	n, err := r.r.Read(b.Data[len(b.Data):min(cap(b.Data), len(b.Data)+batchRead)])
	b.Data = b.Data[:len(b.Data)+n]
	r.err = err // the bytes read are cut first, then the error returned
}
