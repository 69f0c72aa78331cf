package protocol

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Special ListOffsets timestamps.
const (
	listLatest        = -1
	listEarliest      = -2
	listMaxTimestamp  = -3 // v7+
	listEarliestLocal = -4 // v8+: no tiered storage, so the same as earliest
	listLatestTiered  = -5 // v9+ in Kafka; answered as "none" if it comes
)

// ListOffsets: v0-8.
//   - -2 earliest (log start offset), -1 latest (the high watermark; the last stable offset
//     is the same, there being no transactions), -3 the record with the largest timestamp
//     (v7+), -4 earliest local (= earliest), a timestamp: the first offset at or after it.
//     No match: offset -1, timestamp -1, no error.
//   - v0 answers in OldStyleOffsets (one offset at most).
//   - v4+: the leader epoch of the returned offset; CurrentLeaderEpoch is checked.
func init() { register(kmsg.ListOffsets, 0, 8, (*Server).listOffsets) }

func (s *Server) listOffsets(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewListOffsetsResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewListOffsetsResponseTopicPartition()
			op.Partition = rp.Partition
			op.Timestamp, op.Offset, op.LeaderEpoch = -1, -1, -1
			epoch := int32(-1)
			if req.Version >= 4 {
				epoch = rp.CurrentLeaderEpoch
			}
			p, code := s.leaderPartition(r, rt.Topic, rp.Partition, epoch)
			if code != 0 {
				op.ErrorCode = code
				ot.Partitions = append(ot.Partitions, op)
				continue
			}
			found := true
			switch ts := rp.Timestamp; {
			case ts == listLatest:
				op.Offset = p.HighWatermark()
			case ts == listEarliest || ts == listEarliestLocal:
				op.Offset = p.LogStartOffset()
			case ts == listMaxTimestamp:
				op.Timestamp, op.Offset, found = p.MaxTimestamp()
			case ts < 0:
				found = false
				if ts != listLatestTiered {
					op.ErrorCode = kerr.InvalidRequest.Code
				}
			default:
				off, t, ok, err := p.OffsetForTimestamp(ts)
				if err != nil {
					op.ErrorCode = s.errCode(err)
				}
				op.Offset, op.Timestamp, found = off, t, ok
			}
			if !found {
				op.Offset, op.Timestamp = -1, -1
			}
			if op.ErrorCode == 0 && op.Offset >= 0 {
				if rp.Timestamp == listLatest {
					op.LeaderEpoch = p.EpochForOffset(op.Offset - 1)
				} else {
					op.LeaderEpoch = p.EpochForOffset(op.Offset)
				}
			}
			if req.Version == 0 {
				if op.Offset >= 0 && rp.MaxNumOffsets > 0 {
					op.OldStyleOffsets = []int64{op.Offset}
				} else {
					op.OldStyleOffsets = []int64{}
				}
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp, nil
}
