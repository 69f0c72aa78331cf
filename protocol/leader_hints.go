package protocol

import (
	"context"
	"time"

	"github.com/sluicemq/sluice/replication"
)

// leaderHintWait bounds how long a response with NOT_LEADER_OR_FOLLOWER answers waits, in
// all, to learn the new leaders when leadership has just moved and none is known yet: a
// client given no leader asks for metadata, which clients rate-limit (franz-go: once per
// 5 s).
const leaderHintWait = 500 * time.Millisecond

// leaderHints gathers the KIP-951 hints of one response (Produce v10+, Fetch v16+): the
// current leader of each partition refused because this node does not lead it, and the
// endpoints of the leaders so named. Call done when finished.
type leaderHints struct {
	s      *Server
	ctx    context.Context // ends leaderHintWait after newLeaderHints
	cancel context.CancelFunc
	named  map[replication.NodeID]bool
}

func (s *Server) newLeaderHints(ctx context.Context) *leaderHints {
	ctx, cancel := context.WithTimeout(ctx, leaderHintWait)
	return &leaderHints{s: s, ctx: ctx, cancel: cancel, named: map[replication.NodeID]bool{}}
}

func (h *leaderHints) done() { h.cancel() }

// fill sets *leader and *epoch to key's current leader and its epoch, waiting for one to be
// known while the response's wait lasts, and records the leader for endpoints; it leaves
// them as they are when none is known.
func (h *leaderHints) fill(leader, epoch *int32, key string) {
	ld := h.knownLeader(key)
	if ld.Leader < 0 {
		return
	}
	*leader, *epoch = int32(ld.Leader), ld.Epoch
	h.named[ld.Leader] = true
}

// knownLeader returns key's leadership once a leader is known, or with leader -1 when the
// response's wait ends first. This node, leading without serving (handing its leadership
// over, or not ready yet), is no leader to name: the client already knows it.
func (h *leaderHints) knownLeader(key string) replication.Leadership {
	self := replication.NodeID(h.s.cfg.NodeID)
	var ld replication.Leadership
	until, _ := h.ctx.Deadline()
	if h.s.awaitLeadership(h.ctx, until, func() bool {
		ld = h.s.repl.Leadership(key)
		return ld.Leader >= 0 && (ld.Leader != self || ld.Local)
	}) {
		return ld
	}
	return replication.Leadership{Leader: -1, Epoch: ld.Epoch}
}

// endpoints calls fn with the Kafka endpoint of every leader fill named, in the order of
// the cluster's nodes: the response's NodeEndpoints.
func (h *leaderHints) endpoints(fn func(id int32, host string, port int32)) {
	if len(h.named) == 0 {
		return
	}
	for _, n := range h.s.ctrl.State().Nodes {
		if h.named[n.ID] {
			host, port := splitHostPort(n.KafkaAddr)
			fn(int32(n.ID), host, port)
		}
	}
}
