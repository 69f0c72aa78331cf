package protocol

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// readBufferSize is the per-connection read buffer: small requests are read in one
// syscall, large ones bypass it.
const readBufferSize = 64 << 10

// flushThreshold is how much encoded response data the writer gathers before writing it
// when more responses are already queued.
const flushThreshold = 256 << 10

// outQueue is how many responses may wait for the writer before the reader blocks.
const outQueue = 32

// conn is one client connection: a reader goroutine that reads, decodes and serves
// requests in order, and a writer goroutine that encodes and writes their responses in
// the same order, so that reading the next request overlaps writing the last response.
type conn struct {
	s   *Server
	nc  net.Conn
	id  uint64
	log *zap.Logger
	br  *bufio.Reader

	out        chan outFrame
	writerDone chan struct{}

	ctx    context.Context
	cancel context.CancelFunc

	// draining is set by Shutdown: stop reading, finish what is queued.
	draining atomic.Bool
	// heldBytes counts the request bytes held by queued deferred responses.
	heldBytes atomic.Int64
}

// outFrame is one response waiting for the writer.
type outFrame struct {
	corr int32
	resp kmsg.Response
	// noTags is set for ApiVersions, whose response header never has tagged fields.
	noTags bool
	// release, if set, is called once the response is written (or dropped).
	release func()
}

// deferredResponse is a response still being completed (a produce waiting for its writes
// to be durable, a fetch waiting for records): the writer calls wait, in order, before
// encoding it.
type deferredResponse interface {
	kmsg.Response
	wait()
}

