package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// A stopping node hands the leadership of each group it leads (data groups and the
// controller group) to another voter. hashicorp/raft's LeadershipTransfer picks the
// follower with the highest next index, which may be a member whose process is dead
// (it had the highest index, or tied for it, when it died): the transfer then fails and
// the group has no leader until an election timeout. So the target is chosen here, among
// the voters other than this node that are known alive:
//   - the controller does not count them dead (its node liveness, from heartbeats), and
//   - this leader's Raft heartbeats to them do not fail (peerHealth).
//
// hashicorp/raft does not publish a leader's view of each follower's progress, so "most
// caught up" is approximated: a voter whose heartbeats never failed in this term comes
// before one whose heartbeats failed and came back (it was away, and may still be
// catching up); configuration order breaks ties. A transfer to a target first replicates
// the log to it, and fails if that takes longer than an election timeout; then the next
// target is tried once. With no voter known alive, hashicorp picks the target.

// peerHealth is a leader's view of whether its Raft heartbeats reach each follower, from
// hashicorp/raft's FailedHeartbeatObservation and ResumedHeartbeatObservation. They are
// recorded by the observer's filter, on raft's heartbeat goroutine, so none is dropped.
type peerHealth struct {
	raft     *raft.Raft
	observer *raft.Observer

	mu    sync.Mutex
	peers map[raft.ServerID]heartbeatState // guarded by mu
}

// heartbeatState is what the last heartbeat observation said of one follower.
type heartbeatState struct {
	term    uint64 // this node's term when it was observed
	failing bool   // heartbeats failed (else they failed, then came back)
}

// watchPeers starts recording r's heartbeat observations; close stops it.
func watchPeers(r *raft.Raft) *peerHealth {
	h := &peerHealth{raft: r, peers: map[raft.ServerID]heartbeatState{}}
	h.observer = raft.NewObserver(nil, false, h.note)
	r.RegisterObserver(h.observer)
	return h
}

// note records o if it is a heartbeat observation; it never passes o on.
func (h *peerHealth) note(o *raft.Observation) bool {
	var id raft.ServerID
	failing := false
	switch ob := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		id, failing = ob.PeerID, true
	case raft.ResumedHeartbeatObservation:
		id = ob.PeerID
	default:
		return false
	}
	term := h.raft.CurrentTerm()
	h.mu.Lock()
	h.peers[id] = heartbeatState{term: term, failing: failing}
	h.mu.Unlock()
	return false
}

// state says, for the current term, whether this leader's heartbeats to id are failing,
// and whether they failed at all (troubled).
func (h *peerHealth) state(id raft.ServerID) (failing, troubled bool) {
	term := h.raft.CurrentTerm()
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.peers[id]
	if !ok || s.term != term {
		return false, false
	}
	return s.failing, true
}

func (h *peerHealth) close() { h.raft.DeregisterObserver(h.observer) }

// handOffTargets lists the voters of r's latest configuration other than self that are
// known alive (dead reports the controller's view), best first (see above).
func handOffTargets(r *raft.Raft, self NodeID, health *peerHealth, dead func(NodeID) bool) []raft.Server {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var good, troubled []raft.Server
	for _, s := range f.Configuration().Servers {
		id := parseServerID(s.ID)
		if s.Suffrage != raft.Voter || id == self || id < 0 || dead(id) {
			continue
		}
		failing, hadTrouble := health.state(s.ID)
		switch {
		case failing:
		case hadTrouble:
			troubled = append(troubled, s)
		default:
			good = append(good, s)
		}
	}
	return append(good, troubled...)
}

// handOffLeadership hands r's leadership to the first of targets, or, if that fails, to
// the second; with no target, to the member hashicorp/raft picks. It gives up when ctx
// ends. It returns the node that took over (-1 when raft picked it).
func handOffLeadership(ctx context.Context, r *raft.Raft, targets []raft.Server) (NodeID, error) {
	if len(targets) == 0 {
		return -1, waitFuture(r.LeadershipTransfer(), ctx.Done())
	}
	var errs []error
	for i, s := range targets[:min(2, len(targets))] {
		if i > 0 && (ctx.Err() != nil || r.State() != raft.Leader) {
			break
		}
		id := parseServerID(s.ID)
		err := transferTo(ctx, r, s)
		if err == nil {
			return id, nil
		}
		errs = append(errs, fmt.Errorf("to node %d: %w", id, err))
	}
	return -1, errors.Join(errs...)
}

// transferTo transfers r's leadership to s. hashicorp/raft answers a failed transfer
// shortly before it takes new ones, so one refused as in progress is asked again, for at
// most transferWait.
func transferTo(ctx context.Context, r *raft.Raft, s raft.Server) error {
	deadline := time.Now().Add(transferWait)
	for {
		err := waitFuture(r.LeadershipTransferToServer(s.ID, s.Address), ctx.Done())
		if !errors.Is(err, raft.ErrLeadershipTransferInProgress) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// nodeDead returns the controller's view of whether a node is dead: known to it and not
// alive. A node it does not know of is not counted dead.
func nodeDead(st *ClusterState) func(NodeID) bool {
	return func(id NodeID) bool {
		i := slices.IndexFunc(st.Nodes, func(n Node) bool { return n.ID == id })
		return i >= 0 && !st.Nodes[i].Alive
	}
}
