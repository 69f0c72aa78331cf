package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/sluicemq/sluice/segment"
)

// recordSet encodes n records with timestamp deltas 0, 10, 20, ...
func recordSet(n int) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		body := []byte{0}
		body = binary.AppendVarint(body, int64(10*i))
		body = binary.AppendVarint(body, int64(i))
		body = binary.AppendVarint(body, -1)
		body = binary.AppendVarint(body, 3)
		body = append(body, "abc"...)
		body = binary.AppendVarint(body, 0)
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	return recs
}

func compress(t *testing.T, codec int, src []byte) []byte {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch codec {
	case segment.CodecNone:
		return src
	case segment.CodecGzip:
		w = gzip.NewWriter(&buf)
	case segment.CodecLZ4:
		w = lz4.NewWriter(&buf)
	case segment.CodecZstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	case segment.CodecSnappy:
		return s2.EncodeSnappy(nil, src)
	case -segment.CodecSnappy: // xerial framing, two blocks
		out := append([]byte(nil), xerialPrefix...)
		out = append(out, 0, 0, 0, 1, 0, 0, 0, 1)
		half := len(src) / 2
		for _, part := range [][]byte{src[:half], src[half:]} {
			blk := s2.EncodeSnappy(nil, part)
			out = binary.BigEndian.AppendUint32(out, uint32(len(blk)))
			out = append(out, blk...)
		}
		return out
	}
	w.Write(src)
	w.Close()
	return buf.Bytes()
}

func compressedBatch(t *testing.T, codec int, n int, baseOffset, baseTS int64) []byte {
	c := codec
	if c < 0 {
		c = -c
	}
	recs := compress(t, codec, recordSet(n))
	b := make([]byte, segment.BatchHeaderSize, segment.BatchHeaderSize+len(recs))
	binary.BigEndian.PutUint64(b, uint64(baseOffset))
	b[segment.BatchMagicPos] = 2
	binary.BigEndian.PutUint16(b[segment.BatchAttributesPos:], uint16(c))
	binary.BigEndian.PutUint32(b[segment.BatchLastOffsetDeltaPos:], uint32(n-1))
	binary.BigEndian.PutUint64(b[segment.BatchBaseTimestampPos:], uint64(baseTS))
	binary.BigEndian.PutUint64(b[segment.BatchMaxTimestampPos:], uint64(baseTS+int64(10*(n-1))))
	binary.BigEndian.PutUint64(b[segment.BatchProducerIDPos:], ^uint64(0))
	binary.BigEndian.PutUint32(b[segment.BatchRecordCountPos:], uint32(n))
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[segment.BatchLengthPos:], uint32(len(b)-segment.BatchLogOverhead))
	binary.BigEndian.PutUint32(b[segment.BatchCRCPos:], segment.BatchCRC(b))
	return b
}

// The exact record for a timestamp is found inside batches of every codec.
func TestFindRecord(t *testing.T) {
	for name, codec := range map[string]int{"none": segment.CodecNone, "gzip": segment.CodecGzip, "snappy": segment.CodecSnappy,
		"snappy-xerial": -segment.CodecSnappy, "lz4": segment.CodecLZ4, "zstd": segment.CodecZstd} {
		b := compressedBatch(t, codec, 50, 100, 1000)
		if _, err := ValidateBatch(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, tc := range []struct {
			ts     int64
			offset int64
			found  bool
		}{{0, 100, true}, {1000, 100, true}, {1001, 101, true}, {1250, 125, true}, {1490, 149, true}, {1491, 0, false}} {
			off, ts, ok, err := findRecord(b, func(x int64) bool { return x >= tc.ts })
			if err != nil || ok != tc.found || ok && (off != tc.offset || ts < tc.ts) {
				t.Errorf("%s: at %d: offset %d ts %d found %v err %v; want offset %d", name, tc.ts, off, ts, ok, err, tc.offset)
			}
		}
	}
	// Broker-time batches: every record has the max timestamp.
	b := testBatch(5, -1, -1, -1, 10)
	if err := segment.SetLogAppendTime(b, 5000); err != nil {
		t.Fatal(err)
	}
	if off, ts, ok, _ := findRecord(b, func(x int64) bool { return x >= 4000 }); !ok || off != 0 || ts != 5000 {
		t.Errorf("log append time: %d %d %v", off, ts, ok)
	}
}

// A batch that inflates past the bound is refused, not allocated.
func TestDecompressBound(t *testing.T) {
	big := make([]byte, 4<<20)
	for _, codec := range []int{segment.CodecGzip, segment.CodecSnappy, segment.CodecLZ4, segment.CodecZstd} {
		z := compress(t, codec, big)
		if _, err := decompress(codec, z, 1<<20); !errors.Is(err, errDecompressTooLarge) {
			t.Errorf("codec %d: %v, want errDecompressTooLarge", codec, err)
		}
		if out, err := decompress(codec, z, 8<<20); err != nil || len(out) != len(big) {
			t.Errorf("codec %d within the bound: %d bytes, %v", codec, len(out), err)
		}
	}
}
