package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/sluicemq/sluice/segment"
)

// Errors of the idempotent-producer check, returned by Produce.
var (
	// ErrOutOfOrderSequence: the batch's first sequence is not the one after the producer's
	// last batch, and it is not a retry of one of its last five.
	ErrOutOfOrderSequence = errors.New("partition: out of order sequence number")
	// ErrInvalidProducerEpoch: the batch's producer epoch is older than the producer's
	// current one (a fenced producer).
	ErrInvalidProducerEpoch = errors.New("partition: invalid producer epoch")
)

// producerWindow is how many recent batches per producer are remembered for dedupe.
const producerWindow = 5

// producerBatch is what is remembered of one batch of an idempotent producer.
type producerBatch struct {
	firstSeq, lastSeq int32
	baseOffset        int64
	lastOffset        int64
}

// producerState is one idempotent producer's state in one partition.
type producerState struct {
	epoch int16
	// batches holds the last n batches, oldest first (n <= producerWindow).
	batches [producerWindow]producerBatch
	n       int
}

func (s *producerState) last() *producerBatch {
	if s.n == 0 {
		return nil
	}
	return &s.batches[s.n-1]
}

func (s *producerState) push(b producerBatch) {
	if s.n == producerWindow {
		copy(s.batches[:], s.batches[1:])
		s.n--
	}
	s.batches[s.n] = b
	s.n++
}

// producers is a partition's idempotent-producer table.
type producers map[int64]*producerState

// check decides what to do with a batch from an idempotent producer: dup is the original
// batch when this one is a retry of one of the last five, err rejects it, and otherwise it
// is to be appended and then recorded with record. The rules (Kafka's, for one partition):
//   - unknown producer: any first sequence is accepted (its state may have been lost to
//     retention, as in Kafka since KIP-360);
//   - older epoch: ErrInvalidProducerEpoch;
//   - newer epoch: the first sequence must be 0;
//   - same epoch: a retry of a remembered batch returns it; the first sequence must follow
//     the last batch's; anything else is ErrOutOfOrderSequence.
func (ps producers) check(h *segment.BatchHeader) (dup *producerBatch, err error) {
	st := ps[h.ProducerID]
	if st == nil || st.n == 0 {
		return nil, nil
	}
	switch {
	case h.ProducerEpoch < st.epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, st.epoch)
	case h.ProducerEpoch > st.epoch:
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d starts at sequence %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return nil, nil
	}
	lastSeq := nextSequence(h.BaseSequence, h.RecordCount-1)
	for i := 0; i < st.n; i++ {
		b := &st.batches[i]
		if b.firstSeq == h.BaseSequence && b.lastSeq == lastSeq {
			return b, nil
		}
	}
	if want := nextSequence(st.last().lastSeq, 1); h.BaseSequence != want {
		return nil, fmt.Errorf("%w: producer %d epoch %d: sequence %d, expected %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence, want)
	}
	return nil, nil
}

// record remembers an appended batch of an idempotent producer. It is also how the table
// is rebuilt from the log, so it must not depend on anything but the batch.
func (ps producers) record(h *segment.BatchHeader, baseOffset int64) {
	if h.ProducerID < 0 {
		return
	}
	st := ps[h.ProducerID]
	if st == nil {
		st = &producerState{epoch: h.ProducerEpoch}
		ps[h.ProducerID] = st
	}
	if h.ProducerEpoch != st.epoch {
		*st = producerState{epoch: h.ProducerEpoch}
	}
	st.push(producerBatch{
		firstSeq:   h.BaseSequence,
		lastSeq:    nextSequence(h.BaseSequence, h.RecordCount-1),
		baseOffset: baseOffset,
		lastOffset: baseOffset + int64(h.LastOffsetDelta),
	})
}

// clone deep-copies the table.
func (ps producers) clone() producers {
	out := make(producers, len(ps))
	for id, st := range ps {
		c := *st
		out[id] = &c
	}
	return out
}

// appendTo encodes the table, in producer ID order so the bytes are deterministic:
// count u32, then per producer: id i64, epoch i16, n u8, n x (firstSeq i32, lastSeq i32,
// baseOffset i64, lastOffset i64).
func (ps producers) appendTo(b []byte) []byte {
	ids := make([]int64, 0, len(ps))
	for id := range ps {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		st := ps[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(st.epoch))
		b = append(b, byte(st.n))
		for i := 0; i < st.n; i++ {
			pb := st.batches[i]
			b = binary.BigEndian.AppendUint32(b, uint32(pb.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(pb.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.baseOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.lastOffset))
		}
	}
	return b
}

var errShortProducers = errors.New("truncated producer table")

// decodeProducers reads what appendTo wrote and returns the rest of b.
func decodeProducers(b []byte) (producers, []byte, error) {
	if len(b) < 4 {
		return nil, nil, errShortProducers
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n)*11 > uint64(len(b)) {
		return nil, nil, errShortProducers
	}
	ps := make(producers, n)
	for i := uint32(0); i < n; i++ {
		if len(b) < 11 {
			return nil, nil, errShortProducers
		}
		id := int64(binary.BigEndian.Uint64(b))
		st := &producerState{epoch: int16(binary.BigEndian.Uint16(b[8:]))}
		cnt := int(b[10])
		b = b[11:]
		if cnt > producerWindow || len(b) < cnt*24 {
			return nil, nil, errShortProducers
		}
		for j := 0; j < cnt; j++ {
			st.push(producerBatch{
				firstSeq:   int32(binary.BigEndian.Uint32(b)),
				lastSeq:    int32(binary.BigEndian.Uint32(b[4:])),
				baseOffset: int64(binary.BigEndian.Uint64(b[8:])),
				lastOffset: int64(binary.BigEndian.Uint64(b[16:])),
			})
			b = b[24:]
		}
		ps[id] = st
	}
	return ps, b, nil
}
