package partition

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Topic config names this server understands. Each may be set per topic; unset ones take
// the defaults in ConfigDefaults.
const (
	ConfigRetentionMs          = "retention.ms"
	ConfigRetentionBytes       = "retention.bytes"
	ConfigSegmentBytes         = "segment.bytes"
	ConfigSegmentMs            = "segment.ms"
	ConfigMaxMessageBytes      = "max.message.bytes"
	ConfigCleanupPolicy        = "cleanup.policy"
	ConfigMessageTimestampType = "message.timestamp.type"
)

// ConfigDefault describes one topic config.
type ConfigDefault struct {
	Name    string
	Default string
	Doc     string
	// Type is Kafka's config type name, for DescribeConfigs v3+.
	Type string
}

// ConfigDefaults lists every topic config with its default, in name order.
var ConfigDefaults = []ConfigDefault{
	{ConfigCleanupPolicy, "delete", "Stored and reported; compaction is not implemented.", "LIST"},
	{ConfigMaxMessageBytes, "1048588", "Largest record batch a producer may write.", "INT"},
	{ConfigMessageTimestampType, "CreateTime", "CreateTime keeps producer timestamps; LogAppendTime has the broker set them.", "STRING"},
	{ConfigRetentionBytes, "-1", "Delete old segments while the partition is larger; -1: no limit.", "LONG"},
	{ConfigRetentionMs, "604800000", "Delete segments whose newest record is older; -1: forever.", "LONG"},
	{ConfigSegmentBytes, "1073741824", "Roll to a new segment at this size.", "INT"},
	{ConfigSegmentMs, "604800000", "Roll to a new segment after this long.", "LONG"},
}

// LookupConfigDefault returns the description of a config name.
func LookupConfigDefault(name string) (ConfigDefault, bool) {
	i := sort.Search(len(ConfigDefaults), func(i int) bool { return ConfigDefaults[i].Name >= name })
	if i < len(ConfigDefaults) && ConfigDefaults[i].Name == name {
		return ConfigDefaults[i], true
	}
	return ConfigDefault{}, false
}

// ErrInvalidConfig is returned by ParseConfig for an unknown name or a bad value.
var ErrInvalidConfig = errors.New("partition: invalid config")

// Config is a partition's parsed topic configs.
type Config struct {
	RetentionMs     int64 // -1: forever
	RetentionBytes  int64 // -1: no limit
	SegmentBytes    int32
	SegmentMs       int64
	MaxMessageBytes int32
	CleanupPolicy   string
	LogAppendTime   bool
}

// Retention returns RetentionMs as a duration; 0 means forever.
func (c Config) Retention() time.Duration {
	if c.RetentionMs < 0 {
		return 0
	}
	return time.Duration(c.RetentionMs) * time.Millisecond
}

// DefaultConfig is the config of a topic with nothing set.
func DefaultConfig() Config {
	c, err := ParseConfig(nil)
	if err != nil {
		panic(err)
	}
	return c
}

// ParseConfig parses a topic's explicitly set configs over the defaults.
func ParseConfig(set map[string]string) (Config, error) {
	var c Config
	for _, d := range ConfigDefaults {
		v, ok := set[d.Name]
		if !ok {
			v = d.Default
		}
		if err := c.set(d.Name, v); err != nil {
			return Config{}, err
		}
	}
	for name := range set {
		if _, ok := LookupConfigDefault(name); !ok {
			return Config{}, fmt.Errorf("%w: unknown config %q", ErrInvalidConfig, name)
		}
	}
	return c, nil
}

// ValidateConfig checks one name and value.
func ValidateConfig(name, value string) error {
	if _, ok := LookupConfigDefault(name); !ok {
		return fmt.Errorf("%w: unknown config %q", ErrInvalidConfig, name)
	}
	var c Config
	return c.set(name, value)
}

func (c *Config) set(name, v string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s=%q: %s", ErrInvalidConfig, name, v, why)
	}
	parse := func(min int64) (int64, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, bad("not an integer")
		}
		if n < min {
			return 0, bad(fmt.Sprintf("below %d", min))
		}
		return n, nil
	}
	var err error
	var n int64
	switch name {
	case ConfigRetentionMs:
		c.RetentionMs, err = parse(-1)
	case ConfigRetentionBytes:
		c.RetentionBytes, err = parse(-1)
	case ConfigSegmentBytes:
		if n, err = parse(14); err == nil {
			if n > maxInt32 {
				return bad("above 2147483647")
			}
			c.SegmentBytes = int32(n)
		}
	case ConfigSegmentMs:
		c.SegmentMs, err = parse(1)
	case ConfigMaxMessageBytes:
		if n, err = parse(0); err == nil {
			if n > maxInt32 {
				return bad("above 2147483647")
			}
			c.MaxMessageBytes = int32(n)
		}
	case ConfigCleanupPolicy:
		switch v {
		case "delete", "compact", "compact,delete", "delete,compact":
			c.CleanupPolicy = v
		default:
			return bad("want delete, compact or both")
		}
	case ConfigMessageTimestampType:
		switch v {
		case "CreateTime":
			c.LogAppendTime = false
		case "LogAppendTime":
			c.LogAppendTime = true
		default:
			return bad("want CreateTime or LogAppendTime")
		}
	default:
		return fmt.Errorf("%w: unknown config %q", ErrInvalidConfig, name)
	}
	return err
}
