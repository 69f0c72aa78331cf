package protocol

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/partition"
)

// DescribeConfigs: v0-4.
//   - Topics: every config of partition.ConfigDefaults (or those asked for), with source
//     DYNAMIC_TOPIC_CONFIG when set on the topic, DEFAULT_CONFIG otherwise.
//   - Brokers (this node's ID, or empty): a few read-only settings, STATIC_BROKER_CONFIG.
//   - Other resource types get INVALID_REQUEST. Synonyms are not reported.
func init() { register(kmsg.DescribeConfigs, 0, 4, (*Server).describeConfigs) }

func (s *Server) describeConfigs(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		or := kmsg.NewDescribeConfigsResponseResource()
		or.ResourceType, or.ResourceName = rr.ResourceType, rr.ResourceName
		wanted := func(name string) bool {
			if rr.ConfigNames == nil {
				return true
			}
			for _, n := range rr.ConfigNames {
				if n == name {
					return true
				}
			}
			return false
		}
		add := func(name, value string, source kmsg.ConfigSource, readOnly bool, typ, doc string) {
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name = name
			c.Value = kmsg.StringPtr(value)
			c.ReadOnly = readOnly
			c.IsDefault = source == kmsg.ConfigSourceDefaultConfig
			c.Source = source
			if req.Version >= 3 {
				c.ConfigType = kmsg.ConfigType(configTypeCode(typ))
				if req.IncludeDocumentation {
					c.Documentation = kmsg.StringPtr(doc)
				}
			}
			or.Configs = append(or.Configs, c)
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t, ok := s.ctrl.State().Topics[rr.ResourceName]
			if !ok {
				or.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			for _, d := range partition.ConfigDefaults {
				if !wanted(d.Name) {
					continue
				}
				if v, set := t.Configs[d.Name]; set {
					add(d.Name, v, kmsg.ConfigSourceDynamicTopicConfig, false, d.Type, d.Doc)
				} else {
					add(d.Name, d.Default, kmsg.ConfigSourceDefaultConfig, false, d.Type, d.Doc)
				}
			}
		case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(s.cfg.NodeID)) {
				or.ErrorCode = kerr.InvalidRequest.Code
				or.ErrorMessage = kmsg.StringPtr("unknown broker " + rr.ResourceName)
				break
			}
			if rr.ResourceType == kmsg.ConfigResourceTypeBrokerLogger {
				break
			}
			for _, b := range s.brokerConfigs() {
				if wanted(b.name) {
					add(b.name, b.value, kmsg.ConfigSourceStaticBrokerConfig, true, b.typ, b.doc)
				}
			}
		default:
			or.ErrorCode = kerr.InvalidRequest.Code
			or.ErrorMessage = kmsg.StringPtr("unsupported resource type")
		}
		resp.Resources = append(resp.Resources, or)
	}
	return resp, nil
}
