package partition

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluicemq/sluice/segment"
)

// The RecordBatch v2 header, its layout, decoder, CRC and LogAppendTime rewrite are
// segment's (segment.BatchHeader); this file holds what a partition asks of a batch a
// producer sends.

// Errors returned by ValidateBatch and Produce for batches that cannot be stored.
var (
	// ErrCorruptBatch: the batch is truncated, its length field disagrees with its size,
	// or its CRC does not match.
	ErrCorruptBatch = errors.New("partition: corrupt record batch")
	// ErrInvalidRecord: a well-formed batch breaks a rule (record count, offset deltas,
	// control or transactional batches from a producer).
	ErrInvalidRecord = errors.New("partition: invalid record batch")
	// ErrUnsupportedMagic: a message format older than RecordBatch v2.
	ErrUnsupportedMagic = errors.New("partition: unsupported message format")
	// ErrUnsupportedCompression: an unknown codec.
	ErrUnsupportedCompression = errors.New("partition: unsupported compression")
	// ErrMessageTooLarge: the batch exceeds the topic's max.message.bytes.
	ErrMessageTooLarge = errors.New("partition: record batch too large")
)

// parseHeader decodes the batch header at the start of b, reporting a header segment
// refuses as ErrCorruptBatch.
func parseHeader(b []byte) (segment.BatchHeader, error) {
	h, err := segment.ParseBatchHeader(b)
	if err != nil {
		return h, fmt.Errorf("%w: %v", ErrCorruptBatch, err)
	}
	return h, nil
}

// ValidateBatch checks that b is exactly one RecordBatch v2 a producer may write: magic 2,
// the length field matching len(b), the CRC-32C, a known codec, no control or
// transactional bit, at least one record and lastOffsetDelta = records - 1. For
// uncompressed batches it also walks the records' length prefixes and offset deltas, which
// costs a few varint reads per record; compressed record sets are not inflated.
func ValidateBatch(b []byte) (segment.BatchHeader, error) {
	// segment.ParseBatchHeader decodes every field whenever b holds a whole header, even
	// when it refuses them, so its error is used only for a short batch; the checks below
	// say which rule was broken, in Kafka's order.
	h, err := segment.ParseBatchHeader(b)
	switch {
	case len(b) < segment.BatchHeaderSize:
		return h, fmt.Errorf("%w: %v", ErrCorruptBatch, err)
	case h.Magic != 2:
		return h, fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, h.Magic)
	case h.Length < segment.BatchHeaderSize-segment.BatchLogOverhead || h.Size() != int64(len(b)):
		return h, fmt.Errorf("%w: batch length %d for %d bytes (one batch per partition)", ErrCorruptBatch, h.Length, len(b))
	}
	if crc := segment.BatchCRC(b); crc != h.CRC {
		return h, fmt.Errorf("%w: crc %08x, computed %08x", ErrCorruptBatch, h.CRC, crc)
	}
	if h.Codec() > segment.CodecZstd {
		return h, fmt.Errorf("%w: codec %d", ErrUnsupportedCompression, h.Codec())
	}
	if h.Attributes&(segment.AttrControl|segment.AttrTransactional) != 0 {
		return h, fmt.Errorf("%w: control or transactional batch (attributes %#x)", ErrInvalidRecord, h.Attributes)
	}
	if h.RecordCount <= 0 {
		return h, fmt.Errorf("%w: %d records", ErrInvalidRecord, h.RecordCount)
	}
	if h.LastOffsetDelta != h.RecordCount-1 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d with %d records", ErrInvalidRecord, h.LastOffsetDelta, h.RecordCount)
	}
	if h.Codec() == segment.CodecNone {
		if err := checkRecords(b[segment.BatchHeaderSize:], h.RecordCount); err != nil {
			return h, err
		}
	}
	return h, nil
}

// checkRecords walks uncompressed records: each is a varint length then that many bytes,
// starting with attributes (int8), timestampDelta (varint) and offsetDelta (varint), which
// must count up from 0; the records must fill the region exactly.
func checkRecords(b []byte, n int32) error {
	for i := int32(0); i < n; i++ {
		l, m := binary.Varint(b)
		if m <= 0 || l < 1 || l > int64(len(b)-m) {
			return fmt.Errorf("%w: record %d: bad length", ErrInvalidRecord, i)
		}
		rec := b[m : m+int(l)]
		b = b[m+int(l):]
		// attributes, then timestampDelta, then offsetDelta.
		rec = rec[1:]
		if _, k := binary.Varint(rec); k <= 0 {
			return fmt.Errorf("%w: record %d: bad timestamp delta", ErrInvalidRecord, i)
		} else {
			rec = rec[k:]
		}
		od, k := binary.Varint(rec)
		if k <= 0 || od != int64(i) {
			return fmt.Errorf("%w: record %d: offset delta %d", ErrInvalidRecord, i, od)
		}
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d bytes after the last record", ErrInvalidRecord, len(b))
	}
	return nil
}

// nextSequence is the sequence after seq advanced by n, wrapping at MaxInt32 as Kafka does.
func nextSequence(seq, n int32) int32 {
	if seq > maxInt32-n {
		return n - (maxInt32 - seq) - 1
	}
	return seq + n
}

const maxInt32 = 1<<31 - 1
