package protocol

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetForLeaderEpoch: v2-4.
//   - For the current epoch the log end offset; for an older one the first offset of the
//     next epoch, with the largest epoch not above the one asked (Kafka's rules).
//   - CurrentLeaderEpoch is checked (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH).
func init() { register(kmsg.OffsetForLeaderEpoch, 2, 4, (*Server).offsetForLeaderEpoch) }

func (s *Server) offsetForLeaderEpoch(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewOffsetForLeaderEpochResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			op.Partition = rp.Partition
			op.LeaderEpoch, op.EndOffset = -1, -1
			p, code := s.leaderPartition(r, rt.Topic, rp.Partition, rp.CurrentLeaderEpoch)
			if code != 0 {
				op.ErrorCode = code
			} else {
				op.LeaderEpoch, op.EndOffset = p.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp, nil
}
