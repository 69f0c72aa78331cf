package replication

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap/zaptest"
)

func pingMux(t *testing.T, listen string) *Mux {
	t.Helper()
	m, err := NewMux(listen, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.HandleService(pingService, servePing); err != nil {
		t.Fatal(err)
	}
	return m
}

func (w *peerWatch) state(id NodeID) peerState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p, ok := w.watched[id]; ok {
		return p.state
	}
	return peerUnknown
}

// A node whose port goes away is down within moments, and reported once; it is up again
// once its port is back. A node never reached is down but not reported.
func TestPeerWatch(t *testing.T) {
	m := pingMux(t, "127.0.0.1:0")
	addr := m.Addr().String()
	never := freeAddrs(t, 1)[0] // nothing listens there

	downs := make(chan NodeID, 8)
	var flips atomic.Int32
	w := newPeerWatch(zaptest.NewLogger(t), time.Second, func(id NodeID) { downs <- id }, func() { flips.Add(1) })
	defer w.close()
	w.sync(map[NodeID]string{2: addr, 3: never})

	waitFor(t, 5*time.Second, "node 2 up", func() bool { return w.state(2) == peerUp })
	waitFor(t, 5*time.Second, "node 3 down", func() bool { return w.state(3) == peerDown })
	if down, _ := w.isDown(2); down {
		t.Fatal("node 2 is down while its port is open")
	}
	if down, _ := w.isDown(3); !down {
		t.Fatal("node 3 is not down, and nothing ever listened at its address")
	}

	closed := time.Now()
	m.Close()
	select {
	case id := <-downs:
		if id != 2 {
			t.Fatalf("reported node %d down, want 2 (node 3 was never up)", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node 2's port closed and no down was reported within 5 s")
	}
	down, since := w.isDown(2)
	if !down || since.Before(closed) {
		t.Fatalf("isDown(2) = %v since %v; its port closed at %v", down, since, closed)
	}
	before := flips.Load()

	m = pingMux(t, addr)
	defer m.Close()
	waitFor(t, 5*time.Second, "node 2 up again", func() bool { d, _ := w.isDown(2); return !d })
	if flips.Load() == before {
		t.Fatal("node 2 came back and no change was reported")
	}
	select {
	case id := <-downs:
		t.Fatalf("node %d reported down again", id)
	default:
	}

	// Once no longer watched, a node is neither up nor down.
	w.sync(map[NodeID]string{3: never})
	if down, _ := w.isDown(2); down || w.state(2) != peerUnknown {
		t.Fatal("node 2 still watched after sync dropped it")
	}
}

// A node whose ping connection broke is down while the watcher dials it again: the
// dial that tells whether anything still listens is not made the moment the connection
// breaks, and a client whose own connection to that node was reset may ask in between.
// Once the new dial succeeds the node is up, and was never reported down.
func TestPeerWatchDownWhileRedialing(t *testing.T) {
	downs := make(chan NodeID, 8)
	var flips atomic.Int32
	w := newPeerWatch(zaptest.NewLogger(t), time.Second, func(id NodeID) { downs <- id }, func() { flips.Add(1) })
	defer w.close()
	dials := make(chan net.Conn)      // the watcher's next dial returns this end
	dialing := make(chan struct{}, 8) // a dial has begun
	w.dial = func(ctx context.Context, _ string) (net.Conn, error) {
		dialing <- struct{}{}
		select {
		case c := <-dials:
			return c, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	w.sync(map[NodeID]string{2: "node2:1"})

	ours, theirs := net.Pipe()
	<-dialing
	dials <- ours
	waitFor(t, 5*time.Second, "node 2 up", func() bool { return w.state(2) == peerUp })
	if down, _ := w.isDown(2); down {
		t.Fatal("node 2 is down with its ping connection open")
	}

	broke := time.Now()
	theirs.Close()
	<-dialing // the watcher read the end, and dials again
	down, since := w.isDown(2)
	if !down || since.Before(broke) {
		t.Fatalf("isDown(2) = %v since %v while the watcher dials again; the connection broke at %v", down, since, broke)
	}
	before := flips.Load()

	ours, theirs = net.Pipe()
	defer theirs.Close()
	dials <- ours
	waitFor(t, 5*time.Second, "node 2 no longer down", func() bool { d, _ := w.isDown(2); return !d })
	if flips.Load() == before {
		t.Fatal("node 2 has a ping connection again and no change was reported")
	}
	select {
	case id := <-downs:
		t.Fatalf("node %d reported down; its new dial succeeded", id)
	default:
	}
}

// A probe tells a process that is there (it echoes) from one that is gone, even before
// the gone one's connection has closed: it waits for the echo or the close. A stalled
// process is waited for once, for probeWait, and then not again until it echoes.
func TestPeerWatchProbe(t *testing.T) {
	m := pingMux(t, "127.0.0.1:0")
	defer m.Close()
	// Nodes 3 and 4 accept connections and never answer (stalled, or dying: the test
	// closes node 4's end).
	silent := map[string]chan net.Conn{}
	listeners := map[string]net.Listener{}
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 4)
		silent[ln.Addr().String()], listeners[ln.Addr().String()] = accepted, ln
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
	}
	w := newPeerWatch(zaptest.NewLogger(t), time.Second, nil, nil)
	defer w.close()
	w.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		if silent[addr] != nil {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
		return dialContext(ctx, addr, pingService, time.Second)
	}
	peers := map[NodeID]string{2: m.Addr().String()}
	conns := map[NodeID]chan net.Conn{}
	id := NodeID(3)
	for addr, accepted := range silent {
		peers[id], conns[id] = addr, accepted
		id++
	}
	w.sync(peers)
	for id := range peers {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d up", id), func() bool { return w.state(id) == peerUp })
	}
	probes := func(id NodeID) (sent, echoed uint64) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.watched[id].sent, w.watched[id].echoed
	}

	if w.probe(context.Background(), 2) {
		t.Fatal("node 2, whose process echoes, probed gone")
	}
	if sent, echoed := probes(2); sent != 1 || echoed != 1 {
		t.Fatalf("node 2: %d probes sent, %d echoed; want 1 and 1", sent, echoed)
	}

	start := time.Now()
	if w.probe(context.Background(), 3) {
		t.Fatal("node 3, stalled, probed gone")
	}
	if took := time.Since(start); took < probeWait {
		t.Fatalf("the probe of node 3, which never echoes, returned after %v; it waits %v", took, probeWait)
	}
	if w.probe(context.Background(), 3) {
		t.Fatal("node 3, stalled, probed gone the second time")
	}
	if sent, echoed := probes(3); sent != 1 || echoed != 0 {
		t.Fatalf("node 3: %d probes sent, %d echoed; want 1 and 0 (no second probe while the first is unanswered)", sent, echoed)
	}

	// Node 4's process dies while the probe waits: its port and connection close.
	their := <-conns[4]
	listeners[peers[4]].Close()
	gone := make(chan bool, 1)
	go func() { gone <- w.probe(context.Background(), 4) }()
	waitFor(t, 5*time.Second, "the probe of node 4 sent", func() bool { sent, _ := probes(4); return sent == 1 })
	their.Close()
	if !<-gone {
		t.Fatal("node 4's connection closed while the probe waited, and the probe did not find it gone")
	}
}

// When the leader's process is gone, its groups elect a new leader at once, not after an
// election timeout: here that timeout is 3 s (a follower stands once it has heard nothing
// from the leader for 3 to 6 s), and a new leader is due within 2 s.
func TestRaftStandsForLeaderWhenItsProcessIsGone(t *testing.T) {
	const electionTimeout = 3 * time.Second
	c := newTestCluster(t, 3, func(cfg *ClusterConfig) { cfg.ElectionTimeout = electionTimeout })
	keys := c.createTopic("events", 3)
	want := map[string][]string{}
	for _, key := range keys {
		v := "a-" + key
		c.produce(key, v)
		want[key] = append(want[key], v)
	}
	victim := c.leaderOf(keys[0], 20*time.Second)
	vid := victim.cfg.NodeID
	oldTerm := victim.repl.Leadership(keys[0]).Epoch

	// A crash: the port goes first, then the rest, without handing anything over.
	victim.mux.Close()
	gone := time.Now()
	victim.close()
	c.nodes[vid-1] = nil

	leader := c.leaderOf(keys[0], 20*time.Second)
	took := time.Since(gone)
	if took > electionTimeout*2/3 {
		t.Fatalf("a new leader took %v after the old one's port closed; an election timeout is %v", took, electionTimeout)
	}
	ld := leader.repl.Leadership(keys[0])
	if ld.Epoch <= oldTerm {
		t.Fatalf("new leader %d at epoch %d, not after the old epoch %d", leader.cfg.NodeID, ld.Epoch, oldTerm)
	}
	t.Logf("node %d leads %s %v after node %d's port closed", leader.cfg.NodeID, keys[0], took, vid)
	// No survivor names the dead node as a leader.
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		for _, key := range keys {
			if l := n.repl.Leadership(key); l.Leader == vid {
				t.Fatalf("node %d names node %d, gone, as the leader of %s", n.cfg.NodeID, vid, key)
			}
		}
	}
	for _, key := range keys {
		v := "b-" + key
		c.produce(key, v)
		want[key] = append(want[key], v)
	}
	for _, key := range keys {
		c.converge(key, want[key])
	}
}

