package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// SyncGroup: v0-5.
//   - Followers wait for the leader's assignment, which is answered once durable.
func init() { register(kmsg.SyncGroup, 0, 5, (*Server).syncGroup) }

func (s *Server) syncGroup(r *Request) (kmsg.Response, error) {
	resp := s.groups().SyncGroup(r.Ctx, r.Body.(*kmsg.SyncGroupRequest))
	if resp == nil {
		return nil, r.Ctx.Err() // the connection closed while waiting
	}
	return resp, nil
}
