package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// Heartbeat: v0-4.
func init() { register(kmsg.Heartbeat, 0, 4, (*Server).heartbeat) }

func (s *Server) heartbeat(r *Request) (kmsg.Response, error) {
	return s.groups().Heartbeat(r.Ctx, r.Body.(*kmsg.HeartbeatRequest)), nil
}
