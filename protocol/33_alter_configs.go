package protocol

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
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
		or.ErrorCode, or.ErrorMessage = s.alterTopicConfigs(r, rr.ResourceType, rr.ResourceName, req.ValidateOnly,
			"replaced topic configs", func(t *replication.Topic) (map[string]*string, error) {
				set := make(map[string]*string)
				for name := range t.Configs {
					set[name] = nil
				}
				for _, c := range rr.Configs {
					if c.Value == nil {
						set[c.Name] = nil
						continue
					}
					if err := partition.ValidateConfig(c.Name, *c.Value); err != nil {
						return nil, err
					}
					set[c.Name] = c.Value
				}
				return set, nil
			})
		resp.Resources = append(resp.Resources, or)
	}
	return resp, nil
}

// alterTopicConfigs checks and applies one resource of AlterConfigs or
// IncrementalAlterConfigs: only topics can be altered (INVALID_REQUEST otherwise);
// changes computes the configs to set (nil: remove) from the topic, an error from it is
// INVALID_CONFIG; validateOnly stops before anything changes. It returns the resource's
// error code and message.
func (s *Server) alterTopicConfigs(r *Request, typ kmsg.ConfigResourceType, name string, validateOnly bool, done string,
	changes func(t *replication.Topic) (map[string]*string, error)) (int16, *string) {
	t, ok := s.ctrl.State().Topics[name]
	switch {
	case typ != kmsg.ConfigResourceTypeTopic:
		return kerr.InvalidRequest.Code, errMessage(errors.New("only topic configs can be altered"))
	case !ok:
		return kerr.UnknownTopicOrPartition.Code, nil
	}
	set, err := changes(t)
	if err != nil {
		return kerr.InvalidConfig.Code, errMessage(err)
	}
	if validateOnly {
		return 0, nil
	}
	if err := s.ctrl.AlterConfigs(r.Ctx, name, set); err != nil {
		return s.errCode(err), errMessage(err)
	}
	r.Log.Info(done, zap.String("topic", name), zap.String("client_id", r.ClientID))
	return 0, nil
}
