package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The frame of a FormatEntries entry: offset int64 @0, length uint32 @8 (payload bytes),
// crc uint32 @12 (CRC-32C of bytes 0..11 then the payload), payload @16. Big-endian.
const (
	EntryOffsetPos  = 0
	EntryLengthPos  = 8
	EntryCRCPos     = 12
	EntryHeaderSize = 16
)

// EntryHeader is the decoded frame header of a FormatEntries entry.
type EntryHeader struct {
	Offset Offset
	Length uint32 // payload bytes
	CRC    uint32
}

// Size returns the bytes the framed entry takes.
func (h *EntryHeader) Size() int64 { return EntryHeaderSize + int64(h.Length) }

// PutEntryHeader writes the frame header of payload at offset off into dst, which must
// hold EntryHeaderSize bytes.
func PutEntryHeader(dst []byte, off Offset, payload []byte) {
	be := binary.BigEndian
	be.PutUint64(dst[EntryOffsetPos:], uint64(off))
	be.PutUint32(dst[EntryLengthPos:], uint32(len(payload)))
	crc := crc32.Update(0, castagnoli, dst[:EntryCRCPos])
	crc = crc32.Update(crc, castagnoli, payload)
	be.PutUint32(dst[EntryCRCPos:], crc)
}

// ParseEntryHeader decodes the first EntryHeaderSize bytes of b. It returns an error
// matching ErrInvalidEntry when b is too short or the offset is negative; it does not
// check the CRC.
func ParseEntryHeader(b []byte) (EntryHeader, error) {
	var h EntryHeader
	if len(b) < EntryHeaderSize {
		return h, fmt.Errorf("%w: %d bytes, an entry header needs %d", ErrInvalidEntry, len(b), EntryHeaderSize)
	}
	be := binary.BigEndian
	h.Offset = Offset(be.Uint64(b[EntryOffsetPos:]))
	h.Length = be.Uint32(b[EntryLengthPos:])
	h.CRC = be.Uint32(b[EntryCRCPos:])
	if h.Offset < 0 {
		return h, fmt.Errorf("%w: negative entry offset %d", ErrInvalidEntry, h.Offset)
	}
	return h, nil
}

// DecodeEntry decodes the framed entry at the start of b and checks its CRC. It returns
// the entry's offset, its payload (a sub-slice of b) and the bytes it took. Errors match
// ErrInvalidEntry (short or malformed) or ErrCorrupt (bad CRC).
func DecodeEntry(b []byte) (off Offset, payload []byte, n int, err error) {
	h, err := ParseEntryHeader(b)
	if err != nil {
		return 0, nil, 0, err
	}
	if h.Size() > int64(len(b)) {
		return 0, nil, 0, fmt.Errorf("%w: entry of %d bytes, %d left", ErrInvalidEntry, h.Size(), len(b))
	}
	payload = b[EntryHeaderSize:h.Size()]
	crc := crc32.Update(0, castagnoli, b[:EntryCRCPos])
	if crc = crc32.Update(crc, castagnoli, payload); crc != h.CRC {
		return 0, nil, 0, fmt.Errorf("%w: entry crc %#08x, computed %#08x", ErrCorrupt, h.CRC, crc)
	}
	return h.Offset, payload, int(h.Size()), nil
}

// EntryInfo describes one stored entry of either format.
type EntryInfo struct {
	Base         Offset // first offset
	Last         Offset // last offset; Base in FormatEntries
	Size         int64  // bytes on disk, header included
	MaxTimestamp int64  // the batch's maxTimestamp; -1 in FormatEntries
	CRC          uint32
}

// HeaderSize returns the bytes of an entry's header in format f.
func (f Format) HeaderSize() int {
	if f == FormatEntries {
		return EntryHeaderSize
	}
	return BatchHeaderSize
}

// ParseHeader decodes the header of an entry of format f at the start of b (at least
// f.HeaderSize() bytes).
func (f Format) ParseHeader(b []byte) (EntryInfo, error) {
	if f == FormatEntries {
		h, err := ParseEntryHeader(b)
		if err != nil {
			return EntryInfo{}, err
		}
		return EntryInfo{Base: h.Offset, Last: h.Offset, Size: h.Size(), MaxTimestamp: -1, CRC: h.CRC}, nil
	}
	h, err := ParseBatchHeader(b)
	if err != nil {
		return EntryInfo{}, err
	}
	return EntryInfo{Base: h.BaseOffset, Last: h.LastOffset(), Size: h.Size(), MaxTimestamp: h.MaxTimestamp, CRC: h.CRC}, nil
}

// crcSkip returns the bytes of an entry its CRC does not cover: [skipFrom, skipTo).
// FormatEntries covers bytes 0..11 and 16..; FormatKafka covers 21...
func (f Format) crcSkip() (skipFrom, skipTo int64) {
	if f == FormatEntries {
		return EntryCRCPos, EntryHeaderSize
	}
	return 0, BatchAttributesPos
}

// updateCRC adds chunk, which sits at byte pos of its entry, to crc, skipping the bytes
// the format's CRC does not cover.
func (f Format) updateCRC(crc uint32, chunk []byte, pos int64) uint32 {
	skipFrom, skipTo := f.crcSkip()
	end := pos + int64(len(chunk))
	if pos < skipFrom {
		crc = crc32.Update(crc, castagnoli, chunk[:min(end, skipFrom)-pos])
	}
	if end > skipTo {
		start := max(pos, skipTo)
		crc = crc32.Update(crc, castagnoli, chunk[start-pos:])
	}
	return crc
}
