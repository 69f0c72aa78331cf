package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/sluicemq/sluice/segment"
)

// Records are decoded on one path only: finding the exact record for a timestamp
// (ListOffsets), which the log answers at batch granularity. Produce and Fetch never
// look inside batches.

// maxDecompressed bounds what a stored batch may inflate to when it is looked into; a
// batch that claims more is treated as having no matching record.
const maxDecompressed = 64 << 20

// errDecompressTooLarge is returned by decompress for a batch over maxDecompressed.
var errDecompressTooLarge = errors.New("partition: batch decompresses past the limit")

var (
	zstdOnce sync.Once
	zstdDec  *zstd.Decoder
	zstdErr  error
)

// xerialPrefix starts snappy data framed the way the Java client writes it.
var xerialPrefix = []byte{130, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// decompress inflates a batch's record set, refusing output over max bytes.
func decompress(codec int, src []byte, max int) ([]byte, error) {
	readAll := func(r io.Reader) ([]byte, error) {
		out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
		if err != nil {
			return nil, err
		}
		if len(out) > max {
			return nil, errDecompressTooLarge
		}
		return out, nil
	}
	switch codec {
	case segment.CodecNone:
		return src, nil
	case segment.CodecGzip:
		r, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, err
		}
		return readAll(r)
	case segment.CodecLZ4:
		return readAll(lz4.NewReader(bytes.NewReader(src)))
	case segment.CodecZstd:
		zstdOnce.Do(func() {
			zstdDec, zstdErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(uint64(maxDecompressed)))
		})
		if zstdErr != nil {
			return nil, zstdErr
		}
		out, err := zstdDec.DecodeAll(src, nil)
		if err != nil {
			return nil, err
		}
		if len(out) > max {
			return nil, errDecompressTooLarge
		}
		return out, nil
	case segment.CodecSnappy:
		return decodeSnappy(src, max)
	}
	return nil, fmt.Errorf("%w: codec %d", ErrUnsupportedCompression, codec)
}

// decodeSnappy decodes a raw snappy block or Java's xerial framing of blocks.
func decodeSnappy(src []byte, max int) ([]byte, error) {
	block := func(dst, b []byte) ([]byte, error) {
		n, err := s2.DecodedLen(b)
		if err != nil {
			return nil, err
		}
		if len(dst)+n > max {
			return nil, errDecompressTooLarge
		}
		out, err := s2.Decode(nil, b)
		if err != nil {
			return nil, err
		}
		return append(dst, out...), nil
	}
	if len(src) < 16 || !bytes.HasPrefix(src, xerialPrefix) {
		return block(nil, src)
	}
	var out []byte
	for rest := src[16:]; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: truncated xerial block", ErrCorruptBatch)
		}
		n := int(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if n > len(rest) {
			return nil, fmt.Errorf("%w: truncated xerial block", ErrCorruptBatch)
		}
		var err error
		if out, err = block(out, rest[:n]); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	return out, nil
}

// findRecord returns the offset and timestamp of the first record of batch (a stored
// RecordBatch v2) for which match holds. Broker-time batches give every record the
// batch's max timestamp.
func findRecord(batch []byte, match func(ts int64) bool) (offset, ts int64, ok bool, err error) {
	h, err := parseHeader(batch)
	if err != nil {
		return 0, 0, false, err
	}
	if h.Size() > int64(len(batch)) {
		return 0, 0, false, fmt.Errorf("%w: batch of %d bytes in %d", ErrCorruptBatch, h.Size(), len(batch))
	}
	if h.Attributes&segment.AttrLogAppendTime != 0 {
		return int64(h.BaseOffset), h.MaxTimestamp, match(h.MaxTimestamp), nil
	}
	recs, err := decompress(h.Codec(), batch[segment.BatchHeaderSize:h.Size()], maxDecompressed)
	if err != nil {
		return 0, 0, false, err
	}
	for i := int32(0); i < h.RecordCount && len(recs) > 0; i++ {
		l, m := binary.Varint(recs)
		if m <= 0 || l < 1 || l > int64(len(recs)-m) {
			return 0, 0, false, fmt.Errorf("%w: record %d", ErrInvalidRecord, i)
		}
		rec := recs[m+1 : m+int(l)] // past the attributes byte
		recs = recs[m+int(l):]
		tsDelta, k := binary.Varint(rec)
		if k <= 0 {
			return 0, 0, false, fmt.Errorf("%w: record %d timestamp", ErrInvalidRecord, i)
		}
		offDelta, k2 := binary.Varint(rec[k:])
		if k2 <= 0 {
			return 0, 0, false, fmt.Errorf("%w: record %d offset", ErrInvalidRecord, i)
		}
		if t := h.BaseTimestamp + tsDelta; match(t) {
			return int64(h.BaseOffset) + offDelta, t, true, nil
		}
	}
	return 0, 0, false, nil
}
