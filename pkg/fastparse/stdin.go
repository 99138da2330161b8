package fastparse

import (
	"context"
	"io"
	"os"
)

// cancelable returns a reader of r whose Read returns ctx's error once ctx
// is done, even while r blocks (a quiet pipe): SIGTERM must end fastparse
// with exit 0, and a blocking read(2) on stdin cannot be interrupted. A
// regular file never blocks and is returned as it is.
func cancelable(ctx context.Context, r io.Reader) io.Reader {
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return r
		}
	}
	c := &ctxReader{ctx: ctx, chunks: make(chan chunk), free: make(chan []byte, 2)}
	c.free <- make([]byte, 64<<10)
	c.free <- make([]byte, 64<<10)
	go c.pump(r)
	return c
}

type chunk struct {
	b   []byte
	err error
}

// ctxReader reads r in a goroutine of its own into two buffers that take
// turns, so reading ahead also overlaps with parsing.
type ctxReader struct {
	ctx    context.Context
	chunks chan chunk
	free   chan []byte
	cur    []byte // unread part of the chunk in hand
	whole  []byte // the chunk in hand, to give back
	err    error
}

func (c *ctxReader) pump(r io.Reader) {
	for {
		var buf []byte
		select {
		case buf = <-c.free:
		case <-c.ctx.Done():
			return
		}
		n, err := r.Read(buf)
		select {
		case c.chunks <- chunk{buf[:n], err}:
		case <-c.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

func (c *ctxReader) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.whole != nil {
			c.free <- c.whole[:cap(c.whole)]
			c.whole = nil
		}
		select {
		case ch := <-c.chunks:
			c.cur, c.whole, c.err = ch.b, ch.b, ch.err
		case <-c.ctx.Done():
			return 0, c.ctx.Err()
		}
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}