// streamedResponse is a response that writes its own frame, so that Fetch can send stored
// record bytes from segment files without copying them into memory.
type streamedResponse interface {
	kmsg.Response
	// writeFrame writes the complete frame for correlation ID corr: size prefix, header,
	// body.
	writeFrame(w *frameWriter, corr int32) error
	// release frees what the response holds; the writer calls it exactly once, whether or
	// not the frame was written.
	release()
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	c := &conn{
		s:          s,
		nc:         nc,
		id:         id,
		log:        s.log.With(zap.Uint64("conn", id), zap.String("remote", nc.RemoteAddr().String())),
		br:         bufio.NewReaderSize(nc, readBufferSize),
		out:        make(chan outFrame, outQueue),
		writerDone: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(s.hardCtx)
	return c
}

// run serves the connection until it closes; it owns the writer goroutine.
func (c *conn) run() {
	defer c.s.connDone(c)
	c.log.Debug("connection opened")
	go c.write()
	c.read()
	close(c.out)
	<-c.writerDone
	c.nc.Close()
	c.cancel()
	c.log.Debug("connection closed")
}

// drain makes the reader stop after the request it is serving.
func (c *conn) drain() {
	c.draining.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// read reads and serves requests until the client closes, the connection idles out, a
// request is malformed or the server drains.
func (c *conn) read() {
	var sizeBuf [4]byte
	for {
		// Setting the deadline before checking draining pairs with drain, which sets the
		// flag before the deadline: either we see the flag or our read sees the deadline.
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		if c.draining.Load() {
			return
		}
		if _, err := io.ReadFull(c.br, sizeBuf[:]); err != nil {
			c.readFailed("read size", err)
			return
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < minHeaderLen || size > c.s.cfg.MaxRequestBytes {
			c.log.Warn("closing connection: bad frame size",
				zap.Int32("size", size), zap.Int32("max_request_bytes", c.s.cfg.MaxRequestBytes))
			return
		}
		// Produce frames come from a pool and go back once served (see frames.go).
		pooled := false
		if key, err := c.br.Peek(2); err == nil && binary.BigEndian.Uint16(key) == uint16(kmsg.Produce) {
			pooled = true
		}
		var frame []byte
		if pooled {
			frame = getFrame(int(size))
		} else {
			frame = make([]byte, size)
		}
		if _, err := io.ReadFull(c.br, frame); err != nil {
			c.readFailed("read frame", err)
			return
		}
		if !c.serve(frame, pooled) {
			return
		}
	}
}

// readFailed logs why reading stopped, quietly for the ordinary ends.
func (c *conn) readFailed(op string, err error) {
	switch {
	case c.draining.Load():
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("client closed connection", zap.String("op", op))
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Info("client closed connection mid-frame", zap.String("op", op))
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Info("closing idle connection", zap.Duration("idle_timeout", c.s.cfg.IdleTimeout))
	default:
		c.log.Info("connection read failed", zap.String("op", op), zap.Error(err))
	}
}

// serve decodes and handles one frame; false closes the connection. A pooled frame goes
// back to its pool once nothing refers to it: after the handler, or after the writer has
// completed a deferred response that holds it.
func (c *conn) serve(frame []byte, pooled bool) bool {
	d, err := decodeRequest(frame)
	if err != nil {
		var re *requestError
		if errors.As(err, &re) {
			c.log.Warn("closing connection: "+re.what, zap.Error(re.err),
				zap.String("api", kmsg.NameForKey(re.h.key)), zap.Int16("key", re.h.key), zap.Int16("version", re.h.version),
				zap.String("client_id", re.h.clientID), zap.Int("frame_bytes", len(frame)))
		}
		return false
	}
	if d.req == nil {
		// An ApiVersions version above ours: the client learns our range from a v0 body
		// and retries; the body it sent may be in a format we do not know.
		c.send(outFrame{corr: d.correlationID, resp: apiVersionsFallback(), noTags: true})
		return true
	}
	r := &Request{
		Key:           d.key,
		Version:       d.version,
		CorrelationID: d.correlationID,
		ClientID:      d.clientID,
		Body:          d.req,
		Ctx:           c.ctx,
		Log:           c.log,
		Remote:        c.nc.RemoteAddr().String(),
		conn:          c,
		frame:         frame,
	}
	resp, err := c.call(d.api, r)
	var release func()
	if pooled {
		release = func() { putFrame(frame) }
	}
	if r.held {
		n := int64(len(frame))
		put := release
		release = func() {
			c.heldBytes.Add(-n)
			if put != nil {
				put()
			}
		}
	}
	if err != nil {
		// A failed handler may have left work behind that still refers to the frame; it is
		// not reused.
		if r.held {
			c.heldBytes.Add(-int64(len(frame)))
		}
		c.log.Warn("closing connection: request failed", zap.Error(err),
			zap.String("api", kmsg.NameForKey(d.key)), zap.Int16("version", d.version),
			zap.String("client_id", d.clientID))
		return false
	}
	switch {
	case resp != nil:
		c.send(outFrame{corr: d.correlationID, resp: resp, noTags: d.key == int16(kmsg.ApiVersions), release: release})
	case release != nil:
		release()
	}
	return true
}

// maxHeldBytes bounds the request bytes a connection's deferred responses hold: past it,
// produce requests complete before the next request is read.
const maxHeldBytes = 64 << 20

// holdFrame asks to keep the request's frame until the writer has completed the
// response the handler returns (a deferredResponse); false when the connection holds too
// much already, and the handler must complete its response itself.
func (r *Request) holdFrame() bool {
	if r.conn == nil || r.held {
		return r.held
	}
	n := int64(len(r.frame))
	if r.conn.heldBytes.Add(n) > maxHeldBytes && r.conn.heldBytes.Load() != n {
		r.conn.heldBytes.Add(-n)
		return false
	}
	r.held = true
	return true
}

// errHandlerPanic wraps a recovered handler panic.
var errHandlerPanic = errors.New("protocol: handler panicked")

// call runs a handler, turning a panic into an error that closes this connection only.
func (c *conn) call(a *api, r *Request) (resp kmsg.Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("handler panicked",
				zap.String("api", kmsg.NameForKey(r.Key)), zap.Int16("key", r.Key), zap.Int16("version", r.Version),
				zap.String("client_id", r.ClientID), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			resp, err = nil, fmt.Errorf("%w: %v", errHandlerPanic, p)
		}
	}()
	return a.handle(c.s, r)
}

// send queues a response for the writer.
func (c *conn) send(f outFrame) { c.out <- f }

// write encodes and writes responses in the order they were queued, gathering several
// small ones into one write. After a write fails it keeps draining the queue (releasing
// what responses hold) so that the reader never blocks on it.
func (c *conn) write() {
	defer close(c.writerDone)
	w := &frameWriter{nc: c.nc, timeout: c.s.cfg.WriteTimeout, copyRecords: c.s.cfg.CopyFetch}
	if tc, ok := c.nc.(syscall.Conn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
	failed := false
	for f := range c.out {
		if dr, ok := f.resp.(deferredResponse); ok {
			// Send what is gathered before waiting, then complete the response.
			if !failed {
				if err := w.flush(); err != nil {
					failed = true
					c.writeFailed(err)
				}
			}
			if !c.complete(dr) {
				// Work it started may still refer to the request: do not reuse its frame.
				failed = true
				f.release = nil
			}
		}
		if failed {
			releaseFrame(f)
			continue
		}
		if err := c.writeOne(w, f); err != nil {
			failed = true
			c.writeFailed(err)
			continue
		}
		if len(c.out) == 0 || len(w.buf) >= flushThreshold {
			if err := w.flush(); err != nil {
				failed = true
				c.writeFailed(err)
			}
		}
	}
	if !failed {
		if err := w.flush(); err != nil {
			c.writeFailed(err)
		}
	}
}

func releaseFrame(f outFrame) {
	if st, ok := f.resp.(streamedResponse); ok {
		st.release()
	}
	if f.release != nil {
		f.release()
	}
}

// complete runs a deferred response's wait; false when it panicked (the connection is
// then closed).
func (c *conn) complete(dr deferredResponse) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("completing response panicked", zap.Int16("key", dr.Key()), zap.Int16("version", dr.GetVersion()),
				zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			c.nc.Close()
			ok = false
		}
	}()
	dr.wait()
	return true
}

func (c *conn) writeFailed(err error) {
	if !errors.Is(err, net.ErrClosed) {
		c.log.Info("connection write failed", zap.Error(err))
	}
	// Unblock the reader; it sees the closed connection and stops.
	c.nc.Close()
}

// writeOne encodes one response into the writer, or streams it.
func (c *conn) writeOne(w *frameWriter, f outFrame) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("encoding response panicked", zap.Int16("key", f.resp.Key()),
				zap.Int16("version", f.resp.GetVersion()), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("%w: encode: %v", errHandlerPanic, p)
		}
	}()
	if f.release != nil {
		defer f.release()
	}
	if st, ok := f.resp.(streamedResponse); ok {
		defer st.release()
		return st.writeFrame(w, f.corr)
	}
	start := len(w.buf)
	w.buf = appendResponseHeader(w.buf, f.corr, f.resp.IsFlexible() && !f.noTags)
	w.buf = f.resp.AppendTo(w.buf)
	binary.BigEndian.PutUint32(w.buf[start:], uint32(len(w.buf)-start-4))
	return nil
}

// appendResponseHeader appends a size placeholder, the correlation ID and, for response
// header v1, an empty tagged-field section.
func appendResponseHeader(b []byte, corr int32, tags bool) []byte {
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	if tags {
		b = append(b, 0)
	}
	return b
}

// frameWriter is the writer goroutine's output: encoded bytes gathered in buf, written to
// nc on flush, with a deadline per write.
type frameWriter struct {
	nc      net.Conn
	raw     syscall.RawConn // nil when nc is not a socket
	timeout time.Duration
	buf     []byte
	// scratch is reused to encode streamed responses.
	scratch []byte
	// copyRecords turns zero-copy sends off (see Config.CopyFetch).
	copyRecords bool
}

// flush writes what is gathered.
func (w *frameWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	_, err := w.nc.Write(w.buf)
	if cap(w.buf) > 4*flushThreshold {
		w.buf = nil // do not pin one huge response's buffer
	} else {
		w.buf = w.buf[:0]
	}
	return err
}
