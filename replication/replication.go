package replication

import (
	"context"
	"errors"
)

// NodeID names a node of the cluster; it is the Kafka broker ID.
type NodeID int32

// Errors that callers branch on. protocol/ turns them into Kafka codes.
var (
	// ErrNotLeader is returned by Replicate on a node that does not lead the entry's group.
	ErrNotLeader = errors.New("replication: not the leader")
	// ErrUnknownKey is returned by Replicate for a key with no registered state machine.
	ErrUnknownKey = errors.New("replication: unknown state machine")
	// ErrOutcomeUnknown is returned when leadership was lost after the entry was submitted:
	// it may or may not have been committed.
	ErrOutcomeUnknown = errors.New("replication: outcome unknown")
	// ErrStorage is returned by Replicate when this node's storage refused the entry: its
	// disk has less free space than the node keeps free, or its Raft log failed a write.
	ErrStorage = errors.New("replication: storage error")
	// ErrTopicExists, ErrUnknownTopic and ErrInvalid are returned by Controller changes.
	ErrTopicExists  = errors.New("replication: topic already exists")
	ErrUnknownTopic = errors.New("replication: unknown topic")
	ErrInvalid      = errors.New("replication: invalid request")
	// ErrNotEnoughNodes is returned when a replication factor exceeds the live nodes.
	ErrNotEnoughNodes = errors.New("replication: not enough nodes")
	// ErrElectionNotNeeded and ErrPreferredLeaderNotAvailable are returned by
	// PreferredElector.ElectPreferred.
	ErrElectionNotNeeded           = errors.New("replication: the preferred leader leads already")
	ErrPreferredLeaderNotAvailable = errors.New("replication: the preferred leader cannot lead now")
)

// StateMachine is the deterministic part of one replicated unit (one partition): every
// replica applies the same committed entries in the same order and ends in the same state.
// partition.Partition implements it; replication never looks inside an entry.
//
// The replicator calls Apply, Commit, Sync, Snapshot and Restore from one goroutine at a
// time per state machine.
type StateMachine interface {
	// Apply applies one entry. index is the entry's position in its group's order (dense
	// per group, not per state machine); term is the leadership term that wrote it (the
	// Kafka leader epoch). The result is handed back to the Replicate call that submitted
	// the entry, on the node that submitted it.
	Apply(index, term uint64, entry []byte) any
	// Commit says that every entry applied up to and including index is durable and may be
	// shown to readers (the high watermark moves). With Raft, entries are applied only once
	// committed, so Commit follows each Apply; the single-node replicator calls it after the
	// fsync that covers the entry.
	Commit(index uint64)
	// Sync makes everything applied so far durable on this node's disk.
	Sync() error
	// Snapshot returns what Restore needs to put the state machine back to the state it is
	// in now. The replicator calls Sync first.
	Snapshot() ([]byte, error)
	// Restore rolls the state machine back to a state returned by Snapshot, or to empty when
	// snap is nil; entries after that point are then applied again.
	Restore(snap []byte) error
}

// LocalFailure is implemented by Apply results that may say the replica could not apply
// the entry for a reason of its own (its disk is full, a write failed) and is as it was
// before the call. ApplyFailed returns that reason, or nil when the entry was applied (or
// refused for a reason every replica shares, such as a bad entry).
//
// A Raft replica must not go on without a committed entry that every other replica
// applies: its group calls Apply again with the same entry, after a pause, until it
// applies or the group stops. The single-node replicator hands the result back to the
// caller, as nothing is committed before Apply.
type LocalFailure interface {
	ApplyFailed() error
}

// ConcurrentSyncer is implemented by state machines whose Sync may run while another
// goroutine calls Apply or Commit: Sync then makes durable at least every entry whose
// Apply returned before Sync began. The single-node replicator uses it to let writes go
// on during an fsync. Optional; without it Sync is serialised with the other calls.
type ConcurrentSyncer interface {
	StateMachine
	SyncConcurrently() bool
}

// Leadership is what a node knows of the leader of a state machine's group.
type Leadership struct {
	Leader NodeID // -1 when unknown
	Epoch  int32  // the leader's term, the Kafka leader epoch
	// Local is true when this node is the leader and has applied every entry committed
	// before its term began (it ran a barrier), so it may serve reads and accept writes.
	Local bool
	// Electing is set, with Leader -1, while a new leader is expected shortly: the last
	// one's process went away moments ago and the other members stand for election.
	Electing bool
}

