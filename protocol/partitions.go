package protocol

import (
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/partition"
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
