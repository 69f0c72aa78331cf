package protocol

import (
	"context"
	"slices"
	"sync"
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

	mu       sync.Mutex
	electing bool
	changed  chan struct{}
}

func (r *electingReplicator) Leadership(key string) replication.Leadership {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.electing {
		return replication.Leadership{Leader: -1, Epoch: 1, Electing: true}
	}
	return r.LocalReplicator.Leadership(key)
}

func (r *electingReplicator) LeadershipChanged() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

func (r *electingReplicator) setElecting(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.electing = on
	close(r.changed)
	r.changed = make(chan struct{})
}

// A Metadata request waits for the partitions it describes that are electing a leader,
// and names the leader elected meanwhile; when none is elected within electionWait it
// answers LEADER_NOT_AVAILABLE, as before.
func TestMetadataWaitsForElection(t *testing.T) {
	var er *electingReplicator
	ts := startServer(t, "", withConfig(func(c *Config) {
		if c.Replicator == nil { // the first pass, before the config is filled in
			return
		}
		er = &electingReplicator{LocalReplicator: c.Replicator.(*replication.LocalReplicator), changed: make(chan struct{})}
		c.Replicator = er
	}))
	createTopic(t, ts.addr, "elect", 2, nil)
	c := dialRaw(t, ts.addr)
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
	var pr *probingReplicator
	ts := startServer(t, "", withConfig(func(c *Config) {
		if c.Replicator == nil {
			return
		}
		pr = &probingReplicator{LocalReplicator: c.Replicator.(*replication.LocalReplicator)}
		c.Replicator = pr
	}))
	createTopic(t, ts.addr, "probed", 2, nil)
	c := dialRaw(t, ts.addr)
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
