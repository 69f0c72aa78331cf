package protocol

import (
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
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
		or.ErrorCode, or.ErrorMessage = s.alterTopicConfigs(r, rr.ResourceType, rr.ResourceName, req.ValidateOnly,
			"altered topic configs", func(t *replication.Topic) (map[string]*string, error) {
				return incrementalChanges(t, rr.Configs)
			})
		resp.Resources = append(resp.Resources, or)
	}
	return resp, nil
}

// incrementalChanges computes the configs to set (nil: remove) on t from the operations.
func incrementalChanges(t *replication.Topic, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (map[string]*string, error) {
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
	for _, c := range ops {
		if _, known := partition.LookupConfigDefault(c.Name); !known {
			return nil, fmt.Errorf("unknown config %q", c.Name)
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
				return nil, fmt.Errorf("config %q is not a list", c.Name)
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
			return nil, fmt.Errorf("unknown operation %d", c.Op)
		}
		if v := set[c.Name]; v != nil {
			if err := partition.ValidateConfig(c.Name, *v); err != nil {
				return nil, err
			}
		}
	}
	return set, nil
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
