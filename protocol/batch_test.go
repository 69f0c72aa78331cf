package protocol

import (
	"hash/crc32"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// batchOpts shapes a test RecordBatch.
type batchOpts struct {
	producerID    int64
	producerEpoch int16
	baseSequence  int32
	timestamp     int64
}

// makeBatch encodes an uncompressed RecordBatch v2 holding values, the way a producer
// would (base offset 0, CRC-32C set).
func makeBatch(values [][]byte, o batchOpts) []byte {
	if o.timestamp == 0 {
		o.timestamp = time.Now().UnixMilli()
	}
	var recs []byte
	for i, v := range values {
		recs = appendRecord(recs, int32(i), v)
	}
	b := kmsg.RecordBatch{
		Magic:                2,
		LastOffsetDelta:      int32(len(values) - 1),
		FirstTimestamp:       o.timestamp,
		MaxTimestamp:         o.timestamp,
		ProducerID:           o.producerID,
		ProducerEpoch:        o.producerEpoch,
		FirstSequence:        o.baseSequence,
		NumRecords:           int32(len(values)),
		Records:              recs,
		PartitionLeaderEpoch: -1,
	}
	if o.producerID == 0 {
		b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
	}
	out := b.AppendTo(nil)
	// Length counts from after the length field (offset 12), CRC covers attributes on.
	putUint32(out[8:], uint32(len(out)-12))
	putUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// appendRecord encodes one record (no key, no headers, timestamp delta 0) with its
// varint length prefix.
func appendRecord(dst []byte, offsetDelta int32, value []byte) []byte {
	body := []byte{0} // attributes
	body = kbin.AppendVarlong(body, 0)
	body = kbin.AppendVarint(body, offsetDelta)
	body = kbin.AppendVarint(body, -1) // null key
	body = kbin.AppendVarint(body, int32(len(value)))
	body = append(body, value...)
	body = kbin.AppendVarint(body, 0) // no headers
	dst = kbin.AppendVarint(dst, int32(len(body)))
	return append(dst, body...)
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
