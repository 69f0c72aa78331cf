package log

import (
	"fmt"
	"io"
	"sync"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// Chunk is a byte range of a segment file: what sendfile needs. Read the file only with
// ReadAt or an explicit-offset sendfile: its position is shared.
type Chunk struct {
	File     vfs.File
	Position int64
	Length   int64
}

// ReadResult is the answer of Read: whole entries, as stored, in chunks of segment
// files. It holds its segments open: a segment deleted meanwhile (retention,
// DeleteBefore) stays readable until Release. Call Release exactly once when done.
// A ReadResult is not safe for concurrent use.
type ReadResult struct {
	chunks []Chunk
	segs   []*segment.Segment
	gens   []uint64 // each segment's truncation generation when read
	length int64
	next   Offset
}

// Check returns an error matching ErrTruncated when a TruncateTo removed some of the
// result's entries after Read: bytes read through Chunks may then not be the entries
// promised. Callers that read Chunks themselves call it after reading.
func (r *ReadResult) Check() error {
	for i := range r.segs {
		if err := r.check(i); err != nil {
			return fmt.Errorf("log: read: %w", err)
		}
	}
	return nil
}

func (r *ReadResult) check(i int) error {
	if r.segs[i].Generation() != r.gens[i] {
		return fmt.Errorf("%s: %w", r.segs[i].Path(), segment.ErrTruncated)
	}
	return nil
}

var resultPool = sync.Pool{New: func() any { return new(ReadResult) }}

// Len returns the bytes in the result.
func (r *ReadResult) Len() int { return int(r.length) }

// Chunks returns the byte ranges of the result, in order.
func (r *ReadResult) Chunks() []Chunk { return r.chunks }

// NextOffset returns the offset after the last entry of the result: where the next
// Read continues. For an empty result it is the offset asked for.
func (r *ReadResult) NextOffset() Offset { return r.next }

// Bytes returns a copy of the result's bytes.
func (r *ReadResult) Bytes() ([]byte, error) {
	return r.AppendTo(make([]byte, 0, r.length))
}

// AppendTo appends the result's bytes to b.
func (r *ReadResult) AppendTo(b []byte) ([]byte, error) {
	n := len(b)
	b = append(b, make([]byte, r.length)...)
	for i, c := range r.chunks {
		if _, err := r.segs[i].ReadAt(b[n:n+int(c.Length)], c.Position); err != nil {
			return b[:n], fmt.Errorf("log: read: %w", err)
		}
		if err := r.check(i); err != nil {
			return b[:n], fmt.Errorf("log: read: %w", err)
		}
		n += int(c.Length)
	}
	return b, nil
}

// WriteTo writes the result's bytes to w: with sendfile(2) when w is a TCP or Unix
// socket and the segments are real files, through a buffer otherwise.
func (r *ReadResult) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for i, c := range r.chunks {
		if err := r.check(i); err != nil {
			return total, fmt.Errorf("log: write: %w", err)
		}
		n, err := writeChunk(w, r.segs[i], c)
		total += n
		if err == nil {
			err = r.check(i)
		}
		if err != nil {
			return total, fmt.Errorf("log: write: %w", err)
		}
	}
	return total, nil
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyChunk writes c to w through a pooled buffer.
func copyChunk(w io.Writer, s *segment.Segment, c Chunk, done int64) (int64, error) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	n := done
	for n < c.Length {
		k := min(int64(len(buf)), c.Length-n)
		if _, err := s.ReadAt(buf[:k], c.Position+n); err != nil {
			return n - done, err
		}
		wrote, err := w.Write(buf[:k])
		n += int64(wrote)
		if err != nil {
			return n - done, err
		}
	}
	return n - done, nil
}

// Release gives the segments back. The result must not be used afterwards.
//
// Bytes, AppendTo and WriteTo return an error matching segment.ErrTruncated when a
// TruncateTo removed the result's entries after Read: its bytes may have been replaced.
func (r *ReadResult) Release() {
	for i, s := range r.segs {
		s.Release()
		r.segs[i] = nil
		r.chunks[i] = Chunk{}
	}
	r.segs, r.chunks, r.gens = r.segs[:0], r.chunks[:0], r.gens[:0]
	r.length, r.next = 0, 0
	resultPool.Put(r)
}

