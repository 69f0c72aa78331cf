package replication

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// transportNode is a groupTransport for group "g" on a mux of its own, on 127.0.0.1.
type transportNode struct {
	mux   *Mux
	trans *groupTransport
	addr  raft.ServerAddress
	logs  *observer.ObservedLogs
}

func newTransportNode(t *testing.T, timeout time.Duration, maxInFlight int) *transportNode {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)).Core()))
	mux, err := NewMux("127.0.0.1:0", "", logger)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := mux.Group("g")
	if err != nil {
		t.Fatal(err)
	}
	n := &transportNode{mux: mux, trans: newGroupTransport(sl, timeout, maxInFlight, logger), addr: raft.ServerAddress(mux.Advertise()), logs: logs}
	t.Cleanup(func() {
		n.trans.Close()
		mux.Close()
	})
	return n
}

// warnings counts the Warn lines logged that contain text.
func (n *transportNode) warnings(text string) int {
	c := 0
	for _, e := range n.logs.FilterLevelExact(zapcore.WarnLevel).All() {
		if strings.Contains(e.Message, text) {
			c++
		}
	}
	return c
}

// serveRPCs answers the RPCs of tr with handle until the test ends.
func serveRPCs(t *testing.T, tr *groupTransport, handle func(raft.RPC)) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case rpc := <-tr.Consumer():
				handle(rpc)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
}

// answer answers every kind of RPC as a follower that accepts everything would; an
// InstallSnapshot is read whole and answered Success if its bytes hash to want.
func answerAll(snapshots chan<- []byte) func(raft.RPC) {
	return func(rpc raft.RPC) {
		hdr := testHeader("2")
		switch req := rpc.Command.(type) {
		case *raft.AppendEntriesRequest:
			rpc.Respond(&raft.AppendEntriesResponse{RPCHeader: hdr, Term: req.Term, LastLog: req.PrevLogEntry + uint64(len(req.Entries)), Success: true}, nil)
		case *raft.RequestVoteRequest:
			rpc.Respond(&raft.RequestVoteResponse{RPCHeader: hdr, Term: req.Term, Peers: []byte("p"), Granted: req.LeadershipTransfer}, nil)
		case *raft.RequestPreVoteRequest:
			rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: hdr, Term: req.Term + 1, Granted: true}, nil)
		case *raft.TimeoutNowRequest:
			rpc.Respond(&raft.TimeoutNowResponse{RPCHeader: hdr}, nil)
		case *raft.InstallSnapshotRequest:
			data, err := io.ReadAll(rpc.Reader)
			if snapshots != nil {
				snapshots <- data
			}
			rpc.Respond(&raft.InstallSnapshotResponse{RPCHeader: hdr, Term: req.Term, Success: err == nil && int64(len(data)) == req.Size}, nil)
		default:
			rpc.Respond(nil, fmt.Errorf("unexpected %T", rpc.Command))
		}
	}
}

// within runs fn and fails the test if it has not returned after limit: an RPC that
// must fail must not hang.
func within(t *testing.T, limit time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(limit):
		buf := make([]byte, 1<<20)
		t.Fatalf("%s: still running after %v\n%s", what, limit, buf[:runtime.Stack(buf, true)])
	}
}

