// Package replication orders and replicates the entries of state machines across nodes.
//
// It owns two kinds of group. The controller group holds cluster metadata (nodes, topics,
// partitions and where they live, configs, producer-ID blocks) behind the Controller
// interface. Data groups each carry many partitions: a partition is a StateMachine
// registered under a key, and Replicator.Replicate returns the result of applying an entry
// to it once the entry is committed. A single node uses the same interfaces with no Raft
// in between (local_*.go).
//
// A cluster node (raft_*.go, hashicorp/raft; see docs/cluster.md):
//
//	raft_transport.go    Mux: one TCP port for every group and service; a header names the
//	                     destination of each connection
//	raft_grouptransport.go the data groups' raft.Transport (the controller group keeps
//	raft_wire.go         hashicorp's NetworkTransport): its own framing, entry bytes
//	                     written with writev and read straight into buffers, pipelined
//	                     AppendEntries, deadlines on both sides
//	raft_controller*.go  RaftController: the controller group on raft-boltdb, its FSM, the
//	                     forwarding RPC ("_ctl", raft_rpc.go), node liveness
//	raft_placement.go    data groups per replication factor, partitions onto groups
//	raft_replicator.go   RaftReplicator: runs the data groups this node is a member of,
//	                     routes keys to them, Replicate/Submit/Leadership
//	raft_group*.go       one data group: raft, FSM routing entries to state machines,
//	                     snapshots (per key state), barrier before serving, preferred
//	                     leader, background partition sync
//	raft_logstore.go     the data groups' raft.LogStore on log.FormatEntries
//	raft_catchup.go      DataStateMachine: copying data a snapshot is ahead of ("_data")
//	raft_membership.go   nodes joining, nodes removed and groups rebalanced: data groups
//	                     moved to new members step by step, driven from the controller
//	raft_handoff.go      a stopping leader hands each group to a member known alive
//	raft_cluster.go      Cluster: all of the above for cmd/sluice
//	raft_status.go       ClusterStatus for the admin endpoint
//
//	c, _ := replication.StartCluster(replication.ClusterConfig{NodeID: 1, Peers: peers,
//		KafkaAddr: "10.0.0.1:9092", Dir: "data/raft"})
//	_ = c.Controller.WaitReady(ctx)
//	// c.Controller and c.Replicator go to partition.Manager and protocol.Server.
//
// Lock order: RaftReplicator.startMu before RaftReplicator.mu; a state machine's
// smEntry.mu before groupFSM.mu; ctrlFSM.mu before RaftController.mu; logStore.writeMu
// before logStore.compactMu before logStore.mu. Locks guarding
// shared state are never held over a Raft call or disk I/O; the ones that are serialize
// one writer: smEntry.mu (the calls into one state machine), RaftController.writeMu (the
// leader's changes), logStore.writeMu (StoreLogs and suffix truncations) and
// logStore.compactMu (head compaction, which runs beside StoreLogs).
//
// Imports flow one way: partition -> replication -> log -> segment.
package replication
