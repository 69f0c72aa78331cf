package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// JoinGroup: v0-9.
//   - v4+: a new member without an ID first gets MEMBER_ID_REQUIRED and its ID.
//   - v5+: static members (group.instance.id); a static member rejoining with unchanged
//     protocols keeps its assignment without a rebalance.
//   - The request waits for the rebalance to complete; the connection waits with it.
func init() { register(kmsg.JoinGroup, 0, 9, (*Server).joinGroup) }

func (s *Server) joinGroup(r *Request) (kmsg.Response, error) {
	resp := s.groups().JoinGroup(r.Ctx, r.Body.(*kmsg.JoinGroupRequest), r.ClientID, clientHost(r.Remote))
	if resp == nil {
		return nil, r.Ctx.Err() // the connection closed while waiting
	}
	return resp, nil
}