func TestGroupTransportRPCs(t *testing.T) {
	a := newTransportNode(t, 5*time.Second, 4)
	b := newTransportNode(t, 5*time.Second, 4)
	seen := make(chan any, 16)
	snapshots := make(chan []byte, 4)
	answer := answerAll(snapshots)
	serveRPCs(t, b.trans, func(rpc raft.RPC) {
		seen <- rpc.Command
		answer(rpc)
	})
	received := func() any {
		select {
		case c := <-seen:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no request received")
			return nil
		}
	}

	// AppendEntries with entries of every shape.
	at := time.Unix(1700000000, 42)
	ae := &raft.AppendEntriesRequest{
		RPCHeader: testHeader("1"), Term: 3, Leader: []byte(a.addr), PrevLogEntry: 10, PrevLogTerm: 2, LeaderCommitIndex: 9,
		Entries: []*raft.Log{
			{Index: 11, Term: 3, Type: raft.LogCommand, Data: patterned(4<<20, 5), AppendedAt: at},
			{Index: 12, Term: 3, Type: raft.LogNoop},
			{Index: 13, Term: 3, Type: raft.LogCommand, Data: []byte("d"), Extensions: []byte("ext")},
		},
	}
	var aeResp raft.AppendEntriesResponse
	if err := a.trans.AppendEntries("2", b.addr, ae, &aeResp); err != nil {
		t.Fatal(err)
	}
	got := received().(*raft.AppendEntriesRequest)
	if len(got.Entries) != 3 {
		t.Fatalf("received %d entries", len(got.Entries))
	}
	for i, l := range got.Entries {
		w := ae.Entries[i]
		if l.Index != w.Index || l.Term != w.Term || l.Type != w.Type || !bytes.Equal(l.Data, w.Data) || !bytes.Equal(l.Extensions, w.Extensions) || !l.AppendedAt.Equal(w.AppendedAt) {
			t.Fatalf("entry %d: got %s, want %s", i, summarizeLog(l), summarizeLog(w))
		}
	}
	gotHead := *got
	gotHead.Entries = nil
	wantHead := *ae
	wantHead.Entries = nil
	if !reflect.DeepEqual(gotHead, wantHead) {
		t.Fatalf("received %+v, want %+v", gotHead, wantHead)
	}
	if want := (raft.AppendEntriesResponse{RPCHeader: testHeader("2"), Term: 3, LastLog: 13, Success: true}); !reflect.DeepEqual(aeResp, want) {
		t.Fatalf("response %+v, want %+v", aeResp, want)
	}

	// RequestVote, PreVote, TimeoutNow.
	rv := &raft.RequestVoteRequest{RPCHeader: testHeader("1"), Term: 4, Candidate: []byte("c"), LastLogIndex: 13, LastLogTerm: 3, LeadershipTransfer: true}
	var rvResp raft.RequestVoteResponse
	if err := a.trans.RequestVote("2", b.addr, rv, &rvResp); err != nil {
		t.Fatal(err)
	}
	if got := received(); !reflect.DeepEqual(got, rv) {
		t.Fatalf("received %+v, want %+v", got, rv)
	}
	if !rvResp.Granted || rvResp.Term != 4 || string(rvResp.Peers) != "p" {
		t.Fatalf("vote response %+v", rvResp)
	}
	pv := &raft.RequestPreVoteRequest{RPCHeader: testHeader("1"), Term: 5, LastLogIndex: 13, LastLogTerm: 3}
	var pvResp raft.RequestPreVoteResponse
	if err := a.trans.RequestPreVote("2", b.addr, pv, &pvResp); err != nil {
		t.Fatal(err)
	}
	if got := received(); !reflect.DeepEqual(got, pv) {
		t.Fatalf("received %+v, want %+v", got, pv)
	}
	if !pvResp.Granted || pvResp.Term != 6 {
		t.Fatalf("pre-vote response %+v", pvResp)
	}
	tn := &raft.TimeoutNowRequest{RPCHeader: testHeader("1")}
	var tnResp raft.TimeoutNowResponse
	if err := a.trans.TimeoutNow("2", b.addr, tn, &tnResp); err != nil {
		t.Fatal(err)
	}
	if got := received(); !reflect.DeepEqual(got, tn) {
		t.Fatalf("received %+v, want %+v", got, tn)
	}
	if !reflect.DeepEqual(tnResp.RPCHeader, testHeader("2")) {
		t.Fatalf("timeout-now response %+v", tnResp)
	}

	// Everything so far went over one pooled connection.
	a.trans.mu.Lock()
	dialed, pooled := len(a.trans.dialed), len(a.trans.pool[b.addr])
	a.trans.mu.Unlock()
	if dialed != 1 || pooled != 1 {
		t.Fatalf("%d connections dialed, %d pooled; want one reused", dialed, pooled)
	}

	// InstallSnapshot: the server reads exactly Size bytes, even when the reader has more.
	snap := patterned(6<<20+3, 11)
	is := &raft.InstallSnapshotRequest{
		RPCHeader: testHeader("1"), SnapshotVersion: 1, Term: 4, Leader: []byte(a.addr), LastLogIndex: 13, LastLogTerm: 3,
		Configuration: []byte("conf"), ConfigurationIndex: 12, Size: int64(len(snap)),
	}
	for _, extra := range []int{0, 1000} {
		var isResp raft.InstallSnapshotResponse
		data := io.MultiReader(bytes.NewReader(snap), bytes.NewReader(make([]byte, extra)))
		if err := a.trans.InstallSnapshot("2", b.addr, is, &isResp, data); err != nil {
			t.Fatal(err)
		}
		if got := received(); !reflect.DeepEqual(got, is) {
			t.Fatalf("received %+v, want %+v", got, is)
		}
		if gotSnap := <-snapshots; sha256.Sum256(gotSnap) != sha256.Sum256(snap) {
			t.Fatalf("snapshot of %d bytes received as %d bytes, different", len(snap), len(gotSnap))
		}
		if !isResp.Success || isResp.Term != 4 {
			t.Fatalf("snapshot response %+v", isResp)
		}
	}
	// A reader shorter than Size fails the RPC on the sending side.
	short := *is
	short.Size++
	if err := a.trans.InstallSnapshot("2", b.addr, &short, new(raft.InstallSnapshotResponse), bytes.NewReader(snap)); err == nil || !strings.Contains(err.Error(), "ended after") {
		t.Fatalf("short snapshot: %v", err)
	}
	// The server got the request and a stream one byte short, which it must not accept.
	received()
	if gotSnap := <-snapshots; len(gotSnap) != len(snap) {
		t.Fatalf("short snapshot read as %d bytes", len(gotSnap))
	}
}

