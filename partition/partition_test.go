package partition

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/sluicemq/sluice/replication"
	"github.com/sluicemq/sluice/segment"
)

// testBatch builds an uncompressed RecordBatch v2 with n records.
func testBatch(n int, producerID int64, epoch int16, seq int32, ts int64) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		body := []byte{0}
		body = binary.AppendVarint(body, 0)        // timestamp delta
		body = binary.AppendVarint(body, int64(i)) // offset delta
		body = binary.AppendVarint(body, -1)       // null key
		body = binary.AppendVarint(body, 1)        // value length
		body = append(body, 'v')                   // value
		body = binary.AppendVarint(body, 0)        // headers
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	b := make([]byte, segment.BatchHeaderSize, segment.BatchHeaderSize+len(recs))
	binary.BigEndian.PutUint32(b[segment.BatchLeaderEpochPos:], 0xffffffff)
	b[segment.BatchMagicPos] = 2
	binary.BigEndian.PutUint32(b[segment.BatchLastOffsetDeltaPos:], uint32(n-1))
	binary.BigEndian.PutUint64(b[segment.BatchBaseTimestampPos:], uint64(ts))
	binary.BigEndian.PutUint64(b[segment.BatchMaxTimestampPos:], uint64(ts))
	binary.BigEndian.PutUint64(b[segment.BatchProducerIDPos:], uint64(producerID))
	binary.BigEndian.PutUint16(b[segment.BatchProducerEpochPos:], uint16(epoch))
	binary.BigEndian.PutUint32(b[segment.BatchBaseSequencePos:], uint32(seq))
	binary.BigEndian.PutUint32(b[segment.BatchRecordCountPos:], uint32(n))
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[segment.BatchLengthPos:], uint32(len(b)-segment.BatchLogOverhead))
	binary.BigEndian.PutUint32(b[segment.BatchCRCPos:], segment.BatchCRC(b))
	return b
}

func recrc(b []byte) []byte {
	binary.BigEndian.PutUint32(b[segment.BatchCRCPos:], segment.BatchCRC(b))
	return b
}

func TestValidateBatch(t *testing.T) {
	good := testBatch(3, -1, -1, -1, 1000)
	mut := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name  string
		batch []byte
		want  error
	}{
		{"good", good, nil},
		{"short", good[:30], ErrCorruptBatch},
		{"truncated", good[:len(good)-1], ErrCorruptBatch},
		{"trailing bytes", append(append([]byte(nil), good...), 0), ErrCorruptBatch},
		{"bad crc", mut(func(b []byte) []byte { b[70] ^= 1; return b }), ErrCorruptBatch},
		{"magic 0", mut(func(b []byte) []byte { b[segment.BatchMagicPos] = 0; return b }), ErrUnsupportedMagic},
		{"codec 5", mut(func(b []byte) []byte { b[segment.BatchAttributesPos+1] |= 5; return recrc(b) }), ErrUnsupportedCompression},
		{"transactional", mut(func(b []byte) []byte { b[segment.BatchAttributesPos+1] |= segment.AttrTransactional; return recrc(b) }), ErrInvalidRecord},
		{"zero records", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[segment.BatchRecordCountPos:], 0)
			return recrc(b)
		}), ErrInvalidRecord},
		{"count mismatch", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[segment.BatchRecordCountPos:], 4)
			binary.BigEndian.PutUint32(b[segment.BatchLastOffsetDeltaPos:], 3)
			return recrc(b)
		}), ErrInvalidRecord},
		{"negative lastOffsetDelta", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[segment.BatchLastOffsetDeltaPos:], 0xffffffff)
			return recrc(b)
		}), ErrInvalidRecord},
		{"length below a header", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[segment.BatchLengthPos:], segment.BatchHeaderSize-segment.BatchLogOverhead-1)
			return b
		}), ErrCorruptBatch},
		{"offset delta", mut(func(b []byte) []byte { b[segment.BatchHeaderSize+3] = 8; return recrc(b) }), ErrInvalidRecord},
		{"negative length", mut(func(b []byte) []byte { b[segment.BatchHeaderSize] = 1; return recrc(b) }), ErrInvalidRecord},
	}
	for _, tc := range cases {
		_, err := ValidateBatch(tc.batch)
		if (tc.want == nil) != (err == nil) || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Compressed record sets are not walked: a codec bit with plain records passes.
	if _, err := ValidateBatch(mut(func(b []byte) []byte { b[segment.BatchAttributesPos+1] |= segment.CodecGzip; return recrc(b) })); err != nil {
		t.Errorf("compressed batch: %v", err)
	}
}

