package protocol

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit: v0-9.
//   - Answered once the offsets are durable in __consumer_offsets.
//   - Partitions of topics (or partition numbers) that do not exist get
//     UNKNOWN_TOPIC_OR_PARTITION, as Kafka answers; the others are committed.
//   - Generation -1 without a member ID is a commit from a consumer that assigns itself
//     partitions; it is accepted while the group has no members.
//   - v2-v4 RetentionTimeMillis is ignored: offsets expire per offsets.retention.minutes.
func init() { register(kmsg.OffsetCommit, 0, 9, (*Server).offsetCommit) }

func (s *Server) offsetCommit(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.OffsetCommitRequest)
	st := s.ctrl.State()
	// Commit what names existing partitions; answer the rest here.
	known := *req
	known.Topics = nil
	unknown := make(map[string]map[int32]bool)
	for _, t := range req.Topics {
		topic, ok := st.Topics[t.Topic]
		kt := t
		kt.Partitions = nil
		for _, p := range t.Partitions {
			if !ok || p.Partition < 0 || int(p.Partition) >= len(topic.Partitions) {
				if unknown[t.Topic] == nil {
					unknown[t.Topic] = make(map[int32]bool)
				}
				unknown[t.Topic][p.Partition] = true
				continue
			}
			kt.Partitions = append(kt.Partitions, p)
		}
		if len(kt.Partitions) > 0 {
			known.Topics = append(known.Topics, kt)
		}
	}
	committed := s.groups().OffsetCommit(r.Ctx, &known)
	codes := make(map[string]map[int32]int16)
	for _, t := range committed.Topics {
		for _, p := range t.Partitions {
			if codes[t.Topic] == nil {
				codes[t.Topic] = make(map[int32]int16)
			}
			codes[t.Topic][p.Partition] = p.ErrorCode
		}
	}
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			if unknown[t.Topic][p.Partition] {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				rp.ErrorCode = codes[t.Topic][p.Partition]
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
