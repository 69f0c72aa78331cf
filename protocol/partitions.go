package protocol

import (
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// leaderPartition returns the partition when this node leads it and may serve it, or the
// Kafka error code saying why not. currentEpoch is the client's view of the leader epoch
// (-1: unchecked): older is FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH.
func (s *Server) leaderPartition(topic string, index int32, currentEpoch int32) (*partition.Partition, int16) {
	t, ok := s.ctrl.State().Topics[topic]
	if !ok || index < 0 || int(index) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	p, ok := s.parts.Get(topic, index)
	if !ok || p.TopicID() != t.ID {
		return nil, kerr.NotLeaderForPartition.Code
	}
	ld := p.Leadership()
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
