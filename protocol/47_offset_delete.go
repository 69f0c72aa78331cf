package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetDelete: v0.
//   - GROUP_SUBSCRIBED_TO_TOPIC for partitions of topics the group's members consume;
//     NON_EMPTY_GROUP for a non-empty group whose subscriptions cannot be read (protocol
//     types other than "consumer").
func init() { register(kmsg.OffsetDelete, 0, 0, (*Server).offsetDelete) }

func (s *Server) offsetDelete(r *Request) (kmsg.Response, error) {
	return s.groups().OffsetDelete(r.Ctx, r.Body.(*kmsg.OffsetDeleteRequest)), nil
}