// Replicator orders entries for the state machines registered with it, makes them durable,
// and applies them on every replica.
type Replicator interface {
	// Register attaches sm under key (a partition's "topicID/partition" name). Entries for a
	// key are applied to its state machine only; Register before any entry for key can
	// arrive, and before Start for state machines that exist when the node starts.
	Register(key string, sm StateMachine) error
	// Unregister detaches key; later entries for it are dropped.
	Unregister(key string)
	// Replicate submits entry for key and returns the result of its Apply once the entry is
	// durable (committed) and applied. It returns ErrNotLeader on a node that does not lead
	// key's group, and ErrOutcomeUnknown if leadership was lost while waiting.
	Replicate(ctx context.Context, key string, entry []byte) (any, error)
	// Leadership reports the current leader of key's group.
	Leadership(key string) Leadership
	// Close stops replicating; state machines are left as they are.
	Close() error
}

// PreferredElector is implemented by replicators whose groups can be asked to hand their
// leadership to their preferred member (a partition's first replica) at once.
type PreferredElector interface {
	// ElectPreferred makes the preferred member of key's group its leader, and returns
	// once this node sees it lead. ErrElectionNotNeeded: it leads already;
	// ErrPreferredLeaderNotAvailable: it cannot lead now.
	ElectPreferred(ctx context.Context, key string) error
}

// GroupLister is implemented by controllers that place partitions in data groups.
type GroupLister interface {
	// Groups returns the data groups by name; callers must not modify them.
	Groups() map[string]*DataGroup
}

// Node is a member of the cluster.
type Node struct {
	ID        NodeID
	KafkaAddr string // advertised host:port for Kafka clients
	RaftAddr  string // host:port of the Raft listener; empty for a single node
	Alive     bool
	// Removing is set once an operator asked to remove the node: no new partition is
	// placed on it, and its data groups move to other nodes. The node leaves the
	// metadata when none is left on it.
	Removing bool `json:",omitempty"`
}

// Topic is a topic as the controller knows it.
type Topic struct {
	Name       string
	ID         [16]byte // UUID, set at creation
	Partitions []PartitionAssignment
	Configs    map[string]string // only the configs set explicitly
	Internal   bool              // __consumer_offsets
}

// PartitionAssignment says where a partition lives.
type PartitionAssignment struct {
	Partition int32
	Group     string   // the data group carrying it; "" for a single node
	Replicas  []NodeID // the nodes holding a copy, preferred leader first
}

// ClusterState is an immutable view of cluster metadata at one version.
type ClusterState struct {
	Version      uint64 // grows with every change
	ClusterID    string // set when the cluster is formed; Metadata v2+ reports it
	ControllerID NodeID
	Nodes        []Node
	Topics       map[string]*Topic
}

// TopicSpec is a request to create a topic.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16 // -1: the default
	Configs           map[string]string
	Internal          bool
}

// Controller owns cluster metadata. On a cluster every change goes through the controller
// group's leader (a call on another node is forwarded); on a single node it is a file.
type Controller interface {
	// State returns the current metadata; callers must not modify it.
	State() *ClusterState
	// Changed returns a channel that is closed at the next change of State.
	Changed() <-chan struct{}
	CreateTopic(ctx context.Context, spec TopicSpec) (*Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	// CreatePartitions grows topic name to count partitions.
	CreatePartitions(ctx context.Context, name string, count int32) error
	// AlterConfigs sets (value non-nil) or removes (nil) topic configs.
	AlterConfigs(ctx context.Context, name string, set map[string]*string) error
	// AllocateProducerIDs reserves n producer IDs and returns the first.
	AllocateProducerIDs(ctx context.Context, n int64) (int64, error)
	// WaitReady waits until this node knows of a live controller leader and has caught up
	// with its metadata.
	WaitReady(ctx context.Context) error
	Close() error
}

// NodeRemover is implemented by controllers whose cluster can lose a node for good.
type NodeRemover interface {
	// RemoveNode starts moving every data group off node id, each to a node it does not
	// have yet, and marks id Removing. It returns once the moves are recorded; they go
	// on in the background (ClusterStatus shows them), and the node leaves the cluster
	// when they are done. ErrNotEnoughNodes: some group has no other node to move to.
	// ErrUnknownNode: no such node.
	RemoveNode(ctx context.Context, id NodeID) error
}

// Rebalancer is implemented by controllers that can spread data groups over the nodes.
type Rebalancer interface {
	// Rebalance starts moving group memberships from the nodes that are members of the
	// most data groups to those of the fewest (a node that just joined has none), until
	// the counts differ by at most one, and returns the moves started: group name to its
	// new members. Groups already moving are left alone. The moves go on in the
	// background as a removal's do (ClusterStatus shows them); none is an empty map.
	Rebalance(ctx context.Context) (map[string][]NodeID, error)
}

// ErrUnknownNode is returned for a node ID the cluster does not have.
var ErrUnknownNode = errors.New("replication: unknown node")
