package replication

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// groupTransport is the raft.Transport of a data group, in the wire format of
// raft_wire.go over its stream on the shared Raft port. Compared with hashicorp/raft's
// NetworkTransport (msgpack, which the controller group keeps using):
//   - entry bytes are not encoded: the leader writes them from the entries with writev,
//     a follower reads each entry's bytes straight into its own buffer;
//   - a follower decodes the next request while Raft stores the previous one (requests
//     on a connection are answered in order), so network, decoding and fsync overlap;
//   - a pipeline keeps up to maxInFlight AppendEntries in flight per follower.
//
// Deadlines: a dial, and each RPC (its write and its response), gets timeout; a
// pipeline's writes and each response it waits for too; an InstallSnapshot gets timeout
// per snapshotTimeoutScale bytes. On the serving side a request's body, once its frame
// header has arrived, must arrive within timeout (the snapshot stream within the scaled
// timeout), and each response must be written within timeout. A connection that failed
// in any way is closed, never pooled.
//
// Each accepted connection has a reader (the serving goroutine) and a writer goroutine;
// Close closes the stream and every connection, accepted or dialed (which fails the RPCs
// and pipelines using them), and waits for the serving goroutines.
type groupTransport struct {
	stream      raft.StreamLayer
	logger      *zap.Logger
	timeout     time.Duration // per RPC (scaled up for snapshots); 0: none
	maxInFlight int
	maxPool     int

	consumeCh chan raft.RPC

	heartbeatMu sync.Mutex
	heartbeatFn func(raft.RPC)

	mu       sync.Mutex // guards pool, dialed, accepted, closed
	pool     map[raft.ServerAddress][]*wireConn
	dialed   map[*wireConn]struct{} // open dialed connections, pooled or in use
	accepted map[net.Conn]struct{}
	closed   bool

	shutdown  chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	// leaderCommit is the highest commit index a leader sent in an AppendEntries, and
	// leaderCommitAt (unix ns) when it was received: a member catching up compares what
	// it applied with it (raft caps a follower's own commit index at its last entry).
	leaderCommit   atomic.Uint64
	leaderCommitAt atomic.Int64
}

// noteLeaderCommit records the commit index of an AppendEntries received.
func (t *groupTransport) noteLeaderCommit(index uint64) {
	for {
		old := t.leaderCommit.Load()
		if index <= old || t.leaderCommit.CompareAndSwap(old, index) {
			break
		}
	}
	t.leaderCommitAt.Store(time.Now().UnixNano())
}

// lastLeaderCommit returns the highest commit index a leader sent, and when the last
// AppendEntries carrying one arrived.
func (t *groupTransport) lastLeaderCommit() (uint64, time.Time) {
	return t.leaderCommit.Load(), time.Unix(0, t.leaderCommitAt.Load())
}

var (
	_ raft.Transport   = (*groupTransport)(nil)
	_ raft.WithPreVote = (*groupTransport)(nil)
	_ raft.WithClose   = (*groupTransport)(nil)
)

const (
	// wireBufferSize is the size of the connections' read and write buffers; entry
	// payloads bypass them.
	wireBufferSize = 64 << 10
	// serveQueue bounds the requests a connection has decoded and not answered yet.
	serveQueue = 16
	// snapshotTimeoutScale: an InstallSnapshot gets the RPC timeout once per this many
	// bytes of snapshot.
	snapshotTimeoutScale = 256 << 10
)

// newGroupTransport serves stream and starts accepting. timeout bounds each RPC;
// maxInFlight is the AppendEntries a pipeline keeps in flight (at least 2).
func newGroupTransport(stream raft.StreamLayer, timeout time.Duration, maxInFlight int, logger *zap.Logger) *groupTransport {
	if logger == nil {
		logger = zap.NewNop()
	}
	t := &groupTransport{
		stream:      stream,
		logger:      logger,
		timeout:     timeout,
		maxInFlight: max(2, maxInFlight),
		maxPool:     3,
		consumeCh:   make(chan raft.RPC),
		pool:        map[raft.ServerAddress][]*wireConn{},
		dialed:      map[*wireConn]struct{}{},
		accepted:    map[net.Conn]struct{}{},
		shutdown:    make(chan struct{}),
	}
	t.wg.Add(1)
	go t.listen()
	return t
}