func TestGroupTransportRemoteErrorKeepsConnection(t *testing.T) {
	a := newTransportNode(t, 5*time.Second, 4)
	b := newTransportNode(t, 5*time.Second, 4)
	serveRPCs(t, b.trans, func(rpc raft.RPC) { rpc.Respond(nil, errors.New("not today")) })
	for range 3 {
		err := a.trans.RequestVote("2", b.addr, &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse))
		if err == nil || err.Error() != "not today" {
			t.Fatalf("err %v, want the remote's error", err)
		}
	}
	a.trans.mu.Lock()
	defer a.trans.mu.Unlock()
	if len(a.trans.dialed) != 1 || len(a.trans.pool[b.addr]) != 1 {
		t.Fatalf("%d dialed, %d pooled: an answered error must leave the connection in the pool", len(a.trans.dialed), len(a.trans.pool[b.addr]))
	}
}

func TestGroupTransportHeartbeatFastPath(t *testing.T) {
	a := newTransportNode(t, 5*time.Second, 4)
	b := newTransportNode(t, 5*time.Second, 4)
	var consumed atomic.Int32
	answer := answerAll(nil)
	serveRPCs(t, b.trans, func(rpc raft.RPC) {
		consumed.Add(1)
		answer(rpc)
	})
	heartbeat := &raft.AppendEntriesRequest{RPCHeader: testHeader("1"), Term: 7, Leader: []byte(a.addr)}
	var resp raft.AppendEntriesResponse

	// No handler: heartbeats go to the consumer like any request.
	if err := a.trans.AppendEntries("2", b.addr, heartbeat, &resp); err != nil {
		t.Fatal(err)
	}
	if consumed.Load() != 1 {
		t.Fatalf("consumer saw %d requests, want 1", consumed.Load())
	}

	var fast atomic.Int32
	b.trans.SetHeartbeatHandler(func(rpc raft.RPC) {
		fast.Add(1)
		req := rpc.Command.(*raft.AppendEntriesRequest)
		rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: true, LastLog: 99}, nil)
	})
	if err := a.trans.AppendEntries("2", b.addr, heartbeat, &resp); err != nil {
		t.Fatal(err)
	}
	if fast.Load() != 1 || consumed.Load() != 1 || resp.LastLog != 99 {
		t.Fatalf("heartbeat: handler %d, consumer %d, response %+v; want the handler to answer", fast.Load(), consumed.Load(), resp)
	}
	// Only the RPC header's address (no Leader) still makes a heartbeat, as in NetworkTransport.
	onlyAddr := &raft.AppendEntriesRequest{RPCHeader: testHeader("1"), Term: 7}
	if err := a.trans.AppendEntries("2", b.addr, onlyAddr, &resp); err != nil {
		t.Fatal(err)
	}
	if fast.Load() != 2 {
		t.Fatalf("heartbeat with the header's address only went to the consumer")
	}
	// Not heartbeats: any of commit index, previous entry, entries, no term, no leader.
	notHeartbeats := []*raft.AppendEntriesRequest{
		{RPCHeader: testHeader("1"), Term: 7, Leader: []byte(a.addr), LeaderCommitIndex: 1},
		{RPCHeader: testHeader("1"), Term: 7, Leader: []byte(a.addr), PrevLogEntry: 1},
		{RPCHeader: testHeader("1"), Term: 7, Leader: []byte(a.addr), PrevLogTerm: 1},
		{RPCHeader: testHeader("1"), Term: 7, Leader: []byte(a.addr), Entries: []*raft.Log{{Index: 1}}},
		{RPCHeader: testHeader("1"), Leader: []byte(a.addr)},
		{RPCHeader: raft.RPCHeader{ID: []byte("1")}, Term: 7},
	}
	for i, req := range notHeartbeats {
		if err := a.trans.AppendEntries("2", b.addr, req, &resp); err != nil {
			t.Fatal(err)
		}
		if fast.Load() != 2 || consumed.Load() != int32(2+i) {
			t.Fatalf("request %d (%+v): handler %d, consumer %d", i, req, fast.Load(), consumed.Load())
		}
	}
}