func TestProducerCheck(t *testing.T) {
	ps := producers{}
	hdr := func(epoch int16, seq int32, n int32) *segment.BatchHeader {
		return &segment.BatchHeader{ProducerID: 7, ProducerEpoch: epoch, BaseSequence: seq, RecordCount: n, LastOffsetDelta: n - 1}
	}
	off := int64(0)
	accept := func(h *segment.BatchHeader) {
		t.Helper()
		dup, err := ps.check(h)
		if err != nil || dup != nil {
			t.Fatalf("batch epoch %d seq %d: dup %v err %v", h.ProducerEpoch, h.BaseSequence, dup, err)
		}
		ps.record(h, off)
		off += int64(h.RecordCount)
	}
	accept(hdr(0, 5, 2)) // unknown producer: any first sequence
	accept(hdr(0, 7, 3))
	for i := 0; i < 5; i++ {
		accept(hdr(0, 10+int32(i), 1))
	}
	// Retries of the last five are duplicates with their offsets; older ones are not.
	if dup, err := ps.check(hdr(0, 14, 1)); err != nil || dup == nil || dup.baseOffset != 9 {
		t.Fatalf("retry of the last batch: %+v %v", dup, err)
	}
	if dup, err := ps.check(hdr(0, 10, 1)); err != nil || dup == nil || dup.baseOffset != 5 {
		t.Fatalf("retry of the fifth-last batch: %+v %v", dup, err)
	}
	if _, err := ps.check(hdr(0, 7, 3)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("retry older than the window: %v", err)
	}
	if _, err := ps.check(hdr(0, 16, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := ps.check(hdr(-1+0, 15, 1)); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("older epoch: %v", err)
	}
	if _, err := ps.check(hdr(1, 3, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("new epoch not at 0: %v", err)
	}
	accept(hdr(1, 0, 1))
	// Sequences wrap at MaxInt32.
	ps2 := producers{}
	h := hdr(0, maxInt32-1, 2)
	ps2.record(h, 0)
	if dup, err := ps2.check(hdr(0, 0, 1)); err != nil || dup != nil {
		t.Fatalf("after wrap: %v %v", dup, err)
	}

	// The table survives encoding.
	st := partitionState{nextOffset: 42, epochs: []epochStart{{0, 0}, {3, 20}}, producers: ps}
	got, err := decodeState(st.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.nextOffset != 42 || len(got.epochs) != 2 || got.epochs[1] != (epochStart{3, 20}) || len(got.producers) != 1 {
		t.Fatalf("decoded state %+v", got)
	}
	if *got.producers[7] != *ps[7] {
		t.Fatalf("producer state %+v, want %+v", *got.producers[7], *ps[7])
	}
	enc := st.encode()
	enc[len(enc)-1] ^= 1
	if _, err := decodeState(enc); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("corrupt state: %v", err)
	}
	for n := 0; n < len(enc); n++ {
		if _, err := decodeState(st.encode()[:n]); err == nil {
			t.Fatalf("truncated state of %d bytes decoded", n)
		}
	}
}

func TestConfig(t *testing.T) {
	c := DefaultConfig()
	if c.RetentionMs != 604800000 || c.MaxMessageBytes != 1048588 || c.SegmentBytes != 1<<30 || c.LogAppendTime || c.CleanupPolicy != "delete" {
		t.Fatalf("defaults %+v", c)
	}
	c, err := ParseConfig(map[string]string{"retention.ms": "-1", "message.timestamp.type": "LogAppendTime"})
	if err != nil || c.Retention() != 0 || !c.LogAppendTime {
		t.Fatalf("parsed %+v %v", c, err)
	}
	for name, value := range map[string]string{
		"retention.ms": "x", "segment.bytes": "10", "max.message.bytes": "-5", "cleanup.policy": "keep",
		"message.timestamp.type": "Now", "no.such": "1", "segment.bytes ": "1",
	} {
		if err := ValidateConfig(name, value); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s=%s: %v", name, value, err)
		}
	}
}

// A partition on a real log under the local replicator: offsets, dedupe, high watermark,
// epochs, waiters, checkpoint and rebuild.
func TestPartitionLifecycle(t *testing.T) {
	dir := t.TempDir()
	repl := replication.NewLocalReplicator(replication.LocalConfig{})
	defer repl.Close()
	open := func() *Partition {
		p, err := Open(OpenConfig{Dir: dir, Topic: "t", Partition: 0, Config: DefaultConfig(), Replicator: repl})
		if err != nil {
			t.Fatal(err)
		}
		if err := repl.Register(p.Key(), p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	ctx := context.Background()
	w := NewWaiter()
	p.AddWaiter(w, p.HighWatermark())
	r1, err := p.Produce(ctx, testBatch(3, 9, 0, 0, 100))
	if err != nil || r1.BaseOffset != 0 {
		t.Fatalf("produce: %+v %v", r1, err)
	}
	select {
	case <-w.C:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken by the high watermark moving")
	}
	buf := append([]byte{0}, testBatch(2, 9, 0, 3, 200)...)
	r2, err := p.ProduceInPlace(ctx, buf)
	if err != nil || r2.BaseOffset != 3 || p.HighWatermark() != 5 {
		t.Fatalf("produce in place: %+v %v, hw %d", r2, err, p.HighWatermark())
	}
	if dup, err := p.Produce(ctx, testBatch(3, 9, 0, 0, 100)); err != nil || !dup.Duplicate || dup.BaseOffset != 0 {
		t.Fatalf("retry: %+v %v", dup, err)
	}
	rr, err := p.Read(0, 1<<20)
	if err != nil || rr == nil || rr.Len() == 0 {
		t.Fatalf("read: %v", err)
	}
	rr.Release()
	if rr, err := p.Read(5, 1<<20); err != nil || rr != nil {
		t.Fatalf("read at the high watermark: %v %v", rr, err)
	}
	if _, err := p.Read(6, 1<<20); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past the end: %v", err)
	}
	if off, ts, ok, err := p.OffsetForTimestamp(150); err != nil || !ok || off != 3 || ts != 200 {
		t.Fatalf("offset for timestamp 150: %d %d %v %v", off, ts, ok, err)
	}
	if e, end := p.EndOffsetForEpoch(0); e != 0 || end != 5 {
		t.Fatalf("end offset for epoch 0: %d %d", e, end)
	}
	if low, err := p.DeleteRecords(ctx, 3); err != nil || low != 3 || p.LogStartOffset() != 3 {
		t.Fatalf("delete records: %d %v", low, err)
	}
	repl.Unregister(p.Key())
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Produce(ctx, testBatch(1, -1, -1, -1, 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("produce after close: %v", err)
	}

	p = open()
	if p.HighWatermark() != 5 || p.LogEndOffset() != 5 {
		t.Fatalf("after reopen: hw %d leo %d", p.HighWatermark(), p.LogEndOffset())
	}
	if dup, err := p.Produce(ctx, testBatch(2, 9, 0, 3, 200)); err != nil || !dup.Duplicate || dup.BaseOffset != 3 {
		t.Fatalf("retry after reopen: %+v %v", dup, err)
	}
	// Snapshot, more writes, restore: the log is cut back and the producer state too.
	snap, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Produce(ctx, testBatch(1, 9, 0, 5, 300)); err != nil {
		t.Fatal(err)
	}
	if err := p.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if p.LogEndOffset() != 5 || p.HighWatermark() != 5 {
		t.Fatalf("after restore: leo %d hw %d", p.LogEndOffset(), p.HighWatermark())
	}
	if r, err := p.Produce(ctx, testBatch(1, 9, 0, 5, 300)); err != nil || r.Duplicate || r.BaseOffset != 5 {
		t.Fatalf("the batch after the snapshot again: %+v %v", r, err)
	}
	repl.Unregister(p.Key())
	p.Close()
}
