package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeGroups: v0-5.
//   - An unknown group is described as Dead with no error, as Kafka does.
//   - Authorized operations (v3+) are all group operations: there are no ACLs.
func init() { register(kmsg.DescribeGroups, 0, 5, (*Server).describeGroups) }

func (s *Server) describeGroups(r *Request) (kmsg.Response, error) {
	return s.groups().DescribeGroups(r.Ctx, r.Body.(*kmsg.DescribeGroupsRequest)), nil
}
