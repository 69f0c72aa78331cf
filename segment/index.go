package segment

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
)

// Index entry sizes. An .index entry is relativeOffset uint32, position uint32; a
// .timeindex entry is timestamp int64, relativeOffset uint32. Big-endian.
const (
	IndexEntrySize     = 8
	TimeIndexEntrySize = 12
)

// offsetIndex is the in-memory copy of a segment's .index: sparse (relative offset,
// position) pairs, both strictly increasing. The writer appends; readers search.
type offsetIndex struct {
	mu  sync.RWMutex
	buf []byte // whole entries
	// skip is the bytes of leading entries that are in the file but not yet in memory
	// (a segment resumed without reading its index); buf follows them. Lookups run only
	// once it is 0.
	skip int
}

func (x *offsetIndex) entry(i int) (rel, pos uint32) {
	e := x.buf[i*IndexEntrySize:]
	return binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:])
}

func (x *offsetIndex) len() int { return len(x.buf) / IndexEntrySize }

// floorOffset returns the last entry with relative offset <= rel and position < limit,
// or (0, 0) when there is none.
func (x *offsetIndex) floorOffset(rel uint32, limit int64) (uint32, uint32) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i := sort.Search(x.len(), func(i int) bool {
		r, p := x.entry(i)
		return r > rel || int64(p) >= limit
	})
	if i == 0 {
		return 0, 0
	}
	return x.entry(i - 1)
}

// floorPosition returns the last entry with position <= pos, or (0, 0).
func (x *offsetIndex) floorPosition(pos int64) (uint32, uint32) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i := sort.Search(x.len(), func(i int) bool {
		_, p := x.entry(i)
		return int64(p) > pos
	})
	if i == 0 {
		return 0, 0
	}
	return x.entry(i - 1)
}

func (x *offsetIndex) last() (rel, pos uint32, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.len() == 0 {
		return 0, 0, false
	}
	rel, pos = x.entry(x.len() - 1)
	return rel, pos, true
}

func (x *offsetIndex) append(rel, pos uint32) {
	var e [IndexEntrySize]byte
	binary.BigEndian.PutUint32(e[:], rel)
	binary.BigEndian.PutUint32(e[4:], pos)
	x.mu.Lock()
	x.buf = append(x.buf, e[:]...)
	x.mu.Unlock()
}

// truncatePosition drops the entries at or past pos and returns the bytes kept.
func (x *offsetIndex) truncatePosition(pos int64) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := sort.Search(x.len(), func(i int) bool {
		_, p := x.entry(i)
		return int64(p) >= pos
	})
	x.buf = x.buf[:i*IndexEntrySize]
	return len(x.buf)
}

func (x *offsetIndex) bytes() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.skip + len(x.buf)
}

// tail returns the entries from byte from of the whole index (file and memory).
func (x *offsetIndex) tail(from int) []byte {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.buf[from-x.skip:]
}

// prepend puts the skipped leading entries in front of what is in memory.
func (x *offsetIndex) prepend(head []byte) {
	x.mu.Lock()
	x.buf = append(head[:len(head):len(head)], x.buf...)
	x.skip = 0
	x.mu.Unlock()
}

// timeIndex is the in-memory copy of a segment's .timeindex: (timestamp, relative
// offset) pairs, both strictly increasing. An entry (T, O) says that T is the largest
// maxTimestamp of the batches up to and including the one at O, and that O is the first
// batch to reach it. maxTS and maxOffset are the same for the whole segment so far.
type timeIndex struct {
	mu        sync.RWMutex
	buf       []byte
	skip      int    // as offsetIndex.skip
	maxTS     int64  // -1: none
	maxOffset Offset // -1: none
}

func (x *timeIndex) entry(i int) (ts int64, rel uint32) {
	e := x.buf[i*TimeIndexEntrySize:]
	return int64(binary.BigEndian.Uint64(e)), binary.BigEndian.Uint32(e[8:])
}

func (x *timeIndex) len() int { return len(x.buf) / TimeIndexEntrySize }

func (x *timeIndex) last() (ts int64, rel uint32, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.len() == 0 {
		return 0, 0, false
	}
	ts, rel = x.entry(x.len() - 1)
	return ts, rel, true
}

func (x *timeIndex) append(ts int64, rel uint32) {
	var e [TimeIndexEntrySize]byte
	binary.BigEndian.PutUint64(e[:], uint64(ts))
	binary.BigEndian.PutUint32(e[8:], rel)
	x.mu.Lock()
	x.buf = append(x.buf, e[:]...)
	x.mu.Unlock()
}

