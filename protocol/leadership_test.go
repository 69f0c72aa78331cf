package protocol

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/replication"
)

// electingReplicator is the node's replicator, except that while electing is set every
// key is in an election (no leader, Electing), as a cluster node reports a partition whose
// leader's process just went away.
type electingReplicator struct {
	*replication.LocalReplicator
	leadershipChanges
	electing bool
}

func (r *electingReplicator) Leadership(key string) replication.Leadership {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.electing {
		return replication.Leadership{Leader: -1, Epoch: 1, Electing: true}
	}
	return r.LocalReplicator.Leadership(key)
}

func (r *electingReplicator) setElecting(on bool) { r.change(func() { r.electing = on }) }

// serveWrapped starts a server whose partitions and requests use the replicator wrap
// makes around the node's own, creates topic with partitions, and dials the server.
func serveWrapped[R replication.Replicator](t *testing.T, topic string, partitions int32,
	wrap func(*replication.LocalReplicator) R) (R, *rawConn) {
	t.Helper()
	var r R
	ts := startServer(t, "", withReplicator(func(l *replication.LocalReplicator) replication.Replicator {
		r = wrap(l)
		return r
	}))
	createTopic(t, ts.addr, topic, partitions, nil)
	return r, dialRaw(t, ts.addr)
}

// leadershipChanges is a test replicator's LeadershipChanged; change alters its state
// under mu and wakes the waiters.
type leadershipChanges struct {
	mu      sync.Mutex
	changed chan struct{}
}

func (c *leadershipChanges) LeadershipChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

func (c *leadershipChanges) change(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f()
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
}

// A Metadata request waits for the partitions it describes that are electing a leader,
// and names the leader elected meanwhile; when none is elected within electionWait it
// answers LEADER_NOT_AVAILABLE, as before.
func TestMetadataWaitsForElection(t *testing.T) {
	er, c := serveWrapped(t, "elect", 2, func(l *replication.LocalReplicator) *electingReplicator {
		return &electingReplicator{LocalReplicator: l}
	})
	ask := func(corr int32) (kmsg.MetadataResponseTopic, time.Duration) {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 12
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("elect")
		req.Topics = append(req.Topics, rt)
		start := time.Now()
		resp := c.roundTrip(req, corr).(*kmsg.MetadataResponse)
		return resp.Topics[0], time.Since(start)
	}

	// Elected 200 ms into the request: the answer names the new leader.
	er.setElecting(true)
	elected := make(chan struct{})
	go func() {
		defer close(elected)
		time.Sleep(200 * time.Millisecond)
		er.setElecting(false)
	}()
	mt, took := ask(1)
	<-elected
	for _, p := range mt.Partitions {
		if p.ErrorCode != 0 || p.Leader != 0 {
			t.Fatalf("partition %d: leader %d, error %d, after waiting %v; want the leader elected meanwhile", p.Partition, p.Leader, p.ErrorCode, took)
		}
	}

	// Never elected: the answer comes after electionWait, with no leader.
	er.setElecting(true)
	mt, took = ask(2)
	if took < electionWait {
		t.Fatalf("answered after %v, before the %v an election is waited for", took, electionWait)
	}
	for _, p := range mt.Partitions {
		if p.ErrorCode != kerr.LeaderNotAvailable.Code || p.Leader != -1 {
			t.Fatalf("partition %d: leader %d, error %d; want LEADER_NOT_AVAILABLE with no leader", p.Partition, p.Leader, p.ErrorCode)
		}
	}

	// Without an election under way the answer does not wait.
	er.setElecting(false)
	if mt, took = ask(3); mt.Partitions[0].Leader != 0 || took >= electionWait {
		t.Fatalf("leader %d after %v with no election", mt.Partitions[0].Leader, took)
	}
}

// probingReplicator is the node's replicator, except that every key is led by node 7
// until node 7 is probed while its process is gone (set by the test); the node's own
// leadership is reported from then on, as if this node had won the election.
type probingReplicator struct {
	*replication.LocalReplicator

	mu     sync.Mutex
	gone   bool                   // node 7's process is gone
	found  bool                   // a probe found it gone
	probed [][]replication.NodeID // the nodes of each probe
}

func (r *probingReplicator) Leadership(key string) replication.Leadership {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.found {
		return replication.Leadership{Leader: 7, Epoch: 1}
	}
	return r.LocalReplicator.Leadership(key)
}

func (r *probingReplicator) ProbeNodes(_ context.Context, nodes []replication.NodeID) []replication.NodeID {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.probed = append(r.probed, nodes)
	if r.gone && slices.Contains(nodes, 7) {
		r.found = true
		return []replication.NodeID{7}
	}
	return nil
}

