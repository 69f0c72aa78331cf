package protocol

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeCluster: v0-1.
//   - The live nodes, the cluster ID and the controller. v1 EndpointType 1 (brokers) only;
//     2 (controllers) gets UNSUPPORTED_ENDPOINT_TYPE.
func init() { register(kmsg.DescribeCluster, 0, 1, (*Server).describeCluster) }

func (s *Server) describeCluster(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	if req.Version >= 1 {
		resp.EndpointType = req.EndpointType
		if req.EndpointType != 1 {
			resp.ErrorCode = kerr.UnsupportedEndpointType.Code
			return resp, nil
		}
	}
	st := s.ctrl.State()
	resp.ClusterID = st.ClusterID
	resp.ControllerID = int32(st.ControllerID)
	for _, n := range st.Nodes {
		if !n.Alive {
			continue
		}
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID = int32(n.ID)
		b.Host, b.Port = splitHostPort(n.KafkaAddr)
		resp.Brokers = append(resp.Brokers, b)
	}
	return resp, nil
}