func TestGroupTransportPipelineInOrder(t *testing.T) {
	a := newTransportNode(t, 5*time.Second, 4)
	b := newTransportNode(t, 5*time.Second, 4)
	serveRPCs(t, b.trans, answerAll(nil))
	p, err := a.trans.AppendEntriesPipeline("2", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 500
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			f, ok := <-p.Consumer()
			if !ok {
				errc <- errors.New("consumer closed")
				return
			}
			if err := f.Error(); err != nil {
				errc <- fmt.Errorf("future %d: %w", i, err)
				return
			}
			req, resp := f.Request(), f.Response()
			if req.PrevLogEntry != uint64(i*2) || resp.LastLog != uint64(i*2+2) || !resp.Success {
				errc <- fmt.Errorf("future %d: request prev %d, response last %d: out of order", i, req.PrevLogEntry, resp.LastLog)
				return
			}
		}
		errc <- nil
	}()
	for i := range n {
		req := &raft.AppendEntriesRequest{
			RPCHeader: testHeader("1"), Term: 1, PrevLogEntry: uint64(i * 2), LeaderCommitIndex: uint64(i),
			Entries: []*raft.Log{{Index: uint64(i*2 + 1), Data: patterned(1000+i, byte(i))}, {Index: uint64(i*2 + 2)}},
		}
		if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pipeline did not complete")
	}
}

