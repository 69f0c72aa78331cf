package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// LeaveGroup: v0-5.
//   - v3+ removes several members, each by member ID or group.instance.id.
func init() { register(kmsg.LeaveGroup, 0, 5, (*Server).leaveGroup) }

func (s *Server) leaveGroup(r *Request) (kmsg.Response, error) {
	return s.groups().LeaveGroup(r.Ctx, r.Body.(*kmsg.LeaveGroupRequest)), nil
}
