package protocol

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/partition"
)

// IncrementalAlterConfigs: v0-1.
//   - Topics only: SET and DELETE on any topic config; APPEND and SUBTRACT on the list
//     config cleanup.policy. Broker resources get INVALID_REQUEST.
func init() { register(kmsg.IncrementalAlterConfigs, 0, 1, (*Server).incrementalAlterConfigs) }

func (s *Server) incrementalAlterConfigs(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		or := kmsg.NewIncrementalAlterConfigsResponseResource()
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
			current := func(name string) string {
				if v, ok := set[name]; ok {
					if v == nil {
						return ""
					}
					return *v
				}
				if v, ok := t.Configs[name]; ok {
					return v
				}
				if d, ok := partition.LookupConfigDefault(name); ok {
					return d.Default
				}
				return ""
			}
			var bad error
			for _, c := range rr.Configs {
				if _, known := partition.LookupConfigDefault(c.Name); !known {
					bad = fmt.Errorf("unknown config %q", c.Name)
					break
				}
				value := ""
				if c.Value != nil {
					value = *c.Value
				}
				switch c.Op {
				case kmsg.IncrementalAlterConfigOpSet:
					set[c.Name] = kmsg.StringPtr(value)
				case kmsg.IncrementalAlterConfigOpDelete:
					set[c.Name] = nil
				case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
					if c.Name != partition.ConfigCleanupPolicy {
						bad = fmt.Errorf("config %q is not a list", c.Name)
						break
					}
					list := splitList(current(c.Name))
					for _, v := range splitList(value) {
						has := slices.Contains(list, v)
						if c.Op == kmsg.IncrementalAlterConfigOpAppend && !has {
							list = append(list, v)
						}
						if c.Op == kmsg.IncrementalAlterConfigOpSubtract && has {
							list = slices.DeleteFunc(list, func(x string) bool { return x == v })
						}
					}
					set[c.Name] = kmsg.StringPtr(strings.Join(list, ","))
				default:
					bad = fmt.Errorf("unknown operation %d", c.Op)
				}
				if bad != nil {
					break
				}
				if v := set[c.Name]; v != nil {
					if err := partition.ValidateConfig(c.Name, *v); err != nil {
						bad = err
						break
					}
				}
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
			r.Log.Info("altered topic configs", zap.String("topic", rr.ResourceName), zap.String("client_id", r.ClientID))
		}
		resp.Resources = append(resp.Resources, or)
	}
	return resp, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
