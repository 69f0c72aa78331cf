package protocol

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/partition"
)

// brokerConfig is one read-only broker setting reported by DescribeConfigs.
type brokerConfig struct {
	name, value, typ, doc string
}

// brokerConfigs are this node's settings as Kafka names them.
func (s *Server) brokerConfigs() []brokerConfig {
	d := partition.DefaultConfig()
	return []brokerConfig{
		{"auto.create.topics.enable", strconv.FormatBool(s.cfg.AutoCreateTopics), "BOOLEAN", "Metadata creates unknown topics."},
		{"broker.id", strconv.Itoa(int(s.cfg.NodeID)), "INT", "This node's ID."},
		{"log.retention.bytes", strconv.FormatInt(d.RetentionBytes, 10), "LONG", "Default retention.bytes."},
		{"log.retention.ms", strconv.FormatInt(d.RetentionMs, 10), "LONG", "Default retention.ms."},
		{"log.segment.bytes", strconv.Itoa(int(d.SegmentBytes)), "INT", "Default segment.bytes."},
		{"message.max.bytes", strconv.Itoa(int(d.MaxMessageBytes)), "INT", "Default max.message.bytes."},
		{"num.partitions", strconv.Itoa(int(s.cfg.DefaultPartitions)), "INT", "Partitions of topics created without a count."},
		{"socket.request.max.bytes", strconv.Itoa(int(s.cfg.MaxRequestBytes)), "INT", "Largest request frame."},
	}
}

// configTypeCode maps Kafka config type names to DescribeConfigs v3+ codes.
func configTypeCode(typ string) int8 {
	switch typ {
	case "BOOLEAN":
		return int8(kmsg.ConfigTypeBoolean)
	case "STRING":
		return int8(kmsg.ConfigTypeString)
	case "INT":
		return int8(kmsg.ConfigTypeInt)
	case "SHORT":
		return int8(kmsg.ConfigTypeShort)
	case "LONG":
		return int8(kmsg.ConfigTypeLong)
	case "DOUBLE":
		return int8(kmsg.ConfigTypeDouble)
	case "LIST":
		return int8(kmsg.ConfigTypeList)
	case "CLASS":
		return int8(kmsg.ConfigTypeClass)
	case "PASSWORD":
		return int8(kmsg.ConfigTypePassword)
	}
	return int8(kmsg.ConfigTypeUnknown)
}
