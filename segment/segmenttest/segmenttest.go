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
	segment.PutBatchHeader(b, segment.BatchHeader{
		Magic:           2,
		LastOffsetDelta: int32(records - 1),
		BaseTimestamp:   baseTS,
		MaxTimestamp:    maxTS,
		ProducerID:      -1,
		ProducerEpoch:   -1,
		BaseSequence:    -1,
		RecordCount:     int32(records),
	})
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
