package replication

import (
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
	w.down[2] = time.Now()
	w.down[3] = time.Now().Add(-electingFor - time.Second)
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
