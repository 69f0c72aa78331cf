package segment_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/segment/segmenttest"
)

func TestFileNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		base segment.Offset
		ext  string
		ok   bool
	}{
		{"00000000000000000000.log", 0, ".log", true},
		{"00000000000000000042.index", 42, ".index", true},
		{"09223372036854775807.timeindex", 1<<63 - 1, ".timeindex", true},
		{"7.log", 0, "", false},
		{"00000000000000000007.log.tmp", 0, "", false},
		{"0000000000000000007a.log", 0, "", false},
		{"-0000000000000000007.log", 0, "", false},
		{"99999999999999999999.log", 0, "", false}, // overflows int64
		{"00000000000000000007.snapshot", 0, "", false},
		{"checkpoint", 0, "", false},
	} {
		base, ext, ok := segment.ParseFileName(tc.name)
		if ok != tc.ok || ok && (base != tc.base || ext != tc.ext) {
			t.Errorf("ParseFileName(%q) = %d %q %v, want %d %q %v", tc.name, base, ext, ok, tc.base, tc.ext, tc.ok)
		}
		if tc.ok && segment.FileName(tc.base, tc.ext) != tc.name {
			t.Errorf("FileName(%d, %q) = %q", tc.base, tc.ext, segment.FileName(tc.base, tc.ext))
		}
	}
}

// TestBatchesAreReal checks the test batches against franz-go's decoder: they are
// what a client sends.
func TestBatchesAreReal(t *testing.T) {
	b := segmenttest.Batch(5, 33, 1000, 1040, 'x')
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if rb.NumRecords != 5 || rb.LastOffsetDelta != 4 || rb.MaxTimestamp != 1040 || rb.Magic != 2 {
		t.Fatalf("decoded %+v", rb)
	}
	recs := rb.Records
	for i := 0; i < 5; i++ {
		var r kmsg.Record
		n, err := readRecord(recs, &r)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if r.OffsetDelta != int32(i) || !bytes.Equal(r.Value, bytes.Repeat([]byte("x"), 33)) {
			t.Fatalf("record %d: %+v", i, r)
		}
		recs = recs[n:]
	}
	if len(recs) != 0 {
		t.Fatalf("%d bytes after the records", len(recs))
	}
}

func readRecord(b []byte, r *kmsg.Record) (int, error) {
	length, n := binary.Varint(b)
	if n <= 0 || int(length) > len(b)-n {
		return 0, errors.New("bad record length")
	}
	return n + int(length), r.ReadFrom(b[:n+int(length)])
}

func TestParseBatchHeader(t *testing.T) {
	good := segmenttest.Batch(3, 10, 5, 9, 0)
	mod := func(f func(b []byte)) []byte { b := slices.Clone(good); f(b); return b }
	be := binary.BigEndian
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"good", good, nil},
		{"header only", good[:segment.BatchHeaderSize], nil},
		{"short", good[:60], segment.ErrInvalidEntry},
		{"empty", nil, segment.ErrInvalidEntry},
		{"magic 1", mod(func(b []byte) { b[segment.BatchMagicPos] = 1 }), segment.ErrInvalidEntry},
		{"length below a header", mod(func(b []byte) { be.PutUint32(b[segment.BatchLengthPos:], 48) }), segment.ErrInvalidEntry},
		{"negative length", mod(func(b []byte) { be.PutUint32(b[segment.BatchLengthPos:], 1<<31) }), segment.ErrInvalidEntry},
		{"negative lastOffsetDelta", mod(func(b []byte) { be.PutUint32(b[segment.BatchLastOffsetDeltaPos:], 1<<31) }), segment.ErrInvalidEntry},
		{"negative record count", mod(func(b []byte) { be.PutUint32(b[segment.BatchRecordCountPos:], 1<<31) }), segment.ErrInvalidEntry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := segment.ParseBatchHeader(tc.b)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("ParseBatchHeader: %v, want %v", err, tc.want)
			}
			if err == nil && (h.LastOffsetDelta != 2 || h.MaxTimestamp != 9 || h.BaseTimestamp != 5 || h.RecordCount != 3 || h.Size() != int64(len(good))) {
				t.Fatalf("decoded %+v", h)
			}
		})
	}
}

