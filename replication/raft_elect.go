package replication

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Preferred leader elections (Kafka's ElectLeaders, type PREFERRED). A data group's
// preferred leader is the first of its members. Each group hands its leadership back to
// that member by itself once the member has been alive for a while (maybeTransfer), unless
// ClusterConfig.NoAutoLeaderRebalance is set; ElectPreferred does it at once, on request.
//
// The request may reach any node; the transfer is made by the group's leader, so the
// node asks it over the controller RPC port (rpcElectPreferred), which every node serves
// for this op whether or not it leads the controller. The leader refuses when the
// preferred member is dead (in the controller's view), not a voter, or not reached by its
// Raft heartbeats. The call then waits until this node sees the preferred member lead.

// ElectPreferred hands the leadership of key's data group to the group's preferred
// member, and returns once this node sees that member lead (or ctx ends). All the
// partitions of the group change leader together. ErrElectionNotNeeded: the preferred
// member leads already. ErrPreferredLeaderNotAvailable: it cannot lead now (down, not a
// voter of the group, or the group has no leader to hand over). ErrUnknownKey: key is in
// no data group.
func (r *RaftReplicator) ElectPreferred(ctx context.Context, key string) error {
	name, ok := r.groupOf(key)
	if !ok {
		return fmt.Errorf("elect a leader for %s: %w", key, ErrUnknownKey)
	}
	dg, ok := r.ctrl.Groups()[name]
	if !ok || len(dg.Members) == 0 {
		return fmt.Errorf("elect a leader for group %s: %w", name, ErrUnknownKey)
	}
	preferred := dg.Members[0]
	backoff := 20 * time.Millisecond
	for asked := false; ; asked = true {
		l := r.Leadership(key)
		switch {
		case l.Leader == preferred && asked:
			return nil // a leader asked before handed over, then lost track of it
		case l.Leader == preferred:
			return fmt.Errorf("group %s: node %d leads: %w", name, preferred, ErrElectionNotNeeded)
		case l.Leader < 0:
			return fmt.Errorf("group %s has no leader to hand over to node %d: %w", name, preferred, ErrPreferredLeaderNotAvailable)
		}
		err := r.askElect(ctx, l.Leader, name)
		if err == nil {
			return r.awaitLeader(ctx, key, name, preferred)
		}
		// The node named leader no longer leads (this node's view lags): ask again once
		// the view changes.
		if !isRetryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("elect node %d for group %s: %w (last: %v)", preferred, name, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// askElect asks node, which leads group in this node's view, to hand it to its preferred
// member.
func (r *RaftReplicator) askElect(ctx context.Context, node NodeID, group string) error {
	if node == r.cfg.NodeID {
		return r.electHere(ctx, group)
	}
	addr := r.peerAddr(node)
	if addr == "" {
		return fmt.Errorf("group %s: no Raft address for its leader, node %d: %w", group, node, ErrNotLeader)
	}
	resp, err := r.ctrl.rpc.call(ctx, addr, &rpcRequest{Op: rpcElectPreferred, Group: group})
	if err != nil {
		// The leader could not be reached: it may have died, and the view will say so.
		return fmt.Errorf("group %s: ask node %d: %v: %w", group, node, err, ErrNotLeader)
	}
	return resp.err()
}

// awaitLeader waits until this node sees preferred lead key's group.
func (r *RaftReplicator) awaitLeader(ctx context.Context, key, group string, preferred NodeID) error {
	for {
		ch := r.LeadershipChanged()
		if r.Leadership(key).Leader == preferred {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("group %s handed to node %d, not yet seen leading here: %w", group, preferred, ctx.Err())
		case <-ch:
		case <-time.After(50 * time.Millisecond): // views of other nodes' groups come from the controller
		}
	}
}

// electHere, on group's leader, hands the leadership to the preferred member.
func (r *RaftReplicator) electHere(ctx context.Context, group string) error {
	r.mu.Lock()
	d, ok := r.groups[group]
	r.mu.Unlock()
	if !ok || d.raft == nil || !d.ready() {
		return fmt.Errorf("group %s: node %d does not lead it: %w", group, r.cfg.NodeID, ErrNotLeader)
	}
	preferred := d.spec.Load().Members[0]
	if preferred == r.cfg.NodeID {
		return fmt.Errorf("group %s: node %d leads: %w", group, preferred, ErrElectionNotNeeded)
	}
	var target *raft.Server
	if f := d.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if parseServerID(s.ID) == preferred && s.Suffrage == raft.Voter {
				target = &s
			}
		}
	}
	if target == nil {
		return fmt.Errorf("group %s: node %d is not a voter yet: %w", group, preferred, ErrPreferredLeaderNotAvailable)
	}
	if nodeDead(r.ctrl.State())(preferred) {
		return fmt.Errorf("group %s: node %d is down: %w", group, preferred, ErrPreferredLeaderNotAvailable)
	}
	if failing, _ := d.peers.state(target.ID); failing {
		return fmt.Errorf("group %s: node %d does not answer Raft heartbeats: %w", group, preferred, ErrPreferredLeaderNotAvailable)
	}
	r.logger.Info("handing leadership to the preferred leader on request", zap.String("group", group), zap.Int32("to", int32(preferred)))
	if err := transferTo(ctx, d.raft, *target); err != nil {
		if d.raft.State() != raft.Leader {
			return fmt.Errorf("group %s: %v: %w", group, err, ErrNotLeader)
		}
		return fmt.Errorf("group %s: hand leadership to node %d: %v: %w", group, preferred, err, ErrPreferredLeaderNotAvailable)
	}
	return nil
}
