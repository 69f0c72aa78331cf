package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// partitionState is what a snapshot or checkpoint carries: enough to rebuild the apply-side
// state at one point of the log.
type partitionState struct {
	nextOffset int64
	epochs     []epochStart
	producers  producers
}

// ErrCorruptState marks a snapshot or checkpoint that fails its checks.
var ErrCorruptState = errors.New("partition: corrupt state")

// stateVersion is the first byte of an encoded state.
const stateVersion = 1

// castagnoli is the CRC-32C table of the state's checksum.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeState encodes the apply-side state at the log end (applyMu held):
//
//	version u8 | crc32c u32 of the rest | nextOffset i64 |
//	epochs u32 count, (epoch i32, start i64)* | producer table (producers.appendTo)
func (p *Partition) encodeState() []byte {
	st := partitionState{nextOffset: int64(p.log.LogEndOffset()), epochs: p.epochs, producers: p.producers}
	return st.encode()
}

func (st partitionState) encode() []byte {
	b := make([]byte, 5, 64)
	b[0] = stateVersion
	b = binary.BigEndian.AppendUint64(b, uint64(st.nextOffset))
	b = binary.BigEndian.AppendUint32(b, uint32(len(st.epochs)))
	for _, e := range st.epochs {
		b = binary.BigEndian.AppendUint32(b, uint32(e.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.start))
	}
	b = st.producers.appendTo(b)
	binary.BigEndian.PutUint32(b[1:], crc32.Checksum(b[5:], castagnoli))
	return b
}

func decodeState(b []byte) (partitionState, error) {
	var st partitionState
	if len(b) < 5+8+4 {
		return st, fmt.Errorf("%w: %d bytes", ErrCorruptState, len(b))
	}
	if b[0] != stateVersion {
		return st, fmt.Errorf("%w: version %d", ErrCorruptState, b[0])
	}
	if crc := crc32.Checksum(b[5:], castagnoli); crc != binary.BigEndian.Uint32(b[1:]) {
		return st, fmt.Errorf("%w: checksum mismatch", ErrCorruptState)
	}
	b = b[5:]
	st.nextOffset = int64(binary.BigEndian.Uint64(b))
	n := binary.BigEndian.Uint32(b[8:])
	b = b[12:]
	if uint64(n)*12 > uint64(len(b)) {
		return st, fmt.Errorf("%w: %d epochs in %d bytes", ErrCorruptState, n, len(b))
	}
	for i := uint32(0); i < n; i++ {
		st.epochs = append(st.epochs, epochStart{
			epoch: int32(binary.BigEndian.Uint32(b)),
			start: int64(binary.BigEndian.Uint64(b[4:])),
		})
		b = b[12:]
	}
	ps, rest, err := decodeProducers(b)
	if err != nil {
		return st, fmt.Errorf("%w: %v", ErrCorruptState, err)
	}
	if len(rest) != 0 {
		return st, fmt.Errorf("%w: %d trailing bytes", ErrCorruptState, len(rest))
	}
	st.producers = ps
	return st, nil
}