func (t *groupTransport) Consumer() <-chan raft.RPC { return t.consumeCh }

func (t *groupTransport) LocalAddr() raft.ServerAddress {
	return raft.ServerAddress(t.stream.Addr().String())
}

func (t *groupTransport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

func (t *groupTransport) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

func (t *groupTransport) SetHeartbeatHandler(fn func(raft.RPC)) {
	t.heartbeatMu.Lock()
	t.heartbeatFn = fn
	t.heartbeatMu.Unlock()
}

// Close stops serving and closes every connection; in-flight RPCs and pipelines fail.
func (t *groupTransport) Close() error {
	t.closeOnce.Do(func() {
		close(t.shutdown)
		t.stream.Close()
		t.mu.Lock()
		t.closed = true
		for c := range t.accepted {
			c.Close()
		}
		for c := range t.dialed {
			c.conn.Close()
		}
		clear(t.dialed)
		clear(t.pool)
		t.mu.Unlock()
		t.wg.Wait()
	})
	return nil
}

// ---- client side ----

// wireConn is a connection this node dialed.
type wireConn struct {
	target raft.ServerAddress
	conn   net.Conn
	r      *bufio.Reader
	meta   []byte // reused for the frames read
	out    wbuf   // reused for the frames written
	hdr    [wireHeaderSize]byte
	bufs   net.Buffers // reused for the writev of a frame and its payloads
}

// getConn returns a pooled connection to target or dials one (within timeout).
func (t *groupTransport) getConn(target raft.ServerAddress) (*wireConn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, raft.ErrTransportShutdown
	}
	if conns := t.pool[target]; len(conns) > 0 {
		c := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		t.pool[target] = conns[:len(conns)-1]
		t.mu.Unlock()
		return c, nil
	}
	t.mu.Unlock()
	conn, err := t.stream.Dial(target, t.timeout)
	if err != nil {
		return nil, fmt.Errorf("raft wire: dial %s: %w", target, err)
	}
	_ = conn.SetWriteDeadline(t.deadline())
	if _, err := conn.Write(wirePreamble[:]); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raft wire: %s: %w", target, err)
	}
	c := &wireConn{target: target, conn: conn, r: bufio.NewReaderSize(conn, wireBufferSize)}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		conn.Close()
		return nil, raft.ErrTransportShutdown
	}
	t.dialed[c] = struct{}{}
	return c, nil
}