// The pipeline keeps at most maxInFlight requests unanswered.
func TestGroupTransportPipelineBoundsInFlight(t *testing.T) {
	const maxInFlight = 4
	a := newTransportNode(t, 10*time.Second, maxInFlight)
	b := newTransportNode(t, 10*time.Second, maxInFlight)
	var mu sync.Mutex
	var held []raft.RPC
	serveRPCs(t, b.trans, func(rpc raft.RPC) {
		mu.Lock()
		held = append(held, rpc)
		mu.Unlock()
	})
	heldCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(held)
	}
	p, err := a.trans.AppendEntriesPipeline("2", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Raft reads the futures as they complete; so does this test, checking their order.
	consumed := make(chan error, 1)
	go func() {
		for i := range 10 {
			select {
			case f := <-p.Consumer():
				if f.Error() != nil || f.Response().LastLog != uint64(i) {
					consumed <- fmt.Errorf("future %d: %v, last log %d", i, f.Error(), f.Response().LastLog)
					return
				}
			case <-time.After(20 * time.Second):
				consumed <- fmt.Errorf("future %d not delivered", i)
				return
			}
		}
		consumed <- nil
	}()
	var sent atomic.Int32
	sendDone := make(chan error, 1)
	go func() {
		for i := range 10 {
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i)}, new(raft.AppendEntriesResponse)); err != nil {
				sendDone <- err
				return
			}
			sent.Add(1)
		}
		sendDone <- nil
	}()
	waitFor(t, 10*time.Second, "maxInFlight requests at the server", func() bool { return heldCount() == maxInFlight })
	// Absence can only be shown by waiting: the fifth request must not be sent while four
	// are unanswered.
	time.Sleep(300 * time.Millisecond)
	if h, s := heldCount(), sent.Load(); h != maxInFlight || s != maxInFlight {
		t.Fatalf("%d requests at the server, %d sent, with none answered; want %d", h, s, maxInFlight)
	}
	answered := 0
	waitFor(t, 10*time.Second, "every request answered", func() bool {
		mu.Lock()
		for _, rpc := range held[answered:] {
			req := rpc.Command.(*raft.AppendEntriesRequest)
			rpc.Respond(&raft.AppendEntriesResponse{Term: 1, LastLog: req.PrevLogEntry, Success: true}, nil)
		}
		answered = len(held)
		mu.Unlock()
		return answered == 10
	})
	if err := <-sendDone; err != nil {
		t.Fatal(err)
	}
	if err := <-consumed; err != nil {
		t.Fatal(err)
	}
}

// fakePeer accepts group "g" connections on a mux of its own, counts them and hands each
// to handle on a goroutine of its own. The test's cleanup closes the mux and every
// accepted connection and waits for the handlers.
func fakePeer(t *testing.T, handle func(net.Conn)) (raft.ServerAddress, *atomic.Int32) {
	mux, err := NewMux("127.0.0.1:0", "", zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	sl, err := mux.Group("g")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := sl.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		mux.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return raft.ServerAddress(mux.Advertise()), &accepted
}

// stalledPeer never reads or answers: a peer stopped with SIGSTOP, as far as its
// connections can tell.
func stalledPeer(t *testing.T) (raft.ServerAddress, *atomic.Int32) {
	return fakePeer(t, func(net.Conn) {})
}

func TestGroupTransportStalledPeerTimesOut(t *testing.T) {
	a := newTransportNode(t, 300*time.Millisecond, 4)
	peer, _ := stalledPeer(t)
	const limit = 15 * time.Second

	within(t, limit, "AppendEntries to a stalled peer", func() {
		if err := a.trans.AppendEntries("2", peer, &raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err == nil {
			t.Error("AppendEntries to a stalled peer succeeded")
		}
	})
	// 32 MiB cannot fit in socket buffers: the write itself must time out.
	big := &raft.AppendEntriesRequest{Term: 1, Entries: []*raft.Log{{Index: 1, Data: make([]byte, 32<<20)}}}
	within(t, limit, "a large AppendEntries to a stalled peer", func() {
		if err := a.trans.AppendEntries("2", peer, big, new(raft.AppendEntriesResponse)); err == nil {
			t.Error("AppendEntries to a stalled peer succeeded")
		}
	})
	within(t, limit, "RequestVote to a stalled peer", func() {
		if err := a.trans.RequestVote("2", peer, &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse)); err == nil {
			t.Error("RequestVote to a stalled peer succeeded")
		}
	})
	within(t, limit, "InstallSnapshot to a stalled peer", func() {
		snap := make([]byte, 4<<20) // a deadline of 16 timeouts
		err := a.trans.InstallSnapshot("2", peer, &raft.InstallSnapshotRequest{Term: 1, Size: int64(len(snap))}, new(raft.InstallSnapshotResponse), bytes.NewReader(snap))
		if err == nil {
			t.Error("InstallSnapshot to a stalled peer succeeded")
		}
	})
	within(t, limit, "a pipeline to a stalled peer", func() {
		p, err := a.trans.AppendEntriesPipeline("2", peer)
		if err != nil {
			t.Error(err)
			return
		}
		defer p.Close()
		var futures []raft.AppendFuture
		for i := range 3 {
			f, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i)}, new(raft.AppendEntriesResponse))
			if err != nil {
				break // the connection may already have failed
			}
			futures = append(futures, f)
		}
		if len(futures) == 0 {
			t.Error("no request sent")
			return
		}
		for i, f := range futures {
			got := <-p.Consumer()
			if got != f {
				t.Errorf("future %d delivered out of order", i)
			}
			if got.Error() == nil {
				t.Errorf("future %d to a stalled peer succeeded", i)
			}
			if got.Response().Term != 0 || got.Response().Success {
				t.Errorf("failed future %d holds a response %+v", i, got.Response())
			}
		}
		// Once failed, the pipeline fails what follows.
		if f, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err == nil {
			if f.Error() == nil {
				t.Error("request on a failed pipeline succeeded")
			}
		}
	})
	// None of the connections that failed was pooled.
	a.trans.mu.Lock()
	defer a.trans.mu.Unlock()
	if len(a.trans.pool[peer]) != 0 || len(a.trans.dialed) != 0 {
		t.Fatalf("%d pooled and %d open connections to a peer whose every RPC failed", len(a.trans.pool[peer]), len(a.trans.dialed))
	}
}

