package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Byte positions of the fields of a Kafka RecordBatch v2 header. Big-endian throughout.
const (
	BatchBaseOffsetPos      = 0  // int64, set by the log
	BatchLengthPos          = 8  // int32, bytes after this field
	BatchLeaderEpochPos     = 12 // int32 partitionLeaderEpoch, set by the log
	BatchMagicPos           = 16 // int8, 2
	BatchCRCPos             = 17 // uint32 CRC-32C of bytes 21..end
	BatchAttributesPos      = 21 // int16
	BatchLastOffsetDeltaPos = 23 // int32
	BatchBaseTimestampPos   = 27 // int64
	BatchMaxTimestampPos    = 35 // int64
	BatchProducerIDPos      = 43 // int64
	BatchProducerEpochPos   = 51 // int16
	BatchBaseSequencePos    = 53 // int32
	BatchRecordCountPos     = 57 // int32
	// BatchHeaderSize is the size of the header; records follow it.
	BatchHeaderSize = 61
	// BatchLogOverhead is the size of baseOffset and batchLength, which batchLength
	// does not count.
	BatchLogOverhead = 12

	// AttrCompression masks the attributes' bits 0-2: the codec of the records (one of
	// the Codec constants).
	AttrCompression = 0x07
	// AttrLogAppendTime is the timestampType bit of the attributes: set, the broker's
	// append time replaces the producer's timestamps.
	AttrLogAppendTime = 1 << 3
	// AttrTransactional is the isTransactional bit of the attributes.
	AttrTransactional = 1 << 4
	// AttrControl is the isControl bit of the attributes: the batch holds a control
	// record (a transaction marker), not data.
	AttrControl = 1 << 5
)