// scanStart returns the relative offset from which to scan for the first batch with
// maxTimestamp >= ts: the entry before the first entry with timestamp >= ts (or the
// segment's start), ignoring entries at or past relLimit. ok is false when no batch of
// the segment can qualify.
func (x *timeIndex) scanStart(ts int64, relLimit uint32) (rel uint32, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.maxTS < ts {
		return 0, false
	}
	n := sort.Search(x.len(), func(i int) bool {
		_, r := x.entry(i)
		return r >= relLimit
	})
	i := sort.Search(n, func(i int) bool {
		t, _ := x.entry(i)
		return t >= ts
	})
	if i == 0 {
		return 0, true
	}
	_, rel = x.entry(i - 1)
	return rel, true
}

// truncateOffset drops the entries at or past rel and returns the bytes kept.
func (x *timeIndex) truncateOffset(rel uint32) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := sort.Search(x.len(), func(i int) bool {
		_, r := x.entry(i)
		return r >= rel
	})
	x.buf = x.buf[:i*TimeIndexEntrySize]
	return len(x.buf)
}

func (x *timeIndex) bytes() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.skip + len(x.buf)
}

func (x *timeIndex) tail(from int) []byte {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.buf[from-x.skip:]
}

func (x *timeIndex) prepend(head []byte) {
	x.mu.Lock()
	x.buf = append(head[:len(head):len(head)], x.buf...)
	x.skip = 0
	x.mu.Unlock()
}

func (x *timeIndex) setMax(ts int64, off Offset) {
	x.mu.Lock()
	x.maxTS, x.maxOffset = ts, off
	x.mu.Unlock()
}

func (x *timeIndex) max() (int64, Offset) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.maxTS, x.maxOffset
}

// DecodeIndex checks the bytes of an .index file for a segment of logSize bytes holding
// relative offsets below relEnd, and returns how many leading bytes are whole, valid
// entries: relative offsets and positions strictly increasing, positions inside the log
// (and above 0: position 0 needs no entry). err is nil when all of b is valid, and a
// *CorruptionError (position in the index file) at the first bad byte otherwise.
func DecodeIndex(b []byte, logSize int64, relEnd uint64) (valid int, err error) {
	var lastRel, lastPos int64 = -1, 0
	for valid+IndexEntrySize <= len(b) {
		rel := int64(binary.BigEndian.Uint32(b[valid:]))
		pos := int64(binary.BigEndian.Uint32(b[valid+4:]))
		switch {
		case rel <= lastRel:
			return valid, indexErr(valid, "relative offset %d not above %d", rel, lastRel)
		case uint64(rel) >= relEnd:
			return valid, indexErr(valid, "relative offset %d past the segment's end %d", rel, relEnd)
		case pos <= lastPos:
			return valid, indexErr(valid, "position %d not above %d", pos, lastPos)
		case pos >= logSize:
			return valid, indexErr(valid, "position %d past the log's %d bytes", pos, logSize)
		}
		lastRel, lastPos = rel, pos
		valid += IndexEntrySize
	}
	if valid != len(b) {
		return valid, indexErr(valid, "%d trailing bytes", len(b)-valid)
	}
	return valid, nil
}

// DecodeTimeIndex checks the bytes of a .timeindex file for a segment holding relative
// offsets below relEnd, and returns how many leading bytes are valid entries: timestamps
// (never negative) and relative offsets strictly increasing. err is nil when all of b is valid, and a
// *CorruptionError at the first bad byte otherwise.
func DecodeTimeIndex(b []byte, relEnd uint64) (valid int, err error) {
	var lastRel, lastTS int64 = -1, -1
	for valid+TimeIndexEntrySize <= len(b) {
		ts := int64(binary.BigEndian.Uint64(b[valid:]))
		rel := int64(binary.BigEndian.Uint32(b[valid+8:]))
		switch {
		case ts <= lastTS:
			return valid, indexErr(valid, "timestamp %d not above %d", ts, lastTS)
		case rel <= lastRel:
			return valid, indexErr(valid, "relative offset %d not above %d", rel, lastRel)
		case uint64(rel) >= relEnd:
			return valid, indexErr(valid, "relative offset %d past the segment's end %d", rel, relEnd)
		}
		lastTS, lastRel = ts, rel
		valid += TimeIndexEntrySize
	}
	if valid != len(b) {
		return valid, indexErr(valid, "%d trailing bytes", len(b)-valid)
	}
	return valid, nil
}

func indexErr(pos int, format string, args ...any) error {
	return &CorruptionError{Offset: int64(pos), Err: fmt.Errorf(format, args...)}
}
