// Package segmenttest builds Kafka RecordBatch v2 bytes for tests: real batches with
// real records (varint-framed, uncompressed), a correct CRC-32C, and timestamps chosen
// by the caller.
package segmenttest

import (
	"encoding/binary"

	"github.com/sluicemq/sluice/segment"
)

// Batch returns a RecordBatch v2 with records records of valueSize bytes each. The
// records' timestamps run from baseTS to maxTS (all baseTS when records == 1); the
// values are filled with fill. baseOffset and partitionLeaderEpoch are zero.
func Batch(records, valueSize int, baseTS, maxTS int64, fill byte) []byte {
	b := make([]byte, segment.BatchHeaderSize, segment.BatchHeaderSize+records*(valueSize+16))
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = fill
	}
	for i := 0; i < records; i++ {
		var tsDelta int64
		if records > 1 {
			tsDelta = (maxTS - baseTS) * int64(i) / int64(records-1)
		}
		var rec []byte
		rec = append(rec, 0) // attributes
		rec = binary.AppendVarint(rec, tsDelta)
		rec = binary.AppendVarint(rec, int64(i)) // offsetDelta
		rec = binary.AppendVarint(rec, -1)       // key: null
		rec = binary.AppendVarint(rec, int64(len(value)))
		rec = append(rec, value...)
		rec = binary.AppendVarint(rec, 0) // headers
		b = binary.AppendVarint(b, int64(len(rec)))
		b = append(b, rec...)
	}
	be := binary.BigEndian
	be.PutUint32(b[segment.BatchLengthPos:], uint32(len(b)-segment.BatchLogOverhead))
	b[segment.BatchMagicPos] = 2
	be.PutUint32(b[segment.BatchLastOffsetDeltaPos:], uint32(records-1))
	be.PutUint64(b[segment.BatchBaseTimestampPos:], uint64(baseTS))
	be.PutUint64(b[segment.BatchMaxTimestampPos:], uint64(maxTS))
	be.PutUint64(b[segment.BatchProducerIDPos:], ^uint64(0)) // -1
	be.PutUint16(b[segment.BatchProducerEpochPos:], ^uint16(0))
	be.PutUint32(b[segment.BatchBaseSequencePos:], ^uint32(0))
	be.PutUint32(b[segment.BatchRecordCountPos:], uint32(records))
	be.PutUint32(b[segment.BatchCRCPos:], segment.BatchCRC(b))
	return b
}

// Header decodes b's header, panicking on error (for tests).
func Header(b []byte) segment.BatchHeader {
	h, err := segment.ParseBatchHeader(b)
	if err != nil {
		panic(err)
	}
	return h
}
