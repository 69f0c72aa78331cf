package protocol

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// CreateTopics: v0-7.
//   - NumPartitions and ReplicationFactor -1 take the server defaults; manual replica
//     assignments get INVALID_REPLICA_ASSIGNMENT.
//   - Configs are those of partition.ConfigDefaults; others get INVALID_CONFIG.
//   - A topic named twice in one request gets INVALID_REQUEST; more than
//     Config.MaxPartitions partitions INVALID_PARTITIONS.
//   - The response is sent once the new partitions are open and led, or after the
//     request's TimeoutMillis (at most maxAdminWait): a topic created but not ready then
//     gets REQUEST_TIMED_OUT, as in Kafka. TimeoutMillis <= 0 does not wait: every topic
//     created gets REQUEST_TIMED_OUT at once (librdkafka hides it for that case).
//   - v5+ returns the topic's partitions, replication factor and configs; v7 its ID.
func init() { register(kmsg.CreateTopics, 0, 7, (*Server).createTopics) }

func (s *Server) createTopics(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)

	count := make(map[string]int, len(req.Topics))
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	var created []string
	for _, rt := range req.Topics {
		ot := kmsg.NewCreateTopicsResponseTopic()
		ot.Topic = rt.Topic
		ot.NumPartitions, ot.ReplicationFactor = -1, -1
		fail := func(code int16, err error) {
			ot.ErrorCode = code
			if req.Version >= 1 && err != nil {
				ot.ErrorMessage = errMessage(err)
			}
		}
		nparts := rt.NumPartitions
		if nparts == -1 {
			nparts = s.cfg.DefaultPartitions
		}
		configs := make(map[string]string, len(rt.Configs))
		var cfgErr error
		for _, c := range rt.Configs {
			if c.Value == nil {
				cfgErr = fmt.Errorf("config %q has no value", c.Name)
				break
			}
			if err := partition.ValidateConfig(c.Name, *c.Value); err != nil {
				cfgErr = err
				break
			}
			configs[c.Name] = *c.Value
		}
		switch {
		case count[rt.Topic] > 1:
			fail(kerr.InvalidRequest.Code, errors.New("topic named more than once"))
		case validTopicName(rt.Topic) != nil:
			fail(kerr.InvalidTopicException.Code, validTopicName(rt.Topic))
		case nparts <= 0 || nparts > s.cfg.MaxPartitions:
			fail(kerr.InvalidPartitions.Code, fmt.Errorf("%d partitions (1 to %d)", nparts, s.cfg.MaxPartitions))
		case rt.ReplicationFactor == 0 || rt.ReplicationFactor < -1:
			fail(kerr.InvalidReplicationFactor.Code, fmt.Errorf("replication factor %d", rt.ReplicationFactor))
		case len(rt.ReplicaAssignment) > 0:
			fail(kerr.InvalidReplicaAssignment.Code, errors.New("manual replica assignment is not supported"))
		case cfgErr != nil:
			fail(kerr.InvalidConfig.Code, cfgErr)
		default:
			if _, exists := s.ctrl.State().Topics[rt.Topic]; exists {
				fail(kerr.TopicAlreadyExists.Code, fmt.Errorf("topic %q already exists", rt.Topic))
				break
			}
			if req.ValidateOnly {
				ot.NumPartitions, ot.ReplicationFactor = nparts, rt.ReplicationFactor
				break
			}
			t, err := s.ctrl.CreateTopic(r.Ctx, replication.TopicSpec{
				Name: rt.Topic, Partitions: nparts, ReplicationFactor: rt.ReplicationFactor, Configs: configs,
			})
			if err != nil {
				fail(s.errCode(err), err)
				break
			}
			r.Log.Info("created topic", zap.String("topic", rt.Topic), zap.Int32("partitions", nparts),
				zap.Any("configs", configs), zap.String("client_id", r.ClientID))
			created = append(created, rt.Topic)
			ot.TopicID = t.ID
			ot.NumPartitions = int32(len(t.Partitions))
			ot.ReplicationFactor = int16(len(t.Partitions[0].Replicas))
			ot.Configs = topicConfigEntries(t.Configs)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	if len(created) > 0 {
		notReady := s.waitCreated(r.Ctx, req.TimeoutMillis, created)
		for i := range resp.Topics {
			ot := &resp.Topics[i]
			if ot.ErrorCode != 0 || !notReady[ot.Topic] {
				continue
			}
			// As Kafka: the error, the topic ID, and none of what describes a topic
			// created and ready.
			ot.ErrorCode = kerr.RequestTimedOut.Code
			if req.Version >= 1 {
				ot.ErrorMessage = errMessage(errTimedOut(req.TimeoutMillis, "topic created", "its new partitions to be ready", "its new partitions were not ready"))
			}
			ot.NumPartitions, ot.ReplicationFactor, ot.Configs = -1, -1, nil
		}
	}
	return resp, nil
}

// topicConfigEntries lists every topic config with its value for CreateTopics v5+.
func topicConfigEntries(set map[string]string) []kmsg.CreateTopicsResponseTopicConfig {
	out := make([]kmsg.CreateTopicsResponseTopicConfig, 0, len(partition.ConfigDefaults))
	for _, d := range partition.ConfigDefaults {
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name = d.Name
		v, ok := set[d.Name]
		if ok {
			c.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
		} else {
			v = d.Default
			c.Source = int8(kmsg.ConfigSourceDefaultConfig)
		}
		c.Value = kmsg.StringPtr(v)
		out = append(out, c)
	}
	return out
}
