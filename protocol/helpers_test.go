package protocol

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// testServer is a server on a loopback port with its logs captured.
type testServer struct {
	t     testing.TB
	srv   *Server
	addr  string
	dir   string
	logs  *observer.ObservedLogs
	ctrl  *replication.LocalController
	repl  *replication.LocalReplicator
	parts *partition.Manager

	serveErr chan error
	stopOnce sync.Once
}

// serverSetup is what startServer's options adjust.
type serverSetup struct {
	cfg Config
	// advertise is the address clients are told to use (default: the server's own).
	advertise string
	// wrap, when set, gives the replicator the partitions and the server use, around the
	// node's own.
	wrap func(*replication.LocalReplicator) replication.Replicator
}

type serverOpt func(*serverSetup)

// withConfig adjusts the server's Config.
func withConfig(f func(*Config)) serverOpt { return func(s *serverSetup) { f(&s.cfg) } }

// withReplicator makes the partitions and the server use the replicator wrap returns
// around the node's own.
func withReplicator(wrap func(*replication.LocalReplicator) replication.Replicator) serverOpt {
	return func(s *serverSetup) { s.wrap = wrap }
}

// withAdvertise makes the server tell clients to connect to addr (a proxy in front of it).
func withAdvertise(addr string) serverOpt { return func(s *serverSetup) { s.advertise = addr } }

// startServer starts a single-node server on 127.0.0.1:0 over dir (a fresh temp dir when
// empty) and stops it at the end of the test.
func startServer(t testing.TB, dir string, opts ...serverOpt) *testServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	ts := &testServer{t: t, addr: ln.Addr().String(), dir: dir, logs: logs, serveErr: make(chan error, 1)}
	setup := serverSetup{advertise: ts.addr}
	for _, o := range opts { // for the advertised address
		o(&setup)
	}
	ts.ctrl, err = replication.OpenLocalController(dir, replication.Node{ID: 0, KafkaAddr: setup.advertise})
	if err != nil {
		t.Fatal(err)
	}
	ts.repl = replication.NewLocalReplicator(replication.LocalConfig{NodeID: 0})
	var repl replication.Replicator = ts.repl
	if setup.wrap != nil {
		repl = setup.wrap(ts.repl)
	}
	ts.parts, err = partition.NewManager(partition.ManagerConfig{
		DataDir: dir, NodeID: 0, Controller: ts.ctrl, Replicator: repl, Logger: zap.New(core),
	})
	if err != nil {
		t.Fatal(err)
	}
	setup.cfg = Config{
		NodeID:            0,
		AutoCreateTopics:  true,
		DefaultPartitions: 1,
		Logger:            zap.New(core),
		Controller:        ts.ctrl,
		Replicator:        repl,
		Partitions:        ts.parts,
	}
	for _, o := range opts { // again, now over the real Config
		o(&setup)
	}
	ts.srv, err = New(setup.cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { ts.serveErr <- ts.srv.Serve(ln) }()
	t.Cleanup(ts.stop)
	return ts
}

// stop shuts the server down cleanly; safe to call twice.
func (ts *testServer) stop() {
	ts.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			ts.t.Errorf("shutdown: %v", err)
		}
		if err := <-ts.serveErr; !errors.Is(err, ErrServerClosed) {
			ts.t.Errorf("serve returned %v", err)
		}
		if err := ts.parts.Close(); err != nil {
			ts.t.Errorf("close partitions: %v", err)
		}
		ts.repl.Close()
		ts.ctrl.Close()
	})
}

// rawConn is a client connection speaking frames by hand.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// appendRequestFrame encodes req as a whole frame (size prefix included).
func appendRequestFrame(b []byte, req kmsg.Request, corr int32, clientID *string) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	if clientID == nil {
		b = binary.BigEndian.AppendUint16(b, 0xffff)
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(*clientID)))
		b = append(b, *clientID...)
	}
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawConn) send(req kmsg.Request, corr int32) {
	c.t.Helper()
	id := "raw-test"
	c.write(appendRequestFrame(nil, req, corr, &id))
}

// readFrame reads one response frame; it returns the error when the server closed.
func (c *rawConn) readFrame() ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.br, size[:]); err != nil {
		return nil, err
	}
	frame := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.br, frame); err != nil {
		return nil, err
	}
	return frame, nil
}

// recv reads the response to req and decodes it into resp (which has its version set).
func (c *rawConn) recv(resp kmsg.Response, corr int32) {
	c.t.Helper()
	frame, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	if got := int32(binary.BigEndian.Uint32(frame)); got != corr {
		c.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	body := frame[4:]
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		if len(body) == 0 || body[0] != 0 {
			c.t.Fatalf("flexible response header: want empty tags, got %x", body[:min(len(body), 1)])
		}
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		c.t.Fatalf("decode %T: %v", resp, err)
	}
}

// roundTrip sends req and decodes its response.
func (c *rawConn) roundTrip(req kmsg.Request, corr int32) kmsg.Response {
	c.t.Helper()
	c.send(req, corr)
	resp := req.ResponseKind()
	c.recv(resp, corr)
	return resp
}

// expectClosed asserts the server closes the connection without answering.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	frame, err := c.readFrame()
	if err == nil {
		c.t.Fatalf("expected the connection closed, got a %d-byte frame", len(frame))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("expected the connection closed, read timed out")
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// openPartition returns partition i of topic, which must be open on the server: the
// request that created the topic (or grew it) answers once its partitions are open.
func openPartition(t *testing.T, ts *testServer, topic string, i int32) *partition.Partition {
	t.Helper()
	p, ok := ts.parts.Get(topic, i)
	if !ok {
		t.Fatalf("partition %s-%d is not open", topic, i)
	}
	return p
}

// logged reports whether a log entry containing msg was written.
func (ts *testServer) logged(msg string) bool {
	return ts.logs.FilterMessageSnippet(msg).Len() > 0
}

// removeCheckpoints deletes every partition's producer-state checkpoint under dir.
func removeCheckpoints(t *testing.T, dir string) {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*", partition.CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) == 0 {
		t.Fatalf("no checkpoints under %s", dir)
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
}

// produceRequest is a Produce request of version with acks=all writing batch to partition
// 0 of topic.
func produceRequest(version int16, topic string, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = version
	req.Acks = -1
	req.TimeoutMillis = 10_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// longPollRequest is a Fetch request of version for partition 0 of topic from offset 0
// that waits up to maxWait for a byte.
func longPollRequest(version int16, topic string, maxWait time.Duration) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = version
	req.MaxWaitMillis = int32(maxWait.Milliseconds())
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}