// Metadata asks whether the leaders it names are there before it answers: a leader whose
// process is gone, though this node had not seen it go when the request came, is not
// named.
func TestMetadataProbesLeaders(t *testing.T) {
	pr, c := serveWrapped(t, "probed", 2, func(l *replication.LocalReplicator) *probingReplicator {
		return &probingReplicator{LocalReplicator: l}
	})
	ask := func(corr int32) kmsg.MetadataResponseTopic {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 12
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("probed")
		req.Topics = append(req.Topics, rt)
		return c.roundTrip(req, corr).(*kmsg.MetadataResponse).Topics[0]
	}

	// Node 7 is there: named, once asked.
	pr.mu.Lock()
	pr.probed = nil
	pr.mu.Unlock()
	for _, p := range ask(1).Partitions {
		if p.Leader != 7 {
			t.Fatalf("partition %d: leader %d; want 7, whose process is there", p.Partition, p.Leader)
		}
	}
	pr.mu.Lock()
	probed := slices.Clone(pr.probed)
	pr.gone = true
	pr.mu.Unlock()
	if len(probed) != 1 || !slices.Equal(probed[0], []replication.NodeID{7}) {
		t.Fatalf("probes %v; want one, of node 7, the leader named", probed)
	}

	// Node 7's process is gone: the answer names the leader after it.
	for _, p := range ask(2).Partitions {
		if p.ErrorCode != 0 || p.Leader != 0 {
			t.Fatalf("partition %d: leader %d, error %d; want node 0, not node 7 whose process is gone", p.Partition, p.Leader, p.ErrorCode)
		}
	}
}

// readyingReplicator is the node's replicator, except that while taking is set this node
// leads every key without serving it yet, as a node just elected does until its barrier
// has run.
type readyingReplicator struct {
	*replication.LocalReplicator
	leadershipChanges
	taking bool
	moved  bool // node 7 leads every key
}

func (r *readyingReplicator) Leadership(key string) replication.Leadership {
	r.mu.Lock()
	defer r.mu.Unlock()
	ld := r.LocalReplicator.Leadership(key)
	if r.taking {
		ld.Local = false
	}
	if r.moved {
		ld = replication.Leadership{Leader: 7, Epoch: ld.Epoch + 1}
	}
	return ld
}

func (r *readyingReplicator) setMoved() { r.change(func() { r.moved = true }) }

func (r *readyingReplicator) setTaking(on bool) { r.change(func() { r.taking = on }) }

// A request to a partition this node was just elected to lead waits for it to serve, as
// long as readyWait, instead of answering NOT_LEADER_OR_FOLLOWER to a client that other
// nodes' metadata sent here; the wait is shared by all the partitions of the request.
func TestRequestsWaitForNewLeaderReady(t *testing.T) {
	rr, c := serveWrapped(t, "taking", 3, func(l *replication.LocalReplicator) *readyingReplicator {
		return &readyingReplicator{LocalReplicator: l}
	})
	ask := func(corr int32) ([]int16, time.Duration) {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.Version = 4
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = "taking"
		for p := range int32(3) {
			rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
			rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p, -1, 0
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		start := time.Now()
		resp := c.roundTrip(req, corr).(*kmsg.OffsetForLeaderEpochResponse)
		var codes []int16
		for _, p := range resp.Topics[0].Partitions {
			codes = append(codes, p.ErrorCode)
		}
		return codes, time.Since(start)
	}

	// Ready 200 ms into the request: every partition answered.
	rr.setTaking(true)
	go func() {
		time.Sleep(200 * time.Millisecond)
		rr.setTaking(false)
	}()
	if codes, took := ask(1); slices.ContainsFunc(codes, func(c int16) bool { return c != 0 }) {
		t.Fatalf("error codes %v after %v; want the partitions served once this node is ready", codes, took)
	}

	// Never ready: NOT_LEADER_OR_FOLLOWER once readyWait is over, for the request as a
	// whole, not for each partition.
	rr.setTaking(true)
	codes, took := ask(2)
	for _, code := range codes {
		if code != kerr.NotLeaderForPartition.Code {
			t.Fatalf("error codes %v; want NOT_LEADER_OR_FOLLOWER for every partition", codes)
		}
	}
	if took < readyWait || took >= 2*readyWait {
		t.Fatalf("answered after %v; want after the %v wait, shared by the three partitions", took, readyWait)
	}
}

// losingReplicator is the node's replicator, except that while losing is set every write
// ends with its outcome unknown, as when leadership moves while it waits.
type losingReplicator struct {
	*replication.LocalReplicator
	losing atomic.Bool
}

// Submit is what a produce writes through.
func (r *losingReplicator) Submit(ctx context.Context, key string, entry []byte) func() (any, error) {
	if r.losing.Load() {
		return func() (any, error) {
			return nil, fmt.Errorf("replicate %s: %w: leadership lost while committing log", key, replication.ErrOutcomeUnknown)
		}
	}
	return r.LocalReplicator.Submit(ctx, key, entry)
}

// A write whose leader lost its leadership while the write waited is answered
// NOT_LEADER_OR_FOLLOWER, as Kafka answers it, so that the client resends to the new
// leader at once; REQUEST_TIMED_OUT would send it through a metadata refresh first.
func TestProduceLeadershipLostIsNotLeader(t *testing.T) {
	lr, c := serveWrapped(t, "lost", 1, func(l *replication.LocalReplicator) *losingReplicator {
		return &losingReplicator{LocalReplicator: l}
	})
	produce := func(corr int32) int16 {
		req := produceRequest(11, "lost", makeBatch([][]byte{[]byte("v")}, batchOpts{}))
		return c.roundTrip(req, corr).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	if code := produce(1); code != 0 {
		t.Fatalf("produce: error %d", code)
	}
	lr.losing.Store(true)
	if code := produce(2); code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce while leadership is lost: error %d, want NOT_LEADER_OR_FOLLOWER (%d)", code, kerr.NotLeaderForPartition.Code)
	}
}

// A fetch waiting for records on a partition whose leadership moves away is answered at
// once, NOT_LEADER_OR_FOLLOWER, rather than when its wait is over.
func TestFetchWaitEndsWhenLeadershipMoves(t *testing.T) {
	rr, c := serveWrapped(t, "moving", 1, func(l *replication.LocalReplicator) *readyingReplicator {
		return &readyingReplicator{LocalReplicator: l}
	})
	const maxWait = 10 * time.Second
	req := longPollRequest(12, "moving", maxWait)

	go func() {
		time.Sleep(200 * time.Millisecond)
		rr.setMoved()
	}()
	start := time.Now()
	resp := c.roundTrip(req, 1).(*kmsg.FetchResponse)
	took := time.Since(start)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("fetch after the leadership moved: error %d, want NOT_LEADER_OR_FOLLOWER", code)
	}
	if took >= maxWait/2 {
		t.Fatalf("the fetch was answered after %v; the leadership moved 200 ms in, and its wait is %v", took, maxWait)
	}
}