// badResponder is a peer whose answers are malformed: it reads the preamble, then
// answers every request frame with resp.
func badResponder(t *testing.T, resp []byte) (raft.ServerAddress, *atomic.Int32) {
	return fakePeer(t, func(c net.Conn) {
		defer c.Close()
		var pre [len(wirePreamble)]byte
		if _, err := io.ReadFull(c, pre[:]); err != nil {
			return
		}
		for {
			if _, _, _, err := readWireFrame(c, nil); err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

// A connection whose response could not be read is closed, never pooled: the next RPC
// dials anew.
func TestGroupTransportBadResponseDropsConnection(t *testing.T) {
	a := newTransportNode(t, 2*time.Second, 4)
	cases := map[string][]byte{
		"unknown status":  wireFrame(7, nil),
		"garbage meta":    wireFrame(wireOK, []byte{0xff}),
		"trailing bytes":  wireFrame(wireOK, []byte{0, 0, 0, 0, 0, 7}),
		"meta too large":  {wireOK, 0xff, 0xff, 0xff, 0xff},
		"truncated frame": {wireOK, 0, 0},
	}
	for name, resp := range cases {
		t.Run(name, func(t *testing.T) {
			peer, accepted := badResponder(t, resp)
			for i := range 2 {
				err := a.trans.TimeoutNow("2", peer, &raft.TimeoutNowRequest{}, new(raft.TimeoutNowResponse))
				if err == nil {
					t.Fatalf("RPC %d with a bad response succeeded", i)
				}
			}
			if accepted.Load() != 2 {
				t.Fatalf("%d connections for 2 RPCs: a connection that failed was reused", accepted.Load())
			}
			a.trans.mu.Lock()
			defer a.trans.mu.Unlock()
			if len(a.trans.pool[peer]) != 0 || len(a.trans.dialed) != 0 {
				t.Fatalf("%d pooled, %d open after failed RPCs", len(a.trans.pool[peer]), len(a.trans.dialed))
			}
		})
	}
}

// When the peer goes away mid-pipeline, every future fails, in order; a new pipeline
// to the peer, back on the same address, works.
func TestGroupTransportPipelinePeerCloses(t *testing.T) {
	a := newTransportNode(t, 5*time.Second, 8)
	b := newTransportNode(t, 5*time.Second, 8)
	answer := answerAll(nil)
	var answered atomic.Int32
	serveRPCs(t, b.trans, func(rpc raft.RPC) {
		// Answer the first three; hold the rest.
		if answered.Load() < 3 {
			answered.Add(1)
			answer(rpc)
		}
	})
	p, err := a.trans.AppendEntriesPipeline("2", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 6 {
		if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i)}, new(raft.AppendEntriesResponse)); err != nil {
			t.Fatal(err)
		}
	}
	next := func(i int) raft.AppendFuture {
		select {
		case f := <-p.Consumer():
			if f.Request().PrevLogEntry != uint64(i) {
				t.Fatalf("future %d delivered as %d", i, f.Request().PrevLogEntry)
			}
			return f
		case <-time.After(10 * time.Second):
			t.Fatalf("future %d never completed", i)
			return nil
		}
	}
	for i := range 3 {
		if err := next(i).Error(); err != nil {
			t.Fatalf("future %d: %v", i, err)
		}
	}
	b.trans.Close()
	for i := 3; i < 6; i++ {
		if next(i).Error() == nil {
			t.Fatalf("future %d, never answered, succeeded", i)
		}
	}

	// The group comes back on the same port.
	sl, err := b.mux.Group("g")
	if err != nil {
		t.Fatal(err)
	}
	b2 := newGroupTransport(sl, 5*time.Second, 8, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)))
	defer b2.Close()
	serveRPCs(t, b2, answerAll(nil))
	p2, err := a.trans.AppendEntriesPipeline("2", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	f, err := p2.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: 41}, new(raft.AppendEntriesResponse))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Error(); err != nil || f.Response().LastLog != 41 {
		t.Fatalf("new pipeline: %v, %+v", err, f.Response())
	}
}

