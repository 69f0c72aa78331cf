package segment

import (
	"fmt"
	"io"
	"math"
)

// Find returns the position and header of the entry that holds off. It returns
// ErrOutOfRange when off is below Base or at or past Next.
func (s *Segment) Find(off Offset) (int64, EntryInfo, error) {
	size, next := s.extent()
	if off < s.base || off >= next {
		return 0, EntryInfo{}, fmt.Errorf("%w: %d not in segment [%d, %d)", ErrOutOfRange, off, s.base, next)
	}
	if err := s.load(); err != nil {
		return 0, EntryInfo{}, err
	}
	hr := s.headerReader(size)
	defer hr.release()
	return s.find(&hr, off, size)
}

func (s *Segment) find(hr *headerReader, off Offset, size int64) (int64, EntryInfo, error) {
	_, p := s.index.floorOffset(uint32(off-s.base), size)
	for pos := int64(p); pos < size; {
		info, err := hr.at(pos)
		if err != nil {
			return 0, info, err
		}
		if info.Last >= off {
			return pos, info, nil
		}
		pos += info.Size
	}
	return 0, EntryInfo{}, hr.corrupt(size, "offset %d not found below byte %d", off, size)
}

// Extent says which bytes to read for a fetch from off: whole entries, starting with
// the one that holds off, then as many as fit in maxBytes, none with an offset at or
// past upTo. With atLeastOne the first entry is included even when it is larger than
// maxBytes. It returns the byte range [pos, end) and the offset after its last entry;
// an empty range when nothing qualifies (off at or past Next or upTo). An off below
// Base reads from Base.
func (s *Segment) Extent(off Offset, maxBytes int64, upTo Offset, atLeastOne bool) (pos, end int64, next Offset, err error) {
	gen := s.gen.Load()
	defer func() {
		if err == nil && s.gen.Load() != gen {
			err = fmt.Errorf("%s: %w", s.logPath, ErrTruncated)
		}
	}()
	size, segNext := s.extent()
	off = max(off, s.base)
	if off >= segNext || off >= upTo {
		return size, size, segNext, nil
	}
	if err := s.load(); err != nil {
		return 0, 0, 0, err
	}
	hr := s.headerReader(size)
	defer hr.release()
	pos, first, err := s.find(&hr, off, size)
	if err != nil {
		return 0, 0, 0, err
	}
	limit, limitNext := size, segNext
	if upTo < segNext {
		if upTo <= first.Last {
			return pos, pos, first.Base, nil
		}
		upPos, upInfo, err := s.find(&hr, upTo, size)
		if err != nil {
			return 0, 0, 0, err
		}
		limit, limitNext = upPos, upInfo.Base
	}
	if limit-pos <= maxBytes {
		return pos, limit, limitNext, nil
	}
	if first.Size > maxBytes {
		if atLeastOne {
			return pos, pos + first.Size, first.Last + 1, nil
		}
		return pos, pos, first.Base, nil
	}
	// Jump close to pos+maxBytes with the index, then walk entry by entry.
	target := pos + maxBytes
	p := pos + first.Size
	if _, ip := s.index.floorPosition(target); int64(ip) > p {
		p = int64(ip)
	}
	for {
		info, err := hr.at(p)
		if err != nil {
			return 0, 0, 0, err
		}
		if p+info.Size > target {
			return pos, p, info.Base, nil
		}
		p += info.Size
	}
}

// ReadAt reads the .log bytes [pos, pos+len(b)). It returns ErrTruncated when the
// bytes are no longer there; check Generation to know they were not replaced.
func (s *Segment) ReadAt(b []byte, pos int64) (int, error) {
	n, err := s.log.ReadAt(b, pos)
	if n == len(b) {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = ErrTruncated
	}
	return n, fmt.Errorf("read %s at byte %d: %w", s.Path(), pos, err)
}

// ReadEntry returns the entry that holds off: the payload in FormatEntries (its CRC
// checked), the whole batch in FormatKafka.
func (s *Segment) ReadEntry(off Offset) ([]byte, error) {
	pos, info, err := s.Find(off)
	if err != nil {
		return nil, err
	}
	b := make([]byte, info.Size)
	if _, err := s.ReadAt(b, pos); err != nil {
		return nil, err
	}
	if s.o.Format == FormatEntries {
		_, payload, _, err := DecodeEntry(b)
		if err != nil {
			return nil, &CorruptionError{Path: s.Path(), Offset: pos, Err: err}
		}
		return payload, nil
	}
	return b, nil
}

