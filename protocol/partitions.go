package protocol

import (
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// leaderPartition returns the partition when this node leads it and may serve it, or the
// Kafka error code saying why not. currentEpoch is the client's view of the leader epoch
// (-1: unchecked): older is FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH. A partition
// this node was just elected to lead is waited for (awaitReady).
func (s *Server) leaderPartition(r *Request, topic string, index int32, currentEpoch int32) (*partition.Partition, int16) {
	t, ok := s.ctrl.State().Topics[topic]
	if !ok || index < 0 || int(index) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	p, ok := s.parts.Get(topic, index)
	if !ok || p.TopicID() != t.ID {
		return nil, kerr.NotLeaderForPartition.Code
	}
	ld := p.Leadership()
	if !ld.Local && ld.Leader == replication.NodeID(s.cfg.NodeID) {
		ld = s.awaitReady(r, p)
	}
	if !ld.Local {
		if ld.Leader < 0 {
			return nil, kerr.LeaderNotAvailable.Code
		}
		return nil, kerr.NotLeaderForPartition.Code
	}
	if currentEpoch >= 0 {
		switch {
		case currentEpoch < ld.Epoch:
			return nil, kerr.FencedLeaderEpoch.Code
		case currentEpoch > ld.Epoch:
			return nil, kerr.UnknownLeaderEpoch.Code
		}
	}
	return p, 0
}

// readyWait bounds how long a request waits for a partition whose leadership this node
// is taking up: elected, it runs a barrier before it serves (replication.Leadership.Local),
// and other nodes name it the leader as soon as it is elected. A client sent here in the
// meantime and told NOT_LEADER_OR_FOLLOWER backs off before it tries again (franz-go's
// consumer: 1 s), where the barrier takes milliseconds. The wait is shared by all the
// partitions of a request.
const readyWait = time.Second

// awaitReady waits, up to the request's readyWait, while this node leads p's group but
// does not serve it yet, and returns p's leadership then.
func (s *Server) awaitReady(r *Request, p *partition.Partition) replication.Leadership {
	if r.readyBy.IsZero() {
		r.readyBy = time.Now().Add(readyWait)
	}
	self := replication.NodeID(s.cfg.NodeID)
	var ld replication.Leadership
	s.awaitLeadership(r.Ctx, r.readyBy, func() bool {
		ld = p.Leadership()
		return ld.Local || ld.Leader != self
	})
	return ld
}

// topicPartitions are the partitions of one topic that a request names.
type topicPartitions struct {
	topic      string
	partitions []int32
}

// askedPartitions returns the partitions a request's topics name (each topic's name and
// partitions read by parts), or, when topics is null, every partition of every topic in
// st, in name order.
func askedPartitions[T any](st *replication.ClusterState, topics []T, parts func(*T) (string, []int32)) []topicPartitions {
	var out []topicPartitions
	if topics == nil {
		for _, name := range slices.Sorted(maps.Keys(st.Topics)) {
			tp := topicPartitions{topic: name}
			for _, p := range st.Topics[name].Partitions {
				tp.partitions = append(tp.partitions, p.Partition)
			}
			out = append(out, tp)
		}
		return out
	}
	for i := range topics {
		name, ps := parts(&topics[i])
		out = append(out, topicPartitions{topic: name, partitions: ps})
	}
	return out
}
