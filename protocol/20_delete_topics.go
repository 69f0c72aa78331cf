package protocol

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// DeleteTopics: v0-6.
//   - v6 names topics by name or ID; an unknown ID gets UNKNOWN_TOPIC_ID.
//   - Internal topics (__consumer_offsets) cannot be deleted: INVALID_TOPIC_EXCEPTION.
//   - The response is sent once this node has closed the topic's partitions (or the
//     timeout passes); their data is removed from disk.
func init() { register(kmsg.DeleteTopics, 0, 6, (*Server).deleteTopics) }

func (s *Server) deleteTopics(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)

	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if req.Version >= 6 {
		for _, t := range req.Topics {
			targets = append(targets, target{name: t.Topic, id: t.TopicID})
		}
	} else {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: kmsg.StringPtr(n)})
		}
	}
	var deleted []*replication.Topic
	for _, tg := range targets {
		ot := kmsg.NewDeleteTopicsResponseTopic()
		st := s.ctrl.State()
		var t *replication.Topic
		if tg.name != nil {
			ot.Topic = tg.name
			t = st.Topics[*tg.name]
		} else {
			ot.TopicID = tg.id
			for _, cand := range st.Topics {
				if cand.ID == tg.id {
					t = cand
				}
			}
		}
		switch {
		case t == nil && tg.name == nil:
			ot.ErrorCode = kerr.UnknownTopicID.Code
		case t == nil:
			ot.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case t.Internal:
			ot.ErrorCode = kerr.InvalidTopicException.Code
			if req.Version >= 5 {
				ot.ErrorMessage = kmsg.StringPtr("internal topics cannot be deleted")
			}
		default:
			ot.Topic = kmsg.StringPtr(t.Name)
			ot.TopicID = t.ID
			if err := s.ctrl.DeleteTopic(r.Ctx, t.Name); err != nil {
				ot.ErrorCode = s.errCode(err)
				if req.Version >= 5 {
					ot.ErrorMessage = errMessage(err)
				}
				break
			}
			r.Log.Info("deleted topic", zap.String("topic", t.Name), zap.String("client_id", r.ClientID))
			deleted = append(deleted, t)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	if len(deleted) > 0 {
		ctx := r.Ctx
		if req.TimeoutMillis > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
			defer cancel()
		}
		s.waitTopicsGone(ctx, deleted)
	}
	return resp, nil
}

// waitApplied waits until this node's partitions reflect controller state version v
// (opened, closed, their data removed), or the timeout.
func (s *Server) waitApplied(ctx context.Context, v uint64) {
	s.pollUntil(ctx, func() bool { return s.parts.AppliedVersion() >= v })
}

// waitTopicsGone waits until no partition of the given topics is registered here and
// this node has removed their data, within one topicReadyTimeout.
func (s *Server) waitTopicsGone(ctx context.Context, topics []*replication.Topic) {
	ctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	v := s.ctrl.State().Version
	s.pollUntil(ctx, func() bool {
		for _, t := range topics {
			for _, pa := range t.Partitions {
				if s.repl.Leadership(partition.Key(t.ID, pa.Partition)).Local {
					return false
				}
			}
		}
		return true
	})
	s.waitApplied(ctx, v)
}
