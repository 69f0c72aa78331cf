package protocol

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// producer drives InitProducerId and Produce by hand.
type producer struct {
	t     *testing.T
	c     *rawConn
	id    int64
	epoch int16
	corr  int32
}

func newProducer(t *testing.T, addr string) *producer {
	t.Helper()
	p := &producer{t: t, c: dialRaw(t, addr)}
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	resp := p.c.roundTrip(req, p.next()).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 || resp.ProducerID < 0 {
		t.Fatalf("init producer id: error %d, id %d", resp.ErrorCode, resp.ProducerID)
	}
	p.id, p.epoch = resp.ProducerID, resp.ProducerEpoch
	return p
}

func (p *producer) next() int32 { p.corr++; return p.corr }

// produceRaw sends one batch to topic/0 and returns the partition response.
func produceRaw(t *testing.T, c *rawConn, corr int32, topic string, batch []byte, acks int16) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = acks
	req.TimeoutMillis = 10_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req, corr).(*kmsg.ProduceResponse)
	return resp.Topics[0].Partitions[0]
}

func (p *producer) send(topic string, seq int32, n int) kmsg.ProduceResponseTopicPartition {
	p.t.Helper()
	values := make([][]byte, n)
	for i := range values {
		values[i] = []byte(fmt.Sprintf("seq-%d", int(seq)+i))
	}
	batch := makeBatch(values, batchOpts{producerID: p.id, producerEpoch: p.epoch, baseSequence: seq})
	return produceRaw(p.t, p.c, p.next(), topic, batch, -1)
}

// Retries of an idempotent producer's batches get their original offsets and are not
// stored twice; a gap in sequences is refused; all of it survives a restart.
func TestIdempotentRetries(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	createTopic(t, ts.addr, "idem", 1, nil)
	p := newProducer(t, ts.addr)

	first := p.send("idem", 0, 3)  // offsets 0-2
	second := p.send("idem", 3, 2) // offsets 3-4
	if first.ErrorCode != 0 || first.BaseOffset != 0 || second.ErrorCode != 0 || second.BaseOffset != 3 {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	// Retry both: same offsets, nothing new stored.
	if r := p.send("idem", 0, 3); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("retry of the first batch: error %d offset %d, want 0 at 0", r.ErrorCode, r.BaseOffset)
	}
	if r := p.send("idem", 3, 2); r.ErrorCode != 0 || r.BaseOffset != 3 {
		t.Fatalf("retry of the second batch: error %d offset %d, want 0 at 3", r.ErrorCode, r.BaseOffset)
	}
	part := openPartition(t, ts, "idem", 0)
	if hw := part.HighWatermark(); hw != 5 {
		t.Fatalf("high watermark %d after retries, want 5", hw)
	}
	// A gap: sequence 7 when 5 is next.
	if r := p.send("idem", 7, 1); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", r.ErrorCode)
	}
	// An older epoch is fenced.
	p.epoch--
	if r := p.send("idem", 5, 1); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("old epoch: error %d, want INVALID_PRODUCER_EPOCH", r.ErrorCode)
	}
	p.epoch++
	if r := p.send("idem", 5, 1); r.ErrorCode != 0 || r.BaseOffset != 5 {
		t.Fatalf("next in sequence: error %d offset %d, want 0 at 5", r.ErrorCode, r.BaseOffset)
	}
	ts.stop()

	// After a restart the producer state is back: a retry still dedupes, a gap is still
	// refused, the next sequence is accepted.
	ts2 := startServer(t, dir)
	p.c = dialRaw(t, ts2.addr)
	if r := p.send("idem", 5, 1); r.ErrorCode != 0 || r.BaseOffset != 5 {
		t.Fatalf("retry after restart: error %d offset %d, want 0 at 5", r.ErrorCode, r.BaseOffset)
	}
	if r := p.send("idem", 3, 2); r.ErrorCode != 0 || r.BaseOffset != 3 {
		t.Fatalf("older retry after restart: error %d offset %d, want 0 at 3", r.ErrorCode, r.BaseOffset)
	}
	if r := p.send("idem", 9, 1); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap after restart: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", r.ErrorCode)
	}
	if r := p.send("idem", 6, 1); r.ErrorCode != 0 || r.BaseOffset != 6 {
		t.Fatalf("next after restart: error %d offset %d, want 0 at 6", r.ErrorCode, r.BaseOffset)
	}
	part2, _ := ts2.parts.Get("idem", 0)
	if hw := part2.HighWatermark(); hw != 7 {
		t.Fatalf("high watermark %d, want 7", hw)
	}
	recs := consumeAll(t, ts2.addr, "idem", 7)
	for i, r := range recs {
		if want := fmt.Sprintf("seq-%d", i); string(r.Value) != want || r.Offset != int64(i) {
			t.Fatalf("offset %d holds %q, want %q", r.Offset, r.Value, want)
		}
	}
}

// Producer state rebuilt from the log when the checkpoint is missing (a crash before any
// was written).
func TestIdempotentStateRebuiltWithoutCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	createTopic(t, ts.addr, "idem2", 1, nil)
	p := newProducer(t, ts.addr)
	for seq := int32(0); seq < 20; seq += 2 {
		if r := p.send("idem2", seq, 2); r.ErrorCode != 0 {
			t.Fatalf("produce seq %d: error %d", seq, r.ErrorCode)
		}
	}
	ts.stop()
	removeCheckpoints(t, dir)
	ts2 := startServer(t, dir)
	p.c = dialRaw(t, ts2.addr)
	if r := p.send("idem2", 18, 2); r.ErrorCode != 0 || r.BaseOffset != 18 {
		t.Fatalf("retry after rebuild: error %d offset %d, want 0 at 18", r.ErrorCode, r.BaseOffset)
	}
	if r := p.send("idem2", 21, 1); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap after rebuild: error %d", r.ErrorCode)
	}
	if r := p.send("idem2", 20, 1); r.ErrorCode != 0 || r.BaseOffset != 20 {
		t.Fatalf("next after rebuild: error %d offset %d, want 0 at 20", r.ErrorCode, r.BaseOffset)
	}
}

// An idempotent producer pipelining five requests at a time (as librdkafka does) gets
// its batches stored in order, and the responses in order.
func TestIdempotentPipelined(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "pipe5", 1, nil)
	p := newProducer(t, ts.addr)
	const n = 50
	var frames []byte
	for i := 0; i < n; i++ {
		b := makeBatch([][]byte{[]byte(fmt.Sprintf("r%d-a", i)), []byte(fmt.Sprintf("r%d-b", i))},
			batchOpts{producerID: p.id, producerEpoch: p.epoch, baseSequence: int32(2 * i)})
		frames = append(frames, produceFrame("pipe5", b, int32(100+i))...)
	}
	p.c.write(frames)
	for i := 0; i < n; i++ {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		p.c.recv(resp, int32(100+i))
		got := resp.Topics[0].Partitions[0]
		if got.ErrorCode != 0 || got.BaseOffset != int64(2*i) {
			t.Fatalf("response %d: error %d offset %d, want offset %d", i, got.ErrorCode, got.BaseOffset, 2*i)
		}
	}
	recs := consumeAll(t, ts.addr, "pipe5", 2*n)
	for i, r := range recs {
		if want := fmt.Sprintf("r%d-%c", i/2, "ab"[i%2]); string(r.Value) != want {
			t.Fatalf("offset %d holds %q, want %q", i, r.Value, want)
		}
	}
}