// Close with RPCs in flight returns, fails them all, and leaves no goroutine behind.
func TestGroupTransportCloseWithRPCsInFlight(t *testing.T) {
	for _, closing := range []string{"client", "server"} {
		t.Run(closing, func(t *testing.T) {
			base := runtime.NumGoroutine()
			// Registered first, so run last: after the muxes and serving loops have closed,
			// the count is back where it was.
			t.Cleanup(func() {
				waitFor(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
			})
			func() {
				a := newTransportNode(t, time.Minute, 4)
				b := newTransportNode(t, time.Minute, 4)
				// b takes the requests and never answers.
				var mu sync.Mutex
				var held int
				serveRPCs(t, b.trans, func(rpc raft.RPC) {
					mu.Lock()
					held++
					mu.Unlock()
					if rpc.Reader != nil {
						io.Copy(io.Discard, rpc.Reader)
					}
				})
				var wg sync.WaitGroup
				errs := make(chan error, 8)
				rpc := func(fn func() error) {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs <- fn()
					}()
				}
				rpc(func() error {
					return a.trans.AppendEntries("2", b.addr, &raft.AppendEntriesRequest{Term: 1, LeaderCommitIndex: 1}, new(raft.AppendEntriesResponse))
				})
				rpc(func() error {
					return a.trans.RequestVote("2", b.addr, &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse))
				})
				rpc(func() error {
					return a.trans.InstallSnapshot("2", b.addr, &raft.InstallSnapshotRequest{Term: 1, Size: 2 << 20}, new(raft.InstallSnapshotResponse), bytes.NewReader(make([]byte, 2<<20)))
				})
				p, err := a.trans.AppendEntriesPipeline("2", b.addr)
				if err != nil {
					t.Fatal(err)
				}
				var futures []raft.AppendFuture
				for i := range 3 {
					f, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i)}, new(raft.AppendEntriesResponse))
					if err != nil {
						t.Fatal(err)
					}
					futures = append(futures, f)
				}
				waitFor(t, 10*time.Second, "every request at the server", func() bool {
					mu.Lock()
					defer mu.Unlock()
					return held == 6
				})

				if closing == "client" {
					within(t, 10*time.Second, "client Close", func() { a.trans.Close() })
				} else {
					within(t, 10*time.Second, "server Close", func() { b.trans.Close() })
				}
				within(t, 10*time.Second, "the RPCs in flight", wg.Wait)
				close(errs)
				for err := range errs {
					if err == nil {
						t.Error("an RPC in flight at Close succeeded")
					}
				}
				within(t, 10*time.Second, "the pipeline's futures", func() {
					for i, f := range futures {
						if f.Error() == nil {
							t.Errorf("future %d succeeded", i)
						}
					}
				})
				if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err == nil && closing == "client" {
					t.Error("AppendEntries on a pipeline of a closed transport succeeded")
				}
				within(t, 10*time.Second, "pipeline Close", func() { p.Close() })
				within(t, 10*time.Second, "both transports' Close", func() {
					a.trans.Close()
					b.trans.Close()
				})
				if err := a.trans.AppendEntries("2", b.addr, &raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse)); closing == "client" && !errors.Is(err, raft.ErrTransportShutdown) {
					t.Errorf("RPC after Close: %v", err)
				}
			}()
		})
	}
}

