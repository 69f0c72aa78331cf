package segment

import (
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/sluicemq/sluice/vfs"
)

// scanBufSize is the read size of a recovery scan.
const scanBufSize = 1 << 20

// scan walks the entries of the .log from byte from (holding offset expect) to limit,
// calling fn for each entry that passes its checks: a header that decodes, the expected
// offset, a length inside the file and below MaxEntryBytes and, when verify is set, the
// CRC. It stops at the first entry that fails and reports it in bad. err is an I/O
// error only.
func (s *Segment) scan(from, limit int64, expect Offset, verify bool, fn func(pos int64, info EntryInfo)) (end int64, next Offset, bad *CorruptionError, err error) {
	bufSize := int64(scanBufSize)
	if !verify {
		bufSize = 64 << 10
	}
	buf := make([]byte, min(bufSize, max(limit-from, int64(s.o.Format.HeaderSize()))))
	var wstart, wlen int64 // buf[:wlen] holds the file's bytes [wstart, wstart+wlen)
	fill := func(p int64) error {
		n, err := s.log.ReadAt(buf[:min(int64(len(buf)), limit-p)], p)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read segment %d at byte %d: %w", s.base, p, err)
		}
		wstart, wlen = p, int64(n)
		return nil
	}
	corrupt := func(p int64, format string, args ...any) *CorruptionError {
		return &CorruptionError{Path: s.path(LogExt), Offset: p,
			Err: fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)}
	}
	hs := int64(s.o.Format.HeaderSize())
	pos, next := from, expect
	for pos < limit {
		if pos+hs > limit {
			return pos, next, corrupt(pos, "partial header (%d bytes)", limit-pos), nil
		}
		if pos < wstart || pos+hs > wstart+wlen {
			if err := fill(pos); err != nil {
				return pos, next, nil, err
			}
			if wlen < hs {
				return pos, next, corrupt(pos, "short read"), nil
			}
		}
		info, err := s.o.Format.ParseHeader(buf[pos-wstart : pos-wstart+hs])
		switch {
		case err != nil:
			return pos, next, corrupt(pos, "%v", err), nil
		case info.Base != next:
			return pos, next, corrupt(pos, "entry at offset %d, want %d", info.Base, next), nil
		case info.Size > s.o.MaxEntryBytes:
			return pos, next, corrupt(pos, "entry of %d bytes over the limit of %d", info.Size, s.o.MaxEntryBytes), nil
		case pos+info.Size > limit:
			return pos, next, corrupt(pos, "entry of %d bytes past the end at %d", info.Size, limit), nil
		case uint64(info.Last-s.base) >= math.MaxUint32:
			return pos, next, corrupt(pos, "offset %d too far from the segment's base", info.Last), nil
		}
		if verify {
			var crc uint32
			if pos+info.Size > wstart+wlen && info.Size <= int64(len(buf)) {
				if err := fill(pos); err != nil {
					return pos, next, nil, err
				}
			}
			if pos+info.Size <= wstart+wlen {
				crc = s.o.Format.updateCRC(0, buf[pos-wstart:pos-wstart+info.Size], 0)
			} else {
				for q := pos; q < pos+info.Size; q += wlen {
					if err := fill(q); err != nil {
						return pos, next, nil, err
					}
					if wlen == 0 {
						return pos, next, corrupt(pos, "short read"), nil
					}
					wlen = min(wlen, pos+info.Size-q)
					crc = s.o.Format.updateCRC(crc, buf[:wlen], q-pos)
				}
				wstart, wlen = 0, 0
			}
			if crc != info.CRC {
				return pos, next, corrupt(pos, "crc %#08x, computed %#08x", info.CRC, crc), nil
			}
		}
		fn(pos, info)
		pos += info.Size
		next = info.Last + 1
	}
	return pos, next, nil, nil
}

var windowPool = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// headerReader reads entry headers below limit through a window, so that walking many
// small entries costs few reads.
type headerReader struct {
	f      vfs.File
	format Format
	path   string
	limit  int64
	buf    *[]byte
	start  int64
	n      int64
}

func (s *Segment) headerReader(limit int64) headerReader {
	return headerReader{f: s.log, format: s.o.Format, path: s.logPath, limit: limit,
		buf: windowPool.Get().(*[]byte)}
}

func (r *headerReader) release() {
	windowPool.Put(r.buf)
	r.buf = nil
}

// at returns the header of the entry at pos.
func (r *headerReader) at(pos int64) (EntryInfo, error) {
	hs := int64(r.format.HeaderSize())
	if pos+hs > r.limit {
		return EntryInfo{}, r.corrupt(pos, "header past the end at %d", r.limit)
	}
	if pos < r.start || pos+hs > r.start+r.n {
		b := *r.buf
		n, err := r.f.ReadAt(b[:min(int64(len(b)), r.limit-pos)], pos)
		if int64(n) < hs {
			if err == nil || err == io.EOF {
				err = ErrTruncated
			}
			r.start, r.n = 0, 0
			return EntryInfo{}, fmt.Errorf("read %s at byte %d: %w", r.path, pos, err)
		}
		r.start, r.n = pos, int64(n)
	}
	info, err := r.format.ParseHeader((*r.buf)[pos-r.start:])
	if err != nil {
		return info, r.corrupt(pos, "%v", err)
	}
	if pos+info.Size > r.limit {
		return info, r.corrupt(pos, "entry of %d bytes past the end at %d", info.Size, r.limit)
	}
	return info, nil
}

func (r *headerReader) corrupt(pos int64, format string, args ...any) error {
	return &CorruptionError{Path: r.path, Offset: pos, Err: fmt.Errorf(format, args...)}
}