// MaxTimestamp returns the largest maxTimestamp of the segment's entries and the first
// offset that has it, or (-1, -1) when there is none.
func (s *Segment) MaxTimestamp() (int64, Offset, error) {
	if err := s.load(); err != nil {
		return -1, -1, err
	}
	ts, off := s.times.max()
	return ts, off, nil
}

// FindTimestamp returns the base offset and maxTimestamp of the first entry whose
// maxTimestamp is >= ts; ok is false when there is none.
func (s *Segment) FindTimestamp(ts int64) (off Offset, entryTS int64, ok bool, err error) {
	size, next := s.extent()
	if next == s.base {
		return 0, 0, false, nil
	}
	if err := s.load(); err != nil {
		return 0, 0, false, err
	}
	rel, ok := s.times.scanStart(ts, uint32(min(uint64(next-s.base), math.MaxUint32)))
	if !ok {
		return 0, 0, false, nil
	}
	hr := s.headerReader(size)
	defer hr.release()
	pos, _, err := s.find(&hr, s.base+Offset(rel), size)
	if err != nil {
		return 0, 0, false, err
	}
	for pos < size {
		info, err := hr.at(pos)
		if err != nil {
			return 0, 0, false, err
		}
		if info.Last >= next {
			break
		}
		if info.MaxTimestamp >= ts {
			return info.Base, info.MaxTimestamp, true, nil
		}
		pos += info.Size
	}
	return 0, 0, false, nil
}

// TruncateTo removes the entries at or after off. An entry that holds off is removed
// whole, so Next becomes its base offset; off at or below Base empties the segment. The
// truncation is synced. Readers holding bytes past the new end get ErrTruncated.
func (s *Segment) TruncateTo(off Offset) error {
	if s.poisoned.Load() {
		return ErrPoisoned
	}
	next := s.Next()
	if off >= next {
		return nil
	}
	if err := s.load(); err != nil {
		return err
	}
	var pos int64
	newNext := s.base
	if off > s.base {
		p, info, err := s.Find(off)
		if err != nil {
			return err
		}
		pos, newNext = p, info.Base
	}
	if err := s.openIndexFiles(); err != nil {
		return fmt.Errorf("truncate segment %d: %w", s.base, err)
	}
	s.gen.Add(1)
	s.publish(pos, newNext)
	if err := s.log.Truncate(pos); err != nil {
		s.tailDirty.Store(true)
		return fmt.Errorf("truncate segment %d to byte %d: %w", s.base, pos, err)
	}
	s.tailDirty.Store(false)
	s.w.fileEnd = pos
	if err := s.log.Sync(); err != nil {
		s.poisoned.Store(true)
		return fmt.Errorf("truncate segment %d: sync: %w", s.base, err)
	}
	s.synced.Store(min(s.synced.Load(), pos))
	s.syncedNext.Store(min(s.syncedNext.Load(), int64(newNext)))

	kept := s.index.truncatePosition(pos)
	keptTimes := s.times.truncateOffset(uint32(newNext - s.base))
	if kept < s.w.indexFlushed {
		if err := s.w.indexFile.Truncate(int64(kept)); err != nil {
			return fmt.Errorf("truncate index of segment %d: %w", s.base, err)
		}
		s.w.indexFlushed = kept
	}
	if keptTimes < s.w.timeFlush {
		if err := s.w.timeFile.Truncate(int64(keptTimes)); err != nil {
			return fmt.Errorf("truncate time index of segment %d: %w", s.base, err)
		}
		s.w.timeFlush = keptTimes
	}
	// The largest timestamp: the last time-index entry covers the batches up to its
	// own; walk the rest.
	maxTS, maxOff := int64(-1), Offset(-1)
	from := int64(0)
	if ts, rel, ok := s.times.last(); ok {
		maxTS, maxOff = ts, s.base+Offset(rel)
		p, _, err := s.Find(maxOff)
		if err != nil {
			return err
		}
		from = p
	}
	hr := s.headerReader(pos)
	defer hr.release()
	for p := from; p < pos; {
		info, err := hr.at(p)
		if err != nil {
			return err
		}
		if info.MaxTimestamp > maxTS {
			maxTS, maxOff = info.MaxTimestamp, info.Base
		}
		p += info.Size
	}
	s.times.setMax(maxTS, maxOff)
	return s.resumeWriter()
}
