package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup: v0-9.
//   - v4+: a new member without an ID first gets MEMBER_ID_REQUIRED and its ID.
//   - v5+: static members (group.instance.id); a static member rejoining without changing
//     the group's protocol keeps its assignment without a rebalance.
//   - The request waits for the rebalance to complete; the connection waits with it. A
//     server shutting down answers waiting joins NOT_COORDINATOR.
func init() { register(kmsg.JoinGroup, 0, 9, (*Server).joinGroup) }

func (s *Server) joinGroup(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.JoinGroupRequest)
	ctx, stop := s.untilDraining(r.Ctx)
	defer stop()
	resp := s.groups().JoinGroup(ctx, req, r.ClientID, clientHost(r.Remote))
	if resp == nil {
		if err := r.Ctx.Err(); err != nil {
			return nil, err // the connection closed while waiting
		}
		resp = req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.MemberID = req.MemberID
		resp.ErrorCode = kerr.NotCoordinator.Code
	}
	return resp, nil
}

// untilDraining returns a context that also ends when the server starts shutting down,
// for requests that wait on other clients (JoinGroup, SyncGroup).
func (s *Server) untilDraining(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-s.draining:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