// returnConn pools a connection whose last exchange completed.
func (t *groupTransport) returnConn(c *wireConn) {
	_ = c.conn.SetDeadline(time.Time{})
	t.mu.Lock()
	if !t.closed && len(t.pool[c.target]) < t.maxPool {
		t.pool[c.target] = append(t.pool[c.target], c)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.closeConn(c)
}

// closeConn closes a dialed connection that is not pooled.
func (t *groupTransport) closeConn(c *wireConn) {
	c.conn.Close()
	t.mu.Lock()
	delete(t.dialed, c)
	t.mu.Unlock()
}

// sendAppendEntries writes an AppendEntries request: its frame, then the entries'
// payloads, in one writev.
func (c *wireConn) sendAppendEntries(req *raft.AppendEntriesRequest) error {
	if err := checkAppendEntries(req); err != nil {
		return err
	}
	meta := appendEntriesMeta(c.out[:0], req)
	c.out = meta
	if err := wireFrameTooLarge(meta); err != nil {
		return err
	}
	bufs := append(c.bufs[:0], putWireHeader(&c.hdr, wireAppendEntries, len(meta)), meta)
	for _, l := range req.Entries {
		if len(l.Data) > 0 {
			bufs = append(bufs, l.Data)
		}
		if len(l.Extensions) > 0 {
			bufs = append(bufs, l.Extensions)
		}
	}
	c.bufs = bufs[:0]
	_, err := bufs.WriteTo(c.conn)
	return err
}

// send writes any other request.
func (c *wireConn) send(kind uint8, msg any) error {
	meta, err := encodeMessage(c.out[:0], msg)
	c.out = meta
	if err == nil {
		err = wireFrameTooLarge(meta)
	}
	if err != nil {
		return err
	}
	bufs := append(c.bufs[:0], putWireHeader(&c.hdr, kind, len(meta)), meta)
	c.bufs = bufs[:0]
	_, err = bufs.WriteTo(c.conn)
	return err
}

// receive reads the response into resp. An error the other side answered with leaves
// the connection usable (ok); any other error does not.
func (c *wireConn) receive(resp any) (ok bool, err error) {
	status, meta, grown, err := readWireFrame(c.r, c.meta)
	c.meta = grown
	if err != nil {
		return false, err
	}
	switch status {
	case wireOK:
		if err := decodeMessage(meta, resp); err != nil {
			return false, err
		}
		return true, nil
	case wireErr:
		return true, errors.New(string(meta))
	}
	return false, fmt.Errorf("%w: response status %d", errWire, status)
}

// genericRPC sends one request on a pooled connection and waits for the response.
func (t *groupTransport) genericRPC(target raft.ServerAddress, kind uint8, req, resp any) error {
	c, err := t.getConn(target)
	if err != nil {
		return err
	}
	_ = c.conn.SetDeadline(t.deadline())
	if kind == wireAppendEntries {
		err = c.sendAppendEntries(req.(*raft.AppendEntriesRequest))
	} else {
		err = c.send(kind, req)
	}
	if err != nil {
		t.closeConn(c)
		return fmt.Errorf("raft wire: send to %s: %w", target, err)
	}
	ok, err := c.receive(resp)
	if ok {
		t.returnConn(c)
	} else {
		t.closeConn(c)
		err = fmt.Errorf("raft wire: response from %s: %w", target, err)
	}
	return err
}

func (t *groupTransport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.genericRPC(target, wireAppendEntries, req, resp)
}

func (t *groupTransport) RequestVote(_ raft.ServerID, target raft.ServerAddress, req *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.genericRPC(target, wireRequestVote, req, resp)
}

func (t *groupTransport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, req *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.genericRPC(target, wireRequestPreVote, req, resp)
}

func (t *groupTransport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, req *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.genericRPC(target, wireTimeoutNow, req, resp)
}

// snapshotTimeout is the deadline of an InstallSnapshot of size bytes.
func (t *groupTransport) snapshotTimeout(size int64) time.Duration {
	return max(t.timeout, t.timeout*time.Duration(size/snapshotTimeoutScale))
}

// InstallSnapshot sends the request, then exactly req.Size bytes of data, on a
// connection of its own (closed after).
func (t *groupTransport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, req *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if req.Size < 0 {
		return fmt.Errorf("raft wire: snapshot of %d bytes", req.Size)
	}
	c, err := t.getConn(target)
	if err != nil {
		return err
	}
	defer t.closeConn(c)
	if t.timeout > 0 {
		_ = c.conn.SetDeadline(time.Now().Add(t.snapshotTimeout(req.Size)))
	}
	if err := c.send(wireInstallSnapshot, req); err != nil {
		return fmt.Errorf("raft wire: send snapshot to %s: %w", target, err)
	}
	w := bufio.NewWriterSize(c.conn, wireBufferSize)
	n, err := io.Copy(w, io.LimitReader(data, req.Size))
	if err == nil && n != req.Size {
		err = fmt.Errorf("snapshot of %d bytes ended after %d", req.Size, n)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("raft wire: send snapshot to %s: %w", target, err)
	}
	if _, err := c.receive(resp); err != nil {
		return fmt.Errorf("raft wire: snapshot response from %s: %w", target, err)
	}
	return nil
}

// AppendEntriesPipeline opens a connection that carries AppendEntries to target
// without waiting for each response.
func (t *groupTransport) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	c, err := t.getConn(target)
	if err != nil {
		return nil, err
	}
	p := &wirePipeline{
		t:        t,
		c:        c,
		slots:    make(chan struct{}, t.maxInFlight),
		inflight: make(chan *wireFuture, t.maxInFlight),
		done:     make(chan raft.AppendFuture, t.maxInFlight),
		stop:     make(chan struct{}),
		exited:   make(chan struct{}),
	}
	p.wg.Add(1)
	go p.receive()
	return p, nil
}

