package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// DeleteTopics: v0-6.
//   - v6 names topics by name or ID; an unknown ID gets UNKNOWN_TOPIC_ID.
//   - Internal topics (__consumer_offsets) cannot be deleted: INVALID_TOPIC_EXCEPTION.
//   - The response is sent once this node has closed the topic's partitions and removed
//     their data, or after the request's TimeoutMillis (at most maxAdminWait): a topic
//     deleted but not gone then gets REQUEST_TIMED_OUT, as in Kafka (its deletion goes on).
//     TimeoutMillis <= 0 does not wait: every topic deleted gets REQUEST_TIMED_OUT at once.
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
		notGone := s.waitDeleted(r.Ctx, req.TimeoutMillis, deleted)
		for i := range resp.Topics {
			ot := &resp.Topics[i]
			if ot.ErrorCode == 0 && notGone[ot.TopicID] {
				ot.ErrorCode = kerr.RequestTimedOut.Code
				if req.Version >= 5 {
					ot.ErrorMessage = errMessage(errTimedOut(req.TimeoutMillis, "topic deleted", "its partitions and data to be removed", "its partitions and data were not removed"))
				}
			}
		}
	}
	return resp, nil
}

// waitDeleted waits until the given topics (just deleted) are gone from this node, and
// returns the IDs of those that are not.
func (s *Server) waitDeleted(ctx context.Context, timeoutMillis int32, topics []*replication.Topic) map[[16]byte]bool {
	v := s.ctrl.State().Version
	return waitEach(s, ctx, adminWait(timeoutMillis), topics, func(t *replication.Topic) [16]byte { return t.ID },
		func(ts []*replication.Topic) bool { return s.topicsGone(ts, v) })
}

// topicsGone reports whether no partition of the given topics is registered here and this
// node's partitions reflect controller state version v (the one without them): closed,
// their data removed.
func (s *Server) topicsGone(topics []*replication.Topic, v uint64) bool {
	if s.parts.AppliedVersion() < v {
		return false
	}
	for _, t := range topics {
		for _, pa := range t.Partitions {
			if s.repl.Leadership(partition.Key(t.ID, pa.Partition)).Local {
				return false
			}
		}
	}
	return true
}
