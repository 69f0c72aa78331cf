package protocol

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteRecords: v0-2.
//   - Moves the log start offset up to the offset given (-1: the high watermark) through
//     the partition's replicated entries; whole segments below it are removed.
func init() { register(kmsg.DeleteRecords, 0, 2, (*Server).deleteRecords) }

func (s *Server) deleteRecords(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	ctx, cancel := r.timeoutCtx(req.TimeoutMillis)
	defer cancel()
	for _, rt := range req.Topics {
		ot := kmsg.NewDeleteRecordsResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewDeleteRecordsResponseTopicPartition()
			op.Partition = rp.Partition
			op.LowWatermark = -1
			p, code := s.leaderPartition(r, rt.Topic, rp.Partition, -1)
			if code != 0 {
				op.ErrorCode = code
			} else if low, err := p.DeleteRecords(ctx, rp.Offset); err != nil {
				op.ErrorCode = s.errCode(err)
			} else {
				op.LowWatermark = low
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp, nil
}