func TestCheckBatch(t *testing.T) {
	good := segmenttest.Batch(2, 10, 5, 9, 0)
	flip := func(i int) []byte { b := slices.Clone(good); b[i] ^= 1; return b }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"good", good, nil},
		{"base offset is outside the crc", flip(3), nil},
		{"leader epoch is outside the crc", flip(segment.BatchLeaderEpochPos + 1), nil},
		{"attributes", flip(segment.BatchAttributesPos + 1), segment.ErrCorrupt},
		{"record byte", flip(len(good) - 3), segment.ErrCorrupt},
		{"crc field", flip(segment.BatchCRCPos), segment.ErrCorrupt},
		{"trailing byte", append(slices.Clone(good), 0), segment.ErrInvalidEntry},
		{"missing byte", good[:len(good)-1], segment.ErrInvalidEntry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := segment.CheckBatch(tc.b)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("CheckBatch: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSetLogAppendTime(t *testing.T) {
	b := segmenttest.Batch(3, 10, 5, 9, 0)
	if err := segment.SetLogAppendTime(b, 123456); err != nil {
		t.Fatal(err)
	}
	h, err := segment.CheckBatch(b)
	if err != nil {
		t.Fatalf("CRC after SetLogAppendTime: %v", err)
	}
	if h.MaxTimestamp != 123456 || h.Attributes&segment.AttrLogAppendTime == 0 || h.BaseTimestamp != 5 {
		t.Fatalf("header %+v", h)
	}
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil || rb.MaxTimestamp != 123456 || rb.Attributes&0x08 == 0 {
		t.Fatalf("franz-go reads %+v, %v", rb, err)
	}
	if err := segment.SetLogAppendTime(b[:30], 1); !errors.Is(err, segment.ErrInvalidEntry) {
		t.Fatalf("on a short batch: %v", err)
	}
}

func TestDecodeEntry(t *testing.T) {
	frame := func(off segment.Offset, p []byte) []byte {
		b := make([]byte, segment.EntryHeaderSize, segment.EntryHeaderSize+len(p))
		segment.PutEntryHeader(b, off, p)
		return append(b, p...)
	}
	good := frame(7, []byte("hello"))
	flip := func(i int) []byte { b := slices.Clone(good); b[i] ^= 1; return b }
	for _, tc := range []struct {
		name string
		b    []byte
		off  segment.Offset
		want error
	}{
		{"good", good, 7, nil},
		{"with more after", append(slices.Clone(good), frame(8, nil)...), 7, nil},
		{"empty payload", frame(3, nil), 3, nil},
		{"offset is covered", flip(2), 0, segment.ErrCorrupt},
		{"length past the end", flip(segment.EntryLengthPos), 0, segment.ErrInvalidEntry},
		{"payload", flip(segment.EntryHeaderSize + 1), 0, segment.ErrCorrupt},
		{"crc", flip(segment.EntryCRCPos), 0, segment.ErrCorrupt},
		{"short header", good[:10], 0, segment.ErrInvalidEntry},
		{"short payload", good[:len(good)-1], 0, segment.ErrInvalidEntry},
		{"negative offset", frame(-1, nil), 0, segment.ErrInvalidEntry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, p, n, err := segment.DecodeEntry(tc.b)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("DecodeEntry: %v, want %v", err, tc.want)
			}
			if err == nil && (off != tc.off || n != segment.EntryHeaderSize+len(p)) {
				t.Fatalf("DecodeEntry = %d %q %d", off, p, n)
			}
		})
	}
}

func indexBytes(pairs ...uint32) []byte {
	var b []byte
	for _, p := range pairs {
		b = binary.BigEndian.AppendUint32(b, p)
	}
	return b
}

func timeIndexBytes(pairs ...int64) []byte {
	var b []byte
	for i := 0; i < len(pairs); i += 2 {
		b = binary.BigEndian.AppendUint64(b, uint64(pairs[i]))
		b = binary.BigEndian.AppendUint32(b, uint32(pairs[i+1]))
	}
	return b
}

func TestDecodeIndex(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     []byte
		valid int
		ok    bool
	}{
		{"empty", nil, 0, true},
		{"good", indexBytes(3, 100, 9, 5000), 16, true},
		{"torn entry", indexBytes(3, 100, 9)[:11], 8, false},
		{"offset not increasing", indexBytes(3, 100, 3, 200), 8, false},
		{"position not increasing", indexBytes(3, 100, 4, 100), 8, false},
		{"position zero", indexBytes(0, 0), 0, false},
		{"position past the log", indexBytes(3, 100, 9, 10000), 8, false},
		{"offset past the segment", indexBytes(3, 100, 50, 200), 8, false},
		{"zeros", make([]byte, 16), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			valid, err := segment.DecodeIndex(tc.b, 6000, 50)
			if valid != tc.valid || (err == nil) != tc.ok {
				t.Fatalf("DecodeIndex = %d, %v; want %d, ok %v", valid, err, tc.valid, tc.ok)
			}
			if err != nil && !errors.Is(err, segment.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
		})
	}
}

func TestDecodeTimeIndex(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     []byte
		valid int
		ok    bool
	}{
		{"empty", nil, 0, true},
		{"good", timeIndexBytes(10, 0, 20, 5, 30, 7), 36, true},
		{"torn", timeIndexBytes(10, 0, 20, 5)[:20], 12, false},
		{"timestamp equal", timeIndexBytes(10, 0, 10, 5), 12, false},
		{"timestamp decreasing", timeIndexBytes(10, 0, 5, 5), 12, false},
		{"negative timestamp", timeIndexBytes(-1, 0), 0, false},
		{"offset not increasing", timeIndexBytes(10, 5, 20, 5), 12, false},
		{"offset past the segment", timeIndexBytes(10, 5, 20, 50), 12, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			valid, err := segment.DecodeTimeIndex(tc.b, 50)
			if valid != tc.valid || (err == nil) != tc.ok {
				t.Fatalf("DecodeTimeIndex = %d, %v; want %d, ok %v", valid, err, tc.valid, tc.ok)
			}
		})
	}
}