// steppingReplicator is the node's replicator, except that a write, once stepping is
// set, finds this node stepping down: refused as not leader, with this node still named
// leader (not serving) until node 7 is, 100 ms later; as Raft reports a leader that has
// just handed over its leadership.
type steppingReplicator struct {
	*replication.LocalReplicator
	leadershipChanges
	stepping bool
	state    int // 0: leading, 1: stepped down, still named, 2: node 7 leads
}

func (r *steppingReplicator) Leadership(key string) replication.Leadership {
	r.mu.Lock()
	defer r.mu.Unlock()
	ld := r.LocalReplicator.Leadership(key)
	switch r.state {
	case 1:
		ld.Local = false
	case 2:
		ld = replication.Leadership{Leader: 7, Epoch: ld.Epoch + 1}
	}
	return ld
}

// Submit is what a produce writes through.
func (r *steppingReplicator) Submit(ctx context.Context, key string, entry []byte) func() (any, error) {
	r.mu.Lock()
	stepping := r.stepping
	r.mu.Unlock()
	if !stepping {
		return r.LocalReplicator.Submit(ctx, key, entry)
	}
	r.change(func() { r.state = 1 })
	time.AfterFunc(100*time.Millisecond, func() { r.change(func() { r.state = 2 }) })
	return func() (any, error) { return nil, fmt.Errorf("replicate %s: %w", key, replication.ErrNotLeader) }
}

// A produce refused because this node has just stepped down names the next leader, not
// this node, which Raft names for a moment after it stepped down: a client would not
// take this node as news and would look the leader up through a metadata refresh.
func TestProduceHintSkipsSteppedDownSelf(t *testing.T) {
	sr, c := serveWrapped(t, "stepping", 1, func(l *replication.LocalReplicator) *steppingReplicator {
		return &steppingReplicator{LocalReplicator: l}
	})
	sr.mu.Lock()
	sr.stepping = true
	sr.mu.Unlock()
	req := produceRequest(11, "stepping", makeBatch([][]byte{[]byte("v")}, batchOpts{}))
	op := c.roundTrip(req, 1).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if op.ErrorCode != kerr.NotLeaderForPartition.Code || op.CurrentLeader.LeaderID != 7 {
		t.Fatalf("produce as this node steps down: error %d, leader hint %d; want NOT_LEADER_OR_FOLLOWER naming node 7",
			op.ErrorCode, op.CurrentLeader.LeaderID)
	}
}
