// Package partition owns one Kafka partition on this node: its log, high watermark,
// leader epoch, fetch waiters and idempotent-producer state, and the Manager that opens
// the partitions this node holds.
//
// A Partition is a replication.StateMachine. Writes go "replicate, then apply": Produce
// validates a RecordBatch v2 (magic, length, CRC-32C, record count), encodes an entry and
// hands it to the Replicator; Apply, run on every replica in the same order, runs the
// idempotent-producer check and assigns offsets (baseOffset = LogEndOffset), so both come
// out the same everywhere; Commit moves the high watermark once the entry is durable and
// wakes fetch waiters. Reads are served up to the high watermark only.
//
//	m, _ := partition.NewManager(partition.ManagerConfig{DataDir: dir, Controller: ctrl, Replicator: repl})
//	p, _ := m.Get("orders", 0)
//	res, err := p.Produce(ctx, batch) // res.BaseOffset once durable
//	rr, err := p.Read(offset, 1<<20)  // whole batches below the high watermark; rr.Release()
//
// # Entries
//
// An entry is a type byte then its payload:
//
//	1  produce: a RecordBatch v2 as the producer sent it (LogAppendTime already applied
//	   by the leader), its producer ID, epoch and base sequence in the batch header
//	2  delete records: offset int64 (big-endian); records below it are deleted
//
// # Idempotent producers
//
// Per producer ID the partition keeps the epoch and the last five batches (first and last
// sequence, first and last offset). A batch that repeats one of them returns its original
// base offset and is not stored again; one whose first sequence does not follow the last
// batch's gets ErrOutOfOrderSequence; an older epoch ErrInvalidProducerEpoch; a newer
// epoch must start at sequence 0; an unknown producer may start anywhere.
//
// # Files
//
// DATA/<topic>-<partition>/ holds the log's segments (see package log), a topic_id file
// (the topic's UUID in hex, so that a directory left by a deleted topic is not taken for
// a new topic of the same name) and partition.checkpoint, written on Close and every
// ManagerConfig.CheckpointInterval through a temp file, fsync, rename and directory
// fsync:
//
//	version u8 (1) | crc32c u32 of the rest | nextOffset i64 |
//	epochs u32, then per epoch: epoch i32, start offset i64 |
//	producers u32, then per producer (by ID): id i64, epoch i16, n u8,
//	  n x (first sequence i32, last sequence i32, base offset i64, last offset i64)
//
// Snapshot returns the same encoding. Open loads the checkpoint when it is within the
// log and rebuilds the producer table and epochs from the batch headers after it (from
// the log start when it is missing, corrupt or past the log end after a crash), then
// sets the high watermark to the log end: what survived on disk is committed.
//
// Imports flow one way: protocol -> partition -> replication -> log.
package partition
