package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// DeleteGroups: v0-2.
//   - Only groups without members: NON_EMPTY_GROUP otherwise, GROUP_ID_NOT_FOUND for
//     unknown ones.
func init() { register(kmsg.DeleteGroups, 0, 2, (*Server).deleteGroups) }

func (s *Server) deleteGroups(r *Request) (kmsg.Response, error) {
	return s.groups().DeleteGroups(r.Ctx, r.Body.(*kmsg.DeleteGroupsRequest)), nil
}