// wirePipeline sends AppendEntries on one connection; its receive goroutine completes
// them in order and hands them to Consumer. Once the connection fails every later
// future fails too, in order; when the pipeline or the transport closes, the futures
// not delivered yet fail with raft.ErrPipelineShutdown.
type wirePipeline struct {
	t        *groupTransport
	c        *wireConn
	slots    chan struct{}    // one per request sent and not completed: at most maxInFlight
	inflight chan *wireFuture // sent, in order, awaiting their responses
	done     chan raft.AppendFuture
	stop     chan struct{} // closed by Close
	exited   chan struct{} // closed when the receiver stops
	sendMu   sync.Mutex    // held by AppendEntries, and by the receiver to fail what is left
	once     sync.Once
	wg       sync.WaitGroup
}

// wireFuture is one pipelined AppendEntries.
type wireFuture struct {
	start time.Time
	req   *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	err   error
	ready chan struct{}
}

func (f *wireFuture) Error() error                          { <-f.ready; return f.err }
func (f *wireFuture) Start() time.Time                      { return f.start }
func (f *wireFuture) Request() *raft.AppendEntriesRequest   { return f.req }
func (f *wireFuture) Response() *raft.AppendEntriesResponse { return f.resp }

func (f *wireFuture) fail(err error) {
	f.err = err
	// Raft's pipeline reads the response without looking at Error: a failed one must
	// hold no half-decoded term.
	*f.resp = raft.AppendEntriesResponse{}
	close(f.ready)
}

// AppendEntries sends req and returns at once, unless maxInFlight requests await their
// responses. A future is returned only for a request that was written whole.
func (p *wirePipeline) AppendEntries(req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	select {
	case <-p.exited:
		return nil, raft.ErrPipelineShutdown
	default:
	}
	select {
	case p.slots <- struct{}{}:
	case <-p.exited:
		return nil, raft.ErrPipelineShutdown
	}
	f := &wireFuture{start: time.Now(), req: req, resp: resp, ready: make(chan struct{})}
	_ = p.c.conn.SetWriteDeadline(p.t.deadline())
	if err := p.c.sendAppendEntries(req); err != nil {
		// The futures already sent fail as their responses cannot be read.
		p.c.conn.Close()
		<-p.slots
		return nil, fmt.Errorf("raft wire: pipeline to %s: %w", p.c.target, err)
	}
	p.inflight <- f // never blocks: it has room for every slot
	return f, nil
}

func (p *wirePipeline) receive() {
	defer p.wg.Done()
	defer func() {
		close(p.exited)
		p.sendMu.Lock()
		defer p.sendMu.Unlock()
		for {
			select {
			case f := <-p.inflight:
				f.fail(raft.ErrPipelineShutdown)
			default:
				return
			}
		}
	}()
	for {
		var f *wireFuture
		select {
		case f = <-p.inflight:
		case <-p.stop:
			return
		case <-p.t.shutdown:
			return
		}
		_ = p.c.conn.SetReadDeadline(p.t.deadline())
		if _, err := p.c.receive(f.resp); err != nil {
			p.c.conn.Close()
			f.fail(fmt.Errorf("raft wire: pipeline to %s: %w", p.c.target, err))
		} else {
			close(f.ready)
		}
		<-p.slots
		select {
		case p.done <- f:
		case <-p.stop:
			return
		case <-p.t.shutdown:
			return
		}
	}
}

func (p *wirePipeline) Consumer() <-chan raft.AppendFuture { return p.done }

// Close closes the connection and stops the receiver; futures not delivered yet fail.
func (p *wirePipeline) Close() error {
	p.once.Do(func() {
		close(p.stop)
		p.t.closeConn(p.c)
		p.wg.Wait()
	})
	return nil
}

// ---- server side ----

func (t *groupTransport) listen() {
	defer t.wg.Done()
	closing := func() bool {
		select {
		case <-t.shutdown:
			return true
		default:
			return false
		}
	}
	acceptLoop(t.stream, closing, t.shutdown, t.logger, "raft wire", func(conn net.Conn) bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.closed {
			conn.Close()
			return false
		}
		t.accepted[conn] = struct{}{}
		t.wg.Add(1)
		go t.serve(conn)
		return true
	})
}