// A leader whose process is gone is no leader; for electingFor after it went, an election
// is under way.
func TestLeadershipUnlessGone(t *testing.T) {
	w := newPeerWatch(zaptest.NewLogger(t), time.Second, nil, nil)
	defer w.close()
	for id, since := range map[NodeID]time.Time{2: time.Now(), 3: time.Now().Add(-electingFor - time.Second)} {
		w.watched[id] = &watchedPeer{cancel: func() {}, state: peerDown, downSince: since, event: make(chan struct{})}
	}
	r := &RaftReplicator{cfg: ClusterConfig{NodeID: 1}, peers: w}
	for _, tc := range []struct {
		in, want Leadership
	}{
		{Leadership{Leader: 2, Epoch: 4}, Leadership{Leader: -1, Epoch: 4, Electing: true}},
		{Leadership{Leader: 3, Epoch: 4}, Leadership{Leader: -1, Epoch: 4}},
		{Leadership{Leader: 4, Epoch: 4}, Leadership{Leader: 4, Epoch: 4}},
		{Leadership{Leader: 1, Epoch: 4, Local: true}, Leadership{Leader: 1, Epoch: 4, Local: true}},
		{Leadership{Leader: -1, Epoch: 4, Electing: true}, Leadership{Leader: -1, Epoch: 4, Electing: true}},
	} {
		if got := r.unlessGone(tc.in); got != tc.want {
			t.Errorf("unlessGone(%+v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// The controller group, too, elects a new leader at once when its leader's process is
// gone: with a 3 s election timeout, one is due within 2 s. And the node is counted dead
// at once, not after the 20 s liveness timeout.
func TestControllerStandsForLeaderWhenItsProcessIsGone(t *testing.T) {
	const electionTimeout = 3 * time.Second
	c := newTestCluster(t, 3, func(cfg *ClusterConfig) {
		cfg.ElectionTimeout, cfg.LivenessTimeout = electionTimeout, 20*time.Second
	})
	leader := func() *testNode {
		for _, n := range c.nodes {
			if n != nil && n.ctrl.raft.State() == raft.Leader {
				return n
			}
		}
		return nil
	}
	var victim *testNode
	waitFor(t, 20*time.Second, "a controller leader", func() bool { victim = leader(); return victim != nil })
	// The survivors know the victim is up before it goes.
	waitFor(t, 10*time.Second, "the victim reachable", func() bool {
		for _, n := range c.nodes {
			if n != victim && n.repl.peers.state(victim.cfg.NodeID) != peerUp {
				return false
			}
		}
		return true
	})
	vid := victim.cfg.NodeID
	victim.mux.Close()
	gone := time.Now()
	victim.close()
	c.nodes[vid-1] = nil
	var next *testNode
	waitFor(t, 20*time.Second, "a new controller leader", func() bool { next = leader(); return next != nil })
	if took := time.Since(gone); took > electionTimeout*2/3 {
		t.Fatalf("a new controller leader took %v after the old one's port closed; an election timeout is %v", took, electionTimeout)
	}
	// It serves: a topic can be created.
	c.createTopic("after", 1)
	waitFor(t, 5*time.Second, "the victim counted dead", func() bool {
		_, alive := nodeAlive(next.ctrl.State(), vid)
		return !alive
	})
}
