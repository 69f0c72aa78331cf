// Package partition owns one Kafka partition on this node: its log, high watermark,
// leader epoch, fetch waiters and idempotent-producer state, and the Manager that opens
// the partitions this node holds.
//
// A Partition is a replication.StateMachine. Its entries are its own encodings: a type
// byte, then the payload (a produce batch, a DeleteRecords offset). Writes go "replicate,
// then apply": Produce encodes an entry and hands it to the Replicator; Apply, run on
// every replica in the same order, assigns offsets (baseOffset = LogEndOffset) and runs
// the idempotent-producer check, so both come out the same everywhere; Commit moves the
// high watermark once the entry is durable and wakes fetch waiters. Reads are served up
// to the high watermark only.
//
//	m, _ := partition.NewManager(partition.ManagerConfig{DataDir: dir, ...})
//	p, _ := m.Get("orders", 0)
//	res, err := p.Produce(ctx, batch)
//
// Imports flow one way: protocol -> partition -> replication -> log.
package partition
