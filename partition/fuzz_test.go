package partition

import (
	"testing"

	"github.com/sluicemq/sluice/segment"
)

// FuzzValidateBatch: any bytes are accepted as one well-formed batch or refused; never a
// panic, and an accepted batch's header agrees with its size.
func FuzzValidateBatch(f *testing.F) {
	f.Add(testBatch(3, -1, -1, -1, 1000))
	f.Add(testBatch(1, 5, 0, 7, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ValidateBatch(b)
		if err != nil {
			return
		}
		if h.Size() != int64(len(b)) || h.RecordCount <= 0 || h.LastOffsetDelta != h.RecordCount-1 || h.Magic != 2 {
			t.Fatalf("accepted batch with header %+v for %d bytes", h, len(b))
		}
	})
}

// FuzzDecodeState: snapshots and checkpoints decode or are refused; what decodes encodes
// back to the same bytes.
func FuzzDecodeState(f *testing.F) {
	ps := producers{}
	ps.record(&segment.BatchHeader{ProducerID: 3, ProducerEpoch: 1, BaseSequence: 0, RecordCount: 2, LastOffsetDelta: 1}, 10)
	f.Add(partitionState{nextOffset: 12, epochs: []epochStart{{0, 0}}, producers: ps}.encode())
	f.Add(partitionState{producers: producers{}}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(b)
		if err != nil {
			return
		}
		if got := st.encode(); string(got) != string(b) {
			t.Fatalf("state re-encodes differently")
		}
	})
}
