package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/replication"
)

// FindCoordinator: v0-4.
//   - Groups only: the coordinator is the leader of __consumer_offsets partition
//     abs(hashCode(group)) % partitions. Transaction coordinators (type 1) get
//     COORDINATOR_NOT_AVAILABLE: there are no transactions yet.
//   - v4 batches several keys (KIP-699).
//   - A coordinator on another node is asked whether its process is there, as Metadata's
//     leaders are (probeLeaders); one found gone is not named.
func init() { register(kmsg.FindCoordinator, 0, 4, (*Server).findCoordinator) }

func (s *Server) findCoordinator(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	if req.Version < 4 {
		c := s.coordinatorFor(r.Ctx, req.CoordinatorType, req.CoordinatorKey)
		resp.ErrorCode, resp.ErrorMessage = c.ErrorCode, c.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = c.NodeID, c.Host, c.Port
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		resp.Coordinators = append(resp.Coordinators, s.coordinatorFor(r.Ctx, req.CoordinatorType, key))
	}
	return resp, nil
}

func (s *Server) coordinatorFor(ctx context.Context, keyType int8, key string) kmsg.FindCoordinatorResponseCoordinator {
	c := kmsg.NewFindCoordinatorResponseCoordinator()
	c.Key = key
	c.NodeID, c.Port = -1, -1
	fail := func(err *kerr.Error) kmsg.FindCoordinatorResponseCoordinator {
		c.ErrorCode = err.Code
		c.ErrorMessage = kmsg.StringPtr(err.Message)
		return c
	}
	switch keyType {
	case 0:
	case 1:
		return fail(kerr.CoordinatorNotAvailable)
	default:
		return fail(kerr.InvalidRequest)
	}
	if key == "" {
		return fail(kerr.InvalidGroupID)
	}
	node, code := s.groups().FindCoordinator(key)
	if prober, ok := s.repl.(nodeProber); ok && code == 0 && len(prober.ProbeNodes(ctx, []replication.NodeID{replication.NodeID(node)})) > 0 {
		node, code = s.groups().FindCoordinator(key)
	}
	if code != 0 {
		return fail(kerr.ErrorForCode(code).(*kerr.Error))
	}
	for _, n := range s.ctrl.State().Nodes {
		if int32(n.ID) == node {
			c.NodeID = node
			c.Host, c.Port = splitHostPort(n.KafkaAddr)
			return c
		}
	}
	return fail(kerr.CoordinatorNotAvailable)
}