// Malformed requests close their connection, with a log line; the transport keeps
// serving other connections.
func TestGroupTransportMalformedRequests(t *testing.T) {
	a := newTransportNode(t, 2*time.Second, 4)
	b := newTransportNode(t, 500*time.Millisecond, 4)
	serveRPCs(t, b.trans, answerAll(nil))

	frame := func(kind uint8, meta []byte) []byte { return append(wirePreamble[:], wireFrame(kind, meta)...) }
	hugeLen := append(wirePreamble[:], wireAppendEntries, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(hugeLen[len(wirePreamble)+1:], 0xfffffff0)
	// One entry claiming a 1 MiB payload, of which 10 bytes come.
	var lying wbuf
	lying.header(testHeader("1"))
	lying.uvarint(1)
	lying.bytes(nil)
	lying.uvarint(0)
	lying.uvarint(0)
	lying.uvarint(0)
	lying.uvarint(1)
	lying.uvarint(1)
	lying.uvarint(1)
	lying = append(lying, byte(raft.LogCommand))
	lying.varint(0)
	lying.uvarint(1 << 20)
	lying.uvarint(0)
	validVote, _ := encodeMessage(nil, &raft.RequestVoteRequest{Term: 1})

	cases := []struct {
		name  string
		bytes []byte
		close bool // the sender closes after writing (else it stalls)
		log   string
	}{
		{"bad preamble", []byte("HTTP/1.1 GET /\r\n"), false, "bad preamble"},
		{"meta length past the limit", hugeLen, false, "bad or incomplete request"},
		{"unknown kind", frame(99, validVote), false, "bad or incomplete request"},
		{"garbage meta", frame(wireRequestVote, []byte{0xff, 0xff}), false, "bad or incomplete request"},
		{"meta with bytes left over", frame(wireRequestVote, append(validVote, 0)), false, "bad or incomplete request"},
		{"truncated meta then close", frame(wireRequestVote, validVote)[:len(wirePreamble)+5+3], true, "bad or incomplete request"},
		{"truncated meta then stall", frame(wireRequestVote, validVote)[:len(wirePreamble)+5+3], false, "bad or incomplete request"},
		{"truncated payload then close", append(frame(wireAppendEntries, lying), make([]byte, 10)...), true, "bad or incomplete request"},
		{"truncated payload then stall", append(frame(wireAppendEntries, lying), make([]byte, 10)...), false, "bad or incomplete request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := b.warnings(tc.log)
			conn, err := Dial(string(b.addr), "g", 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			if tc.close {
				conn.(*net.TCPConn).CloseWrite()
			}
			// The server closes the connection without answering.
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, conn)
			if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("reading the server's side: %v", err)
			}
			if n != 0 {
				t.Fatalf("the server answered %d bytes", n)
			}
			waitFor(t, 5*time.Second, "a warning "+tc.log, func() bool { return b.warnings(tc.log) > before })
			// Other connections are served.
			var resp raft.RequestVoteResponse
			if err := a.trans.RequestVote("2", b.addr, &raft.RequestVoteRequest{Term: 3}, &resp); err != nil || resp.Term != 3 {
				t.Fatalf("a good RPC after a bad connection: %v %+v", err, resp)
			}
		})
	}
}
