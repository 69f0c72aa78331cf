package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// ListGroups: v0-4.
//   - The groups this node coordinates; v4 filters by state.
func init() { register(kmsg.ListGroups, 0, 4, (*Server).listGroups) }

func (s *Server) listGroups(r *Request) (kmsg.Response, error) {
	return s.groups().ListGroups(r.Ctx, r.Body.(*kmsg.ListGroupsRequest)), nil
}
