package group

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/sluicemq/sluice/segment"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestBatchRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		records []record
	}{
		{"one", []record{{key: []byte("k"), value: []byte("v")}}},
		{"tombstone", []record{{key: []byte("k")}}},
		{"empty value is not a tombstone", []record{{key: []byte("k"), value: []byte{}}}},
		{"many", func() []record {
			var rs []record
			for i := range 300 {
				rs = append(rs, record{key: bytes.Repeat([]byte{byte(i)}, i), value: bytes.Repeat([]byte{1}, 2*i)})
			}
			return rs
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildBatch(1234, tt.records)
			batches, rest, err := readBatches(b)
			if err != nil || rest != len(b) || len(batches) != 1 {
				t.Fatalf("readBatches: %d batches, rest %d of %d, err %v", len(batches), rest, len(b), err)
			}
			got := batches[0]
			if got.nextOffset() != int64(len(tt.records)) {
				t.Fatalf("nextOffset %d, want %d", got.nextOffset(), len(tt.records))
			}
			if len(got.records) != len(tt.records) {
				t.Fatalf("%d records, want %d", len(got.records), len(tt.records))
			}
			for i, r := range got.records {
				w := tt.records[i]
				if !bytes.Equal(r.key, w.key) || !bytes.Equal(r.value, w.value) || (r.value == nil) != (w.value == nil) {
					t.Fatalf("record %d: got %q/%q, want %q/%q", i, r.key, r.value, w.key, w.value)
				}
			}
		})
	}
}

// TestBatchReadByFranzGo checks the builder against an independent decoder: kmsg's
// RecordBatch and franz-go's record parsing, which real consumers of __consumer_offsets use.
func TestBatchReadByFranzGo(t *testing.T) {
	b := buildBatch(1700000000123, []record{{key: []byte("k1"), value: []byte("v1")}, {key: []byte("k2")}})
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if rb.Magic != 2 || rb.NumRecords != 2 || rb.LastOffsetDelta != 1 || rb.FirstTimestamp != 1700000000123 || rb.ProducerID != -1 {
		t.Fatalf("header: %+v", rb)
	}
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: Topic, Partition: 0},
		&kmsg.FetchResponseTopicPartition{RecordBatches: b, HighWatermark: 2}, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil || len(fp.Records) != 2 {
		t.Fatalf("franz-go read %d records, err %v", len(fp.Records), fp.Err)
	}
	if string(fp.Records[0].Key) != "k1" || string(fp.Records[0].Value) != "v1" || fp.Records[1].Value != nil {
		t.Fatalf("records: %+v %+v", fp.Records[0], fp.Records[1])
	}
}

func TestReadBatchesErrors(t *testing.T) {
	good := buildBatch(1, []record{{key: []byte("k"), value: []byte("v")}})
	corrupt := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	tests := []struct {
		name     string
		buf      []byte
		wantErr  bool
		wantRest int
		batches  int
	}{
		{"whole", good, false, len(good), 1},
		{"two", append(append([]byte(nil), good...), good...), false, 2 * len(good), 2},
		{"torn tail", append(append([]byte(nil), good...), good[:20]...), false, len(good), 1},
		{"only a prefix", good[:11], false, 0, 0},
		{"bad crc", corrupt(func(b []byte) { b[len(b)-1] ^= 1 }), true, 0, 0},
		{"bad magic", corrupt(func(b []byte) { b[segment.BatchMagicPos] = 1 }), true, 0, 0},
		{"short length", corrupt(func(b []byte) { binary.BigEndian.PutUint32(b[segment.BatchLengthPos:], 10) }), true, 0, 0},
		{"compressed garbage", corrupt(func(b []byte) {
			b[segment.BatchAttributesPos+1] |= segment.CodecGzip
			binary.BigEndian.PutUint32(b[segment.BatchCRCPos:], segment.BatchCRC(b))
		}), true, 0, 0},
		{"record count too high", corrupt(func(b []byte) {
			binary.BigEndian.PutUint32(b[segment.BatchRecordCountPos:], 2)
			binary.BigEndian.PutUint32(b[segment.BatchCRCPos:], segment.BatchCRC(b))
		}), true, 0, 0},
		{"control batch", corrupt(func(b []byte) {
			b[segment.BatchAttributesPos+1] |= segment.AttrControl
			binary.BigEndian.PutUint32(b[segment.BatchCRCPos:], segment.BatchCRC(b))
		}), false, len(good), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, rest, err := readBatches(tt.buf)
			if tt.wantErr {
				if !errors.Is(err, ErrCorruptBatch) {
					t.Fatalf("err %v, want ErrCorruptBatch", err)
				}
				return
			}
			if err != nil || rest != tt.wantRest || len(batches) != tt.batches {
				t.Fatalf("got %d batches rest %d err %v; want %d batches rest %d", len(batches), rest, err, tt.batches, tt.wantRest)
			}
		})
	}
}