// answer is a request handed to Raft whose response the writer sends, in order.
type answer struct {
	respCh chan raft.RPCResponse
	sent   chan struct{} // snapshots only: closed once the response is written
}

// serve reads requests from conn and hands them to Raft; a writer goroutine sends the
// responses in order, so the next request is read and decoded while Raft handles the
// previous one.
func (t *groupTransport) serve(conn net.Conn) {
	defer t.wg.Done()
	answers := make(chan answer, serveQueue)
	writerDone := make(chan struct{})
	defer func() {
		close(answers)
		<-writerDone
		conn.Close()
		t.mu.Lock()
		delete(t.accepted, conn)
		t.mu.Unlock()
	}()
	go t.writeAnswers(conn, answers, writerDone)

	r := bufio.NewReaderSize(conn, wireBufferSize)
	_ = conn.SetReadDeadline(time.Now().Add(headerTimeout))
	var pre [len(wirePreamble)]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		t.logger.Debug("raft wire: no preamble", zap.Stringer("remote", conn.RemoteAddr()), zap.Error(err))
		return
	}
	if pre != wirePreamble {
		t.logger.Warn("raft wire: bad preamble; closing the connection", zap.Stringer("remote", conn.RemoteAddr()), zap.Binary("preamble", pre[:]))
		return
	}
	var meta []byte
	for {
		// Between requests a connection may idle; once a frame has begun, the rest of it
		// must arrive within the timeout.
		_ = conn.SetReadDeadline(time.Time{})
		kind, n, err := readWireHeader(r)
		if err == nil {
			_ = conn.SetReadDeadline(t.deadline())
			var m []byte
			m, meta, err = readWireMeta(r, n, meta)
			if err == nil {
				var rpc raft.RPC
				var heartbeat bool
				rpc, heartbeat, err = t.decodeRequest(kind, m, r)
				if err == nil {
					if !t.dispatch(conn, kind, rpc, heartbeat, answers) {
						return
					}
					continue
				}
			}
		}
		select {
		case <-t.shutdown:
			return
		default:
		}
		var ne net.Error
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
			t.logger.Debug("raft wire: connection closed", zap.Stringer("remote", conn.RemoteAddr()), zap.Error(err))
		case errors.Is(err, errWire) || errors.Is(err, io.ErrUnexpectedEOF) || (errors.As(err, &ne) && ne.Timeout()):
			t.logger.Warn("raft wire: bad or incomplete request; closing the connection", zap.Stringer("remote", conn.RemoteAddr()), zap.Error(err))
		default:
			t.logger.Info("raft wire: read request", zap.Stringer("remote", conn.RemoteAddr()), zap.Error(err))
		}
		return
	}
}

// deadline is the deadline of one read or write: timeout from now, or none (the zero
// time) without a timeout.
func (t *groupTransport) deadline() time.Time {
	if t.timeout <= 0 {
		return time.Time{}
	}
	return time.Now().Add(t.timeout)
}

// dispatch hands a decoded request to Raft (or to the heartbeat handler) and queues its
// answer; false means the connection is done.
func (t *groupTransport) dispatch(conn net.Conn, kind uint8, rpc raft.RPC, heartbeat bool, answers chan<- answer) bool {
	respCh := make(chan raft.RPCResponse, 1)
	rpc.RespChan = respCh
	a := answer{respCh: respCh}
	if kind == wireInstallSnapshot {
		a.sent = make(chan struct{})
	}
	select {
	case answers <- a:
	case <-t.shutdown:
		return false
	}
	if kind == wireInstallSnapshot && t.timeout > 0 {
		// Raft reads the snapshot from the connection: a sender that stops mid-stream
		// must not hold it forever.
		_ = conn.SetReadDeadline(time.Now().Add(t.snapshotTimeout(rpc.Command.(*raft.InstallSnapshotRequest).Size)))
	}
	// The heartbeat fast path, as in NetworkTransport: handled here, without waiting
	// behind Raft's main loop, when a handler is set.
	t.heartbeatMu.Lock()
	fn := t.heartbeatFn
	t.heartbeatMu.Unlock()
	if heartbeat && fn != nil {
		fn(rpc)
	} else {
		select {
		case t.consumeCh <- rpc:
		case <-t.shutdown:
			return false
		}
	}
	if kind == wireInstallSnapshot {
		// Nothing more is read until Raft has answered; the connection then ends (the
		// sender closes it).
		select {
		case <-a.sent:
		case <-t.shutdown:
		}
		return false
	}
	return true
}

