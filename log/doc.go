// Package log is the ordered segments of one partition, or of one Raft log: append,
// read, roll, retention, truncation and crash recovery over a directory of segment
// files (see package segment for their bytes).
//
// Two formats share all the code. FormatKafka stores Kafka RecordBatch v2 as received;
// Append writes baseOffset and partitionLeaderEpoch into the stored copy and a batch
// takes lastOffsetDelta+1 offsets. FormatEntries stores opaque entries, one offset each,
// for the data groups' Raft log; its offsets are dense and may start anywhere
// (DeleteBefore or TruncateTo past the ends leave an empty log whose next offset is the
// one given).
//
// Durability is explicit: Append makes an entry readable, Sync makes everything
// appended before it durable. Sync also writes a recovery checkpoint now and then (after
// each roll and every Config.CheckpointBytes). Close writes it with a clean-shutdown
// flag: the next Open then reads no entries and no index, whatever the log's size.
// After a crash Open trusts what the checkpoint covers and scans only what follows,
// checking each entry's length, offset and CRC-32C, cutting the log at the first bad
// byte and rebuilding the indexes.
//
// A failed fsync is never retried (the kernel may have dropped the dirty pages): the
// segment is reopened from disk and the log cut back to what the last successful Sync
// covered. A failed write (ENOSPC on a full disk) cuts back the partial entry and
// returns the error; reads go on.
//
// Usage:
//
//	l, err := log.Open(dir, log.Config{Format: log.FormatKafka})
//	base, err := l.Append(batch, leaderEpoch)
//	err = l.Sync()
//	r, err := l.Read(off, 1<<20, highWatermark)
//	_, err = r.WriteTo(conn) // sendfile
//	r.Release()
//	err = l.Close()
package log
