package protocol

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/replication"
)

// CreatePartitions: v0-3.
//   - Count must exceed the current count and not Config.MaxPartitions
//     (INVALID_PARTITIONS); manual assignments get
//     INVALID_REPLICA_ASSIGNMENT.
//   - The response is sent once the new partitions are open and led, or after the
//     request's TimeoutMillis (at most maxAdminWait): a topic grown but not ready then
//     gets REQUEST_TIMED_OUT, as in Kafka; TimeoutMillis <= 0 does not wait and answers
//     REQUEST_TIMED_OUT for every topic grown.
func init() { register(kmsg.CreatePartitions, 0, 3, (*Server).createPartitions) }

func (s *Server) createPartitions(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	count := make(map[string]int, len(req.Topics))
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	var grown []string
	for _, rt := range req.Topics {
		ot := kmsg.NewCreatePartitionsResponseTopic()
		ot.Topic = rt.Topic
		fail := func(code int16, err error) {
			ot.ErrorCode = code
			ot.ErrorMessage = errMessage(err)
		}
		t, ok := s.ctrl.State().Topics[rt.Topic]
		switch {
		case count[rt.Topic] > 1:
			fail(kerr.InvalidRequest.Code, errors.New("topic named more than once"))
		case !ok:
			fail(kerr.UnknownTopicOrPartition.Code, nil)
		case len(rt.Assignment) > 0:
			fail(kerr.InvalidReplicaAssignment.Code, errors.New("manual replica assignment is not supported"))
		case rt.Count > s.cfg.MaxPartitions:
			fail(kerr.InvalidPartitions.Code, fmt.Errorf("%d partitions; at most %d", rt.Count, s.cfg.MaxPartitions))
		case rt.Count <= int32(len(t.Partitions)):
			fail(kerr.InvalidPartitions.Code, fmt.Errorf("topic has %d partitions; %d would not add any", len(t.Partitions), rt.Count))
		case req.ValidateOnly:
		default:
			if err := s.ctrl.CreatePartitions(r.Ctx, rt.Topic, rt.Count); err != nil {
				code := s.errCode(err)
				if errors.Is(err, replication.ErrInvalid) {
					code = kerr.InvalidPartitions.Code
				}
				fail(code, err)
				break
			}
			r.Log.Info("added partitions", zap.String("topic", rt.Topic), zap.Int32("count", rt.Count),
				zap.String("client_id", r.ClientID))
			grown = append(grown, rt.Topic)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	if len(grown) > 0 {
		notReady := s.waitCreated(r.Ctx, req.TimeoutMillis, grown)
		for i := range resp.Topics {
			ot := &resp.Topics[i]
			if ot.ErrorCode == 0 && notReady[ot.Topic] {
				ot.ErrorCode = kerr.RequestTimedOut.Code
				ot.ErrorMessage = errMessage(errTimedOut(req.TimeoutMillis, "partitions added", "its new partitions to be ready", "its new partitions were not ready"))
			}
		}
	}
	return resp, nil
}
