package protocol

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup: v0-5.
//   - Followers wait for the leader's assignment, which is answered once durable. A server
//     shutting down answers waiting syncs NOT_COORDINATOR.
func init() { register(kmsg.SyncGroup, 0, 5, (*Server).syncGroup) }

func (s *Server) syncGroup(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.SyncGroupRequest)
	ctx, stop := s.untilDraining(r.Ctx)
	defer stop()
	resp := s.groups().SyncGroup(ctx, req)
	if resp == nil {
		if err := r.Ctx.Err(); err != nil {
			return nil, err // the connection closed while waiting
		}
		resp = req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.NotCoordinator.Code
	}
	return resp, nil
}
