package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// RecordBatch v2 header layout (all big-endian); the CRC-32C at crcOffset covers
// everything from attrOffset to the end of the batch.
const (
	baseOffsetOffset      = 0
	batchLengthOffset     = 8
	leaderEpochOffset     = 12
	magicOffset           = 16
	crcOffset             = 17
	attrOffset            = 21
	lastOffsetDeltaOffset = 23
	baseTimestampOffset   = 27
	maxTimestampOffset    = 35
	producerIDOffset      = 43
	producerEpochOffset   = 51
	baseSequenceOffset    = 53
	recordCountOffset     = 57
	// BatchHeaderLen is the size of a RecordBatch v2 header.
	BatchHeaderLen = 61
	// batchLengthBase is how many header bytes batchLength does not count.
	batchLengthBase = 12
)

// Batch attribute bits.
const (
	attrCompressionMask = 0x07
	attrLogAppendTime   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

// Compression codecs in the attribute bits.
const (
	CodecNone   = 0
	CodecGzip   = 1
	CodecSnappy = 2
	CodecLZ4    = 3
	CodecZstd   = 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

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

// BatchHeader is the decoded header of a RecordBatch v2.
type BatchHeader struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Codec returns the compression codec.
func (h *BatchHeader) Codec() int { return int(h.Attributes & attrCompressionMask) }

// Size is the whole batch's size in bytes.
func (h *BatchHeader) Size() int { return int(h.BatchLength) + batchLengthBase }

// ParseBatchHeader decodes the header at the start of b without checking anything but its
// length.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	var h BatchHeader
	if len(b) < BatchHeaderLen {
		return h, fmt.Errorf("%w: %d bytes, shorter than a batch header", ErrCorruptBatch, len(b))
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[baseOffsetOffset:]))
	h.BatchLength = int32(binary.BigEndian.Uint32(b[batchLengthOffset:]))
	h.PartitionLeaderEpoch = int32(binary.BigEndian.Uint32(b[leaderEpochOffset:]))
	h.Magic = int8(b[magicOffset])
	h.CRC = binary.BigEndian.Uint32(b[crcOffset:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[attrOffset:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[lastOffsetDeltaOffset:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[baseTimestampOffset:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[maxTimestampOffset:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[producerIDOffset:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[producerEpochOffset:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[baseSequenceOffset:]))
	h.NumRecords = int32(binary.BigEndian.Uint32(b[recordCountOffset:]))
	return h, nil
}

// ValidateBatch checks that b is exactly one RecordBatch v2 a producer may write: magic 2,
// the length field matching len(b), the CRC-32C, a known codec, no control or
// transactional bit, at least one record and lastOffsetDelta = records - 1. For
// uncompressed batches it also walks the records' length prefixes and offset deltas, which
// costs a few varint reads per record; compressed record sets are not inflated.
func ValidateBatch(b []byte) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, h.Magic)
	}
	if h.BatchLength < BatchHeaderLen-batchLengthBase || h.Size() != len(b) {
		return h, fmt.Errorf("%w: batch length %d for %d bytes (one batch per partition)", ErrCorruptBatch, h.BatchLength, len(b))
	}
	if crc := crc32.Checksum(b[attrOffset:], crcTable); crc != h.CRC {
		return h, fmt.Errorf("%w: crc %08x, computed %08x", ErrCorruptBatch, h.CRC, crc)
	}
	if h.Codec() > CodecZstd {
		return h, fmt.Errorf("%w: codec %d", ErrUnsupportedCompression, h.Codec())
	}
	if h.Attributes&(attrControl|attrTransactional) != 0 {
		return h, fmt.Errorf("%w: control or transactional batch (attributes %#x)", ErrInvalidRecord, h.Attributes)
	}
	if h.NumRecords <= 0 {
		return h, fmt.Errorf("%w: %d records", ErrInvalidRecord, h.NumRecords)
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d with %d records", ErrInvalidRecord, h.LastOffsetDelta, h.NumRecords)
	}
	if h.Codec() == CodecNone {
		if err := checkRecords(b[BatchHeaderLen:], h.NumRecords); err != nil {
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

// setLogAppendTime marks the batch's timestamps as broker-assigned, sets its max
// timestamp to ts and recomputes the CRC.
func setLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[attrOffset:]) | attrLogAppendTime
	binary.BigEndian.PutUint16(b[attrOffset:], attrs)
	binary.BigEndian.PutUint64(b[maxTimestampOffset:], uint64(ts))
	binary.BigEndian.PutUint32(b[crcOffset:], crc32.Checksum(b[attrOffset:], crcTable))
}

// nextSequence is the sequence after seq advanced by n, wrapping at MaxInt32 as Kafka does.
func nextSequence(seq, n int32) int32 {
	if seq > maxInt32-n {
		return n - (maxInt32 - seq) - 1
	}
	return seq + n
}

const maxInt32 = 1<<31 - 1
