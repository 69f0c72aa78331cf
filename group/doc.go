// Package group is the consumer group coordinator: it owns consumer groups (members,
// generations, rebalances, assignments) and the offsets groups commit, and keeps both in the
// internal compacted topic __consumer_offsets in Kafka's own record formats, so tools that
// read that topic work unchanged.
//
// # Groups
//
// A group moves through Kafka's classic states: Empty, PreparingRebalance (members are
// rejoining), CompletingRebalance (the leader computes the assignment), Stable and Dead.
// JoinGroup, SyncGroup, Heartbeat and LeaveGroup follow Kafka's group coordinator: the
// two-step join with MEMBER_ID_REQUIRED (JoinGroup v4+), static members with
// group.instance.id (v5+), session and rebalance timeouts, fencing with ILLEGAL_GENERATION,
// UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS and FENCED_INSTANCE_ID. Any protocol type is
// coordinated; "consumer" is only looked into to know which topics a group reads
// (OffsetDelete, offset expiry).
//
// # Where the state lives
//
// The group G is coordinated by the leader of partition Partition(G, N) of __consumer_offsets
// (Kafka's abs(G.hashCode()) % N). Each commit and each group change is a RecordBatch v2
// appended to that partition through the Log interface; the request is answered once the
// append is durable. Keys and values are kmsg.OffsetCommitKey (v1) / OffsetCommitValue (v3)
// and kmsg.GroupMetadataKey (v2) / GroupMetadataValue (v3); a null value (tombstone) deletes
// an offset or a group. When this node becomes the leader of a partition the coordinator
// reads it from its start and rebuilds that partition's groups; until then requests for
// those groups get COORDINATOR_LOAD_IN_PROGRESS. The groups are served only while the
// partition is led here in the leader epoch they were loaded under: every request checks
// (Log.Leader), appends name the epoch (Log.Append), a lost partition answers
// NOT_COORDINATOR and one won back in a new epoch is loaded again. docs/consumer-offsets.md
// has the layout.
//
// # Concurrency
//
// One goroutine (run) owns every group. Request methods post a closure to it and wait for
// the answer; JoinGroup and SyncGroup may wait for other members. Appends to the log are
// done by one writer goroutine per partition, which posts the outcome back to run, so run
// never does I/O and commits are applied in the order they were written. Loading a
// partition reads it on its own goroutine and hands the rebuilt groups to run.
//
// # Errors
//
// The coordinator answers with kmsg response structs whose error codes are Kafka's (kerr):
// the group protocol is Kafka's own, and its responses are what the coordinator computes.
// protocol/ only frames them.
//
// # Usage
//
//	c := group.New(group.Config{NodeID: 1}, offsetsLog, logger)
//	defer c.Close()
//	resp := c.JoinGroup(ctx, req, clientID, clientHost)
package group
