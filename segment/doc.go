// Package segment is one segment of a log: a .log file of entries and two sparse
// indexes over it, .index and .timeindex. Files are named by the segment's base offset
// in 20 digits: 00000000000000000042.log. All integers are big-endian.
//
// The byte layouts are also in docs/format/segment.md, and the recovery checkpoint and
// recovery in docs/format/checkpoint.md.
//
// # .log, FormatKafka
//
// Kafka RecordBatch v2 bytes as the producer sent them, one batch after another, except
// that the log writes baseOffset and partitionLeaderEpoch (both outside the CRC):
//
//	 0 baseOffset           int64   set by the log: the batch's first offset
//	 8 batchLength          int32   bytes after this field
//	12 partitionLeaderEpoch int32   set by the log
//	16 magic                int8    2
//	17 crc                  uint32  CRC-32C (Castagnoli) of bytes 21..end
//	21 attributes           int16   bits 0-2 codec, 3 LogAppendTime, 4 transactional, 5 control
//	23 lastOffsetDelta      int32   the batch takes lastOffsetDelta+1 offsets
//	27 baseTimestamp        int64
//	35 maxTimestamp         int64   what the time index records
//	43 producerId           int64
//	51 producerEpoch        int16
//	53 baseSequence         int32
//	57 recordCount          int32
//	61 records...
//
// # .log, FormatEntries
//
// Opaque entries, one offset each, framed:
//
//	 0 offset  int64   the entry's offset
//	 8 length  uint32  payload bytes
//	12 crc     uint32  CRC-32C of bytes 0..11, then of the payload
//	16 payload
//
// In both formats the offsets of consecutive entries are dense: each entry starts at
// the offset after the previous one's last, and the first at the segment's base.
//
// # .index
//
// Sparse map from offset to position: 8-byte entries, about one per IndexInterval
// (4 KiB) of .log, pointing at the start of an entry.
//
//	0 relativeOffset uint32  entry base offset - segment base offset
//	4 position       uint32  byte position of that entry in .log
//
// Both fields strictly increase; position 0 has no entry. To find offset O: take the
// last index entry with relativeOffset <= O - base (or position 0), then walk entry
// headers forward to the entry whose last offset is >= O.
//
// # .timeindex
//
// Sparse map from time to offset: 12-byte entries, written with the .index entries when
// the largest maxTimestamp seen has grown, and once more when the segment is sealed.
//
//	0 timestamp      int64   the largest maxTimestamp up to this point
//	8 relativeOffset uint32  the first entry that has it - segment base offset
//
// Both fields strictly increase; timestamps are never negative (batches without a
// timestamp, -1, are not recorded). The last entry of a sealed segment holds the
// segment's largest timestamp. To find the first entry with maxTimestamp >= T: take the
// entry before the first one with timestamp >= T (or the segment's start) and walk
// entry headers from its offset.
//
// # Concurrency and lifetime
//
// A Segment has one writer and many readers. The writer appends each entry with one
// pwritev, adds index entries in memory, then publishes the new size and next offset;
// readers read only below what was published. Index entries reach their files in
// batches (FlushIndex), and are synced only when a recovery checkpoint needs them. A
// Segment is reference counted so that a reader keeps a deleted segment's files open.
package segment