// Compression codecs, the values of the attributes' AttrCompression bits. The batch
// header is never compressed; only the records after it are.
const (
	CodecNone   = 0
	CodecGzip   = 1
	CodecSnappy = 2
	CodecLZ4    = 3
	CodecZstd   = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded header of a RecordBatch v2.
type BatchHeader struct {
	BaseOffset           Offset
	Length               int32 // batchLength: bytes after the length field
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
	RecordCount          int32
}

// Size returns the bytes the whole batch takes: the header's length plus 12.
func (h *BatchHeader) Size() int64 { return BatchLogOverhead + int64(h.Length) }

// Codec returns the compression codec of the batch's records (a Codec constant, or a
// value no codec has).
func (h *BatchHeader) Codec() int { return int(h.Attributes & AttrCompression) }

// LastOffset returns the offset of the batch's last record.
func (h *BatchHeader) LastOffset() Offset { return h.BaseOffset + Offset(h.LastOffsetDelta) }

// PutBatchHeader writes h over the first BatchHeaderSize bytes of b, a whole batch with
// its records in place, except for Length and CRC, which it computes from b.
func PutBatchHeader(b []byte, h BatchHeader) {
	be := binary.BigEndian
	be.PutUint64(b[BatchBaseOffsetPos:], uint64(h.BaseOffset))
	be.PutUint32(b[BatchLengthPos:], uint32(len(b)-BatchLogOverhead))
	be.PutUint32(b[BatchLeaderEpochPos:], uint32(h.PartitionLeaderEpoch))
	b[BatchMagicPos] = byte(h.Magic)
	be.PutUint16(b[BatchAttributesPos:], uint16(h.Attributes))
	be.PutUint32(b[BatchLastOffsetDeltaPos:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[BatchBaseTimestampPos:], uint64(h.BaseTimestamp))
	be.PutUint64(b[BatchMaxTimestampPos:], uint64(h.MaxTimestamp))
	be.PutUint64(b[BatchProducerIDPos:], uint64(h.ProducerID))
	be.PutUint16(b[BatchProducerEpochPos:], uint16(h.ProducerEpoch))
	be.PutUint32(b[BatchBaseSequencePos:], uint32(h.BaseSequence))
	be.PutUint32(b[BatchRecordCountPos:], uint32(h.RecordCount))
	be.PutUint32(b[BatchCRCPos:], BatchCRC(b))
}

// ParseBatchHeader decodes the first BatchHeaderSize bytes of b. It returns an error
// matching ErrInvalidEntry when b is too short, the magic is not 2, the length is
// smaller than a header, or lastOffsetDelta or recordCount is negative. It reads nothing
// past the header and does not check the CRC (CheckBatch does). When b holds a whole
// header, every field is decoded even when the error refuses one of them.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	var h BatchHeader
	if len(b) < BatchHeaderSize {
		return h, fmt.Errorf("%w: %d bytes, a batch header needs %d", ErrInvalidEntry, len(b), BatchHeaderSize)
	}
	be := binary.BigEndian
	h.BaseOffset = Offset(be.Uint64(b[BatchBaseOffsetPos:]))
	h.Length = int32(be.Uint32(b[BatchLengthPos:]))
	h.PartitionLeaderEpoch = int32(be.Uint32(b[BatchLeaderEpochPos:]))
	h.Magic = int8(b[BatchMagicPos])
	h.CRC = be.Uint32(b[BatchCRCPos:])
	h.Attributes = int16(be.Uint16(b[BatchAttributesPos:]))
	h.LastOffsetDelta = int32(be.Uint32(b[BatchLastOffsetDeltaPos:]))
	h.BaseTimestamp = int64(be.Uint64(b[BatchBaseTimestampPos:]))
	h.MaxTimestamp = int64(be.Uint64(b[BatchMaxTimestampPos:]))
	h.ProducerID = int64(be.Uint64(b[BatchProducerIDPos:]))
	h.ProducerEpoch = int16(be.Uint16(b[BatchProducerEpochPos:]))
	h.BaseSequence = int32(be.Uint32(b[BatchBaseSequencePos:]))
	h.RecordCount = int32(be.Uint32(b[BatchRecordCountPos:]))
	switch {
	case h.Magic != 2:
		return h, fmt.Errorf("%w: magic %d, want 2", ErrInvalidEntry, h.Magic)
	case h.Length < BatchHeaderSize-BatchLogOverhead:
		return h, fmt.Errorf("%w: batch length %d shorter than a header", ErrInvalidEntry, h.Length)
	case h.LastOffsetDelta < 0:
		return h, fmt.Errorf("%w: negative lastOffsetDelta %d", ErrInvalidEntry, h.LastOffsetDelta)
	case h.RecordCount < 0:
		return h, fmt.Errorf("%w: negative record count %d", ErrInvalidEntry, h.RecordCount)
	}
	return h, nil
}

// BatchCRC returns the CRC-32C of a batch's bytes 21.. (the bytes its CRC field covers).
// b must hold at least BatchHeaderSize bytes.
func BatchCRC(b []byte) uint32 { return crc32.Checksum(b[BatchAttributesPos:], castagnoli) }

// CheckBatch checks that b is exactly one well-formed RecordBatch v2 whose CRC matches.
// It returns an error matching ErrInvalidEntry (bad header or length) or ErrCorrupt (bad
// CRC).
func CheckBatch(b []byte) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() != int64(len(b)) {
		return h, fmt.Errorf("%w: batch length %d does not match %d bytes", ErrInvalidEntry, h.Length, len(b))
	}
	if got := BatchCRC(b); got != h.CRC {
		return h, fmt.Errorf("%w: batch crc %#08x, computed %#08x", ErrCorrupt, h.CRC, got)
	}
	return h, nil
}

// SetLogAppendTime prepares a batch for a topic with message.timestamp.type=LogAppendTime:
// it sets the timestampType attribute bit and maxTimestamp to ts, and recomputes the CRC
// (both fields lie inside it), in place. b must be a whole batch.
func SetLogAppendTime(b []byte, ts int64) error {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return err
	}
	if h.Size() != int64(len(b)) {
		return fmt.Errorf("%w: batch length %d does not match %d bytes", ErrInvalidEntry, h.Length, len(b))
	}
	be := binary.BigEndian
	be.PutUint16(b[BatchAttributesPos:], uint16(h.Attributes)|AttrLogAppendTime)
	be.PutUint64(b[BatchMaxTimestampPos:], uint64(ts))
	be.PutUint32(b[BatchCRCPos:], BatchCRC(b))
	return nil
}