// TestReadCompressedBatch reads a batch compressed by franz-go's producer code, as a
// batch in __consumer_offsets written by another tool could be.
func TestReadCompressedBatch(t *testing.T) {
	plain := buildBatch(5, []record{{key: []byte("k1"), value: []byte("v1")}, {key: []byte("k2")}})
	comp, _ := kgo.DefaultCompressor(kgo.GzipCompression())
	body, _ := comp.Compress(&bytes.Buffer{}, plain[segment.BatchHeaderSize:])
	b := append(append([]byte(nil), plain[:segment.BatchHeaderSize]...), body...)
	binary.BigEndian.PutUint16(b[segment.BatchAttributesPos:], segment.CodecGzip)
	binary.BigEndian.PutUint32(b[segment.BatchLengthPos:], uint32(len(b)-segment.BatchLogOverhead))
	binary.BigEndian.PutUint32(b[segment.BatchCRCPos:], segment.BatchCRC(b))
	batches, _, err := readBatches(b)
	if err != nil || len(batches) != 1 || len(batches[0].records) != 2 {
		t.Fatalf("got %+v, %v", batches, err)
	}
	if r := batches[0].records; string(r[0].value) != "v1" || r[1].value != nil {
		t.Fatalf("records %+v", r)
	}
}

// FuzzReadBatches: any bytes decode or fail with ErrCorruptBatch; never a panic, and what
// decodes encodes back to the same records.
func FuzzReadBatches(f *testing.F) {
	f.Add(buildBatch(1, []record{{key: []byte("k"), value: []byte("v")}}))
	f.Add(buildBatch(1, []record{{key: offsetTombstone("g", "t", 0).key}}))
	f.Add(buildBatch(1, []record{offsetCommitRecord("g", "t", 3, offsetEntry{offset: 5, leaderEpoch: 1, metadata: "m", commitTimestamp: 9})}))
	f.Fuzz(func(t *testing.T, buf []byte) {
		batches, rest, err := readBatches(buf)
		if err != nil && !errors.Is(err, ErrCorruptBatch) {
			t.Fatalf("error not ErrCorruptBatch: %v", err)
		}
		if rest < 0 || rest > len(buf) {
			t.Fatalf("rest %d of %d", rest, len(buf))
		}
		for _, b := range batches {
			for _, r := range b.records {
				rec, err := decodeOffsetsRecord(r)
				if err != nil && !errors.Is(err, ErrCorruptRecord) {
					t.Fatalf("record error not ErrCorruptRecord: %v", err)
				}
				_ = rec
			}
		}
	})
}

// batchEnd reads the offset after a stored batch from its header alone, so loading can
// step over a batch whose records do not decode.
func TestBatchEnd(t *testing.T) {
	b := buildBatch(1, []record{{key: []byte("a")}, {key: []byte("b")}, {key: []byte("c")}})
	binary.BigEndian.PutUint64(b[segment.BatchBaseOffsetPos:], 40)
	b[len(b)-1] ^= 0xff // records and CRC need not be intact
	if next, ok := batchEnd(b); !ok || next != 43 {
		t.Fatalf("batchEnd = %d, %v; want 43, true", next, ok)
	}
	if _, ok := batchEnd(b[:segment.BatchHeaderSize-1]); ok {
		t.Fatal("batchEnd of a partial header succeeded")
	}
}