// decodeRequest decodes a request's meta (and an AppendEntries' payloads) into an RPC.
func (t *groupTransport) decodeRequest(kind uint8, meta []byte, r *bufio.Reader) (rpc raft.RPC, heartbeat bool, err error) {
	switch kind {
	case wireAppendEntries:
		req := new(raft.AppendEntriesRequest)
		lens, err := decodeAppendEntriesMeta(meta, req)
		if err != nil {
			return rpc, false, err
		}
		if err := readPayloads(r, req.Entries, lens); err != nil {
			return rpc, false, err
		}
		rpc.Command = req
		heartbeat = req.Term != 0 && (len(req.RPCHeader.Addr) > 0 || len(req.Leader) > 0) &&
			req.PrevLogEntry == 0 && req.PrevLogTerm == 0 && len(req.Entries) == 0 && req.LeaderCommitIndex == 0
		if req.LeaderCommitIndex > 0 {
			t.noteLeaderCommit(req.LeaderCommitIndex)
		}
		return rpc, heartbeat, nil
	case wireRequestVote:
		rpc.Command = new(raft.RequestVoteRequest)
	case wireRequestPreVote:
		rpc.Command = new(raft.RequestPreVoteRequest)
	case wireTimeoutNow:
		rpc.Command = new(raft.TimeoutNowRequest)
	case wireInstallSnapshot:
		req := new(raft.InstallSnapshotRequest)
		rpc.Command = req
		if err := decodeMessage(meta, req); err != nil {
			return rpc, false, err
		}
		rpc.Reader = io.LimitReader(r, req.Size)
		return rpc, false, nil
	default:
		return rpc, false, fmt.Errorf("%w: request kind %d", errWire, kind)
	}
	return rpc, false, decodeMessage(meta, rpc.Command)
}

// writeAnswers writes the responses of the requests in answers, in order. Each is
// flushed at once: a pipelining leader waits for it while later requests are handled.
func (t *groupTransport) writeAnswers(conn net.Conn, answers <-chan answer, done chan<- struct{}) {
	defer close(done)
	w := bufio.NewWriterSize(conn, 4<<10)
	var out wbuf
	broken := false
	for a := range answers {
		if !broken {
			select {
			case resp := <-a.respCh:
				out = writeAnswer(w, out[:0], resp)
				_ = conn.SetWriteDeadline(t.deadline())
				if err := w.Flush(); err != nil {
					t.logger.Debug("raft wire: write response", zap.Stringer("remote", conn.RemoteAddr()), zap.Error(err))
					broken = true
					conn.Close() // the reader stops at its next read
				}
			case <-t.shutdown:
				broken = true
			}
		}
		if a.sent != nil {
			close(a.sent)
		}
	}
}

// writeAnswer buffers one response frame.
func writeAnswer(w *bufio.Writer, out wbuf, resp raft.RPCResponse) wbuf {
	if resp.Error != nil {
		out = append(out, resp.Error.Error()...)
		writeWireFrame(w, wireErr, out)
		return out
	}
	meta, err := encodeMessage(out, resp.Response)
	if err != nil {
		writeWireFrame(w, wireErr, []byte(err.Error()))
		return meta
	}
	writeWireFrame(w, wireOK, meta)
	return meta
}

// writeWireFrame buffers a frame: its header, then meta.
func writeWireFrame(w *bufio.Writer, kind uint8, meta []byte) {
	var h [wireHeaderSize]byte
	w.Write(putWireHeader(&h, kind, len(meta)))
	w.Write(meta)
}

// standNow hands this node's raft a TimeoutNow as if from leader (handTimeoutNow).
func (t *groupTransport) standNow(leader raft.ServerID, addr raft.ServerAddress) bool {
	return handTimeoutNow(t.consumeCh, t.shutdown, max(t.timeout, time.Second), leader, addr)
}
