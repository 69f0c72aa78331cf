package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetFetch: v0-9.
//   - An unknown group or partition gives offset -1 and no error.
//   - v8+ fetches several groups; v9's member ID and epoch (for the new consumer protocol)
//     are not checked.
//   - RequireStable (v7) has nothing to wait for: there are no transactional commits.
func init() { register(kmsg.OffsetFetch, 0, 9, (*Server).offsetFetch) }

func (s *Server) offsetFetch(r *Request) (kmsg.Response, error) {
	return s.groups().OffsetFetch(r.Ctx, r.Body.(*kmsg.OffsetFetchRequest)), nil
}
