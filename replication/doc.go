// Package replication orders and replicates the entries of state machines across nodes.
//
// It owns two kinds of group. The controller group holds cluster metadata (nodes, topics,
// partitions and where they live, configs, producer-ID blocks) behind the Controller
// interface. Data groups each carry many partitions: a partition is a StateMachine
// registered under a key, and Replicator.Replicate returns the result of applying an entry
// to it once the entry is committed. A single node uses the same interfaces with no Raft
// in between.
//
// Imports flow one way: partition -> replication -> log -> segment.
package replication
