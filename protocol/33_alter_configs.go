package protocol

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/partition"
)

// AlterConfigs: v0-2.
//   - Topics only: the given configs replace every config set on the topic.
//   - Broker resources get INVALID_REQUEST (broker settings are flags).
func init() { register(kmsg.AlterConfigs, 0, 2, (*Server).alterConfigs) }

func (s *Server) alterConfigs(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		or := kmsg.NewAlterConfigsResponseResource()
		or.ResourceType, or.ResourceName = rr.ResourceType, rr.ResourceName
		fail := func(code int16, err error) {
			or.ErrorCode = code
			or.ErrorMessage = errMessage(err)
		}
		t, ok := s.ctrl.State().Topics[rr.ResourceName]
		switch {
		case rr.ResourceType != kmsg.ConfigResourceTypeTopic:
			fail(kerr.InvalidRequest.Code, errors.New("only topic configs can be altered"))
		case !ok:
			fail(kerr.UnknownTopicOrPartition.Code, nil)
		default:
			set := make(map[string]*string)
			for name := range t.Configs {
				set[name] = nil
			}
			var bad error
			for _, c := range rr.Configs {
				if c.Value == nil {
					set[c.Name] = nil
					continue
				}
				if err := partition.ValidateConfig(c.Name, *c.Value); err != nil {
					bad = err
					break
				}
				set[c.Name] = c.Value
			}
			if bad != nil {
				fail(kerr.InvalidConfig.Code, bad)
				break
			}
			if req.ValidateOnly {
				break
			}
			if err := s.ctrl.AlterConfigs(r.Ctx, rr.ResourceName, set); err != nil {
				fail(s.errCode(err), err)
				break
			}
			r.Log.Info("replaced topic configs", zap.String("topic", rr.ResourceName), zap.String("client_id", r.ClientID))
		}
		resp.Resources = append(resp.Resources, or)
	}
	return resp, nil
}
