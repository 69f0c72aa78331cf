package group

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluicemq/sluice/segment"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The RecordBatch v2 header (layout, decoding, CRC) is segment's; records follow it.
// A record: length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
// key (varint length, -1 null), value (varint length, -1 null), headers count varint, then
// each header's key and value. Varints are zigzag, as encoding/binary writes them.

// ErrCorruptBatch is returned (wrapped) by readBatches for bytes that are not a whole,
// valid RecordBatch v2.
var ErrCorruptBatch = errors.New("group: corrupt record batch")

var decompressor = kgo.DefaultDecompressor()

// record is one key/value pair of __consumer_offsets. A nil value is a tombstone.
type record struct {
	key, value []byte
}

// buildBatch encodes records as one uncompressed RecordBatch v2, all stamped with
// timestamp ts (milliseconds), base offset 0: the log sets it.
func buildBatch(ts int64, records []record) []byte {
	b := make([]byte, segment.BatchHeaderSize, segment.BatchHeaderSize+64*len(records))
	var body []byte
	for i, r := range records {
		body = body[:0]
		body = append(body, 0)                       // attributes
		body = binary.AppendVarint(body, 0)          // timestampDelta
		body = binary.AppendVarint(body, int64(i))   // offsetDelta
		body = appendVarintBytes(body, r.key)        // key
		body = appendVarintBytes(body, r.value)      // value
		body = binary.AppendVarint(body, 0)          // headers
		b = binary.AppendVarint(b, int64(len(body))) // length
		b = append(b, body...)
	}
	segment.PutBatchHeader(b, segment.BatchHeader{
		PartitionLeaderEpoch: -1, // the log sets it, and the base offset
		Magic:                2,
		LastOffsetDelta:      int32(len(records) - 1),
		BaseTimestamp:        ts,
		MaxTimestamp:         ts,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		BaseSequence:         -1,
		RecordCount:          int32(len(records)),
	})
	return b
}

func appendVarintBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

// batchRecords is the decoded content of one batch.
type batchRecords struct {
	baseOffset      int64
	lastOffsetDelta int32
	control         bool // a transaction marker: no records are decoded
	records         []record
}

// nextOffset is the offset after the batch.
func (b *batchRecords) nextOffset() int64 { return b.baseOffset + int64(b.lastOffsetDelta) + 1 }

// readBatches splits buf into RecordBatch v2 batches and decodes their records (none for
// control batches). A partial batch at the end of buf is left unread: rest is the
// offset in buf where it begins (len(buf) when every byte was read). A batch that is
// malformed or fails its CRC gives an error wrapping ErrCorruptBatch; rest is then where
// it begins.
func readBatches(buf []byte) (batches []batchRecords, rest int, err error) {
	pos := 0
	for len(buf)-pos >= segment.BatchLogOverhead {
		length := int32(binary.BigEndian.Uint32(buf[pos+segment.BatchLengthPos:]))
		if length < segment.BatchHeaderSize-segment.BatchLogOverhead {
			return batches, pos, fmt.Errorf("%w: batch length %d at byte %d", ErrCorruptBatch, length, pos)
		}
		end := pos + segment.BatchLogOverhead + int(length)
		if end > len(buf) {
			break
		}
		br, err := decodeBatch(buf[pos:end])
		if err != nil {
			return batches, pos, fmt.Errorf("batch at byte %d: %w", pos, err)
		}
		batches = append(batches, *br)
		pos = end
	}
	return batches, pos, nil
}

// decodeBatch decodes one whole batch.
func decodeBatch(b []byte) (*batchRecords, error) {
	h, err := segment.CheckBatch(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptBatch, err)
	}
	br := &batchRecords{baseOffset: int64(h.BaseOffset), lastOffsetDelta: h.LastOffsetDelta}
	if h.Attributes&segment.AttrControl != 0 {
		br.control = true
		return br, nil
	}
	count := h.RecordCount
	body := b[segment.BatchHeaderSize:]
	if codec := h.Codec(); codec != segment.CodecNone {
		// This package writes uncompressed batches; a compressed one came from elsewhere.
		if body, err = decompressor.Decompress(body, kgo.CompressionCodecType(codec)); err != nil {
			return nil, fmt.Errorf("%w: decompress (codec %d): %v", ErrCorruptBatch, codec, err)
		}
	}
	if int(count) > len(body) || br.lastOffsetDelta < count-1 {
		return nil, fmt.Errorf("%w: record count %d", ErrCorruptBatch, count)
	}
	br.records = make([]record, 0, count)
	for i := int32(0); i < count; i++ {
		length, n := binary.Varint(body)
		if n <= 0 || length < 0 || length > int64(len(body)-n) {
			return nil, fmt.Errorf("%w: record %d length", ErrCorruptBatch, i)
		}
		r, err := decodeRecord(body[n : n+int(length)])
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		br.records = append(br.records, r)
		body = body[n+int(length):]
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last record", ErrCorruptBatch, len(body))
	}
	return br, nil
}

func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) < 1 {
		return r, fmt.Errorf("%w: empty record", ErrCorruptBatch)
	}
	b = b[1:]     // attributes
	for range 2 { // timestampDelta, offsetDelta
		_, n := binary.Varint(b)
		if n <= 0 {
			return r, fmt.Errorf("%w: record header", ErrCorruptBatch)
		}
		b = b[n:]
	}
	var err error
	if r.key, b, err = readVarintBytes(b); err != nil {
		return r, fmt.Errorf("key: %w", err)
	}
	if r.value, b, err = readVarintBytes(b); err != nil {
		return r, fmt.Errorf("value: %w", err)
	}
	headers, n := binary.Varint(b)
	if n <= 0 || headers < 0 {
		return r, fmt.Errorf("%w: header count", ErrCorruptBatch)
	}
	b = b[n:]
	for range headers {
		for range 2 {
			l, n := binary.Varint(b)
			if n <= 0 || l < -1 || l > int64(len(b)-n) {
				return r, fmt.Errorf("%w: header", ErrCorruptBatch)
			}
			b = b[n+max(int(l), 0):]
		}
	}
	if len(b) != 0 {
		return r, fmt.Errorf("%w: %d bytes after the headers", ErrCorruptBatch, len(b))
	}
	return r, nil
}

func readVarintBytes(b []byte) (v, rest []byte, err error) {
	l, n := binary.Varint(b)
	if n <= 0 || l < -1 || l > int64(len(b)-n) {
		return nil, nil, fmt.Errorf("%w: length", ErrCorruptBatch)
	}
	if l == -1 {
		return nil, b[n:], nil
	}
	return b[n : n+int(l) : n+int(l)], b[n+int(l):], nil
}
