package group

import "time"

// Config configures a Coordinator. The zero value of a field means its default.
type Config struct {
	// NodeID is this node's broker ID, used in FindCoordinator answers.
	NodeID int32
	// Partitions is the number of partitions of __consumer_offsets
	// (offsets.topic.num.partitions). It must match the topic; default 50.
	Partitions int32
	// OffsetsRetention is how long the offsets of a group that has no members are kept
	// after it became empty (or, for groups that never had members, after the commit):
	// offsets.retention.minutes, default 7 days.
	OffsetsRetention time.Duration
	// OffsetsRetentionCheck is how often expired offsets are looked for
	// (offsets.retention.check.interval.ms); default 10 minutes.
	OffsetsRetentionCheck time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound a member's session timeout
	// (group.min/max.session.timeout.ms); defaults 6 s and 30 min.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is how long the first rebalance of an empty group waits for more
	// members (group.initial.rebalance.delay.ms), so that consumers started together
	// split the partitions at once instead of the first reading everything; default 3 s
	// as in Kafka, negative for none.
	InitialRebalanceDelay time.Duration
	// MaxMetadataSize caps the metadata string of a committed offset
	// (offset.metadata.max.bytes); default 4096.
	MaxMetadataSize int
	// LeadershipCheck is how often the coordinator asks the Log which partitions this node
	// leads, to load or drop them; default 1 s. Nudge makes it look at once.
	LeadershipCheck time.Duration
	// Clock defaults to the system clock.
	Clock Clock
}

// Defaults of Config.
const (
	DefaultPartitions            = 50
	DefaultOffsetsRetention      = 7 * 24 * time.Hour
	DefaultOffsetsRetentionCheck = 10 * time.Minute
	DefaultMinSessionTimeout     = 6 * time.Second
	DefaultMaxSessionTimeout     = 30 * time.Minute
	DefaultMaxMetadataSize       = 4096
	DefaultInitialRebalanceDelay = 3 * time.Second
	DefaultLeadershipCheck       = time.Second
)

// newMemberJoinTimeout is how long a new member waiting for its first JoinGroup answer is
// kept without heartbeats (Kafka's GroupCoordinator.NewMemberJoinTimeoutMs).
const newMemberJoinTimeout = 5 * time.Minute

func (c Config) withDefaults() Config {
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.OffsetsRetention <= 0 {
		c.OffsetsRetention = DefaultOffsetsRetention
	}
	if c.OffsetsRetentionCheck <= 0 {
		c.OffsetsRetentionCheck = DefaultOffsetsRetentionCheck
	}
	if c.MinSessionTimeout <= 0 {
		c.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	switch {
	case c.InitialRebalanceDelay == 0:
		c.InitialRebalanceDelay = DefaultInitialRebalanceDelay
	case c.InitialRebalanceDelay < 0:
		c.InitialRebalanceDelay = 0
	}
	if c.MaxMetadataSize <= 0 {
		c.MaxMetadataSize = DefaultMaxMetadataSize
	}
	if c.LeadershipCheck <= 0 {
		c.LeadershipCheck = DefaultLeadershipCheck
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	return c
}