// Read returns whole entries starting with the one that holds off: as many as fit in
// maxBytes, and at least one even when it is larger; none at or past upTo (the high
// watermark; pass LogEndOffset or more for no limit). In FormatKafka the first batch may
// start before off. off == LogEndOffset, or off >= upTo, gives an empty result. off below
// LogStartOffset or above LogEndOffset gives ErrOffsetOutOfRange. The caller must
// Release the result.
func (l *Log) Read(off Offset, maxBytes int, upTo Offset) (*ReadResult, error) {
	l.mu.RLock()
	if l.segs == nil {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	start, end := l.LogStartOffset(), l.LogEndOffset()
	if off < start || off > end {
		l.mu.RUnlock()
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, off, start, end)
	}
	r := resultPool.Get().(*ReadResult)
	r.next = off
	upTo = min(upTo, end)
	if off >= upTo {
		l.mu.RUnlock()
		return r, nil
	}
	s := l.segmentFor(off)
	l.mu.RUnlock()
	remaining := int64(max(maxBytes, 0))
	for s != nil {
		gen := s.Generation()
		pos, stop, next, err := s.Extent(off, remaining, upTo, len(r.chunks) == 0)
		if err != nil {
			s.Release()
			r.Release()
			return nil, fmt.Errorf("log: read from %d: %w", off, err)
		}
		if stop == pos {
			s.Release()
			break
		}
		r.chunks = append(r.chunks, Chunk{File: s.File(), Position: pos, Length: stop - pos})
		r.segs = append(r.segs, s)
		r.gens = append(r.gens, gen)
		r.length += stop - pos
		r.next = next
		remaining -= stop - pos
		if remaining <= 0 || next >= upTo || next < s.Next() {
			break
		}
		// The segment was read to its end: go on in the next one.
		off = next
		l.mu.RLock()
		s = nil
		if l.segs != nil {
			if n := l.segmentFor(off); n != nil && n.Base() == off {
				s = n
			} else if n != nil {
				n.Release()
			}
		}
		l.mu.RUnlock()
	}
	return r, nil
}

// Entry returns the entry that holds off: the payload in FormatEntries, the whole batch
// (as stored) in FormatKafka. It returns ErrOffsetOutOfRange when off is below
// LogStartOffset or at or past LogEndOffset.
func (l *Log) Entry(off Offset) ([]byte, error) {
	l.mu.RLock()
	if l.segs == nil {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	start, end := l.LogStartOffset(), l.LogEndOffset()
	if off < start || off >= end {
		l.mu.RUnlock()
		return nil, fmt.Errorf("%w: %d not in [%d, %d)", ErrOffsetOutOfRange, off, start, end)
	}
	s := l.segmentFor(off)
	l.mu.RUnlock()
	defer s.Release()
	b, err := s.ReadEntry(off)
	if err != nil {
		return nil, fmt.Errorf("log: entry %d: %w", off, err)
	}
	return b, nil
}

// acquireAll returns the segments, each acquired; nil after Close.
func (l *Log) acquireAll() []*segment.Segment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	segs := make([]*segment.Segment, len(l.segs))
	copy(segs, l.segs)
	for _, s := range segs {
		s.Acquire()
	}
	return segs
}

func releaseAll(segs []*segment.Segment) {
	for _, s := range segs {
		s.Release()
	}
}

// OffsetForTimestamp returns the first entry whose timestamp is >= ts: its base offset
// (or LogStartOffset if the entry starts below it) and its maxTimestamp. The log does
// not decode records, so in FormatKafka it answers with a whole batch, the first whose
// maxTimestamp is >= ts; the caller may look inside it for the exact record. It returns
// ErrTimestampNotFound when there is none (and always in FormatEntries).
func (l *Log) OffsetForTimestamp(ts int64) (Offset, int64, error) {
	if l.closed.Load() {
		return -1, -1, ErrClosed
	}
	segs := l.acquireAll()
	defer releaseAll(segs)
	for _, s := range segs {
		maxTS, _, err := s.MaxTimestamp()
		if err != nil {
			return -1, -1, fmt.Errorf("log: offset for timestamp %d: %w", ts, err)
		}
		if maxTS < ts || s.Next() <= l.LogStartOffset() {
			continue
		}
		off, entryTS, ok, err := s.FindTimestamp(ts)
		if err != nil {
			return -1, -1, fmt.Errorf("log: offset for timestamp %d: %w", ts, err)
		}
		if ok {
			return max(off, l.LogStartOffset()), entryTS, nil
		}
	}
	return -1, -1, ErrTimestampNotFound
}

// MaxTimestamp returns the largest maxTimestamp in the log and the base offset of the
// first batch that has it, or (-1, -1) when the log holds none (always in
// FormatEntries).
func (l *Log) MaxTimestamp() (ts int64, off Offset) {
	l.maxTS.Lock()
	if l.maxTS.known {
		ts, off = l.maxTS.ts, l.maxTS.off
		l.maxTS.Unlock()
		return ts, off
	}
	l.maxTS.Unlock()
	segs := l.acquireAll()
	defer releaseAll(segs)
	ts, off = -1, -1
	for _, s := range segs {
		sts, soff, err := s.MaxTimestamp()
		if err != nil {
			return -1, -1 // unreadable index: unknown, retried next time
		}
		if sts > ts {
			ts, off = sts, soff
		}
	}
	return ts, off
}
