package segment_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/segment/segmenttest"
	"github.com/sluicemq/sluice/vfs"
)

func opts(fs vfs.FS, format segment.Format) segment.Options {
	return segment.Options{FS: fs, Dir: "/d", Format: format, IndexInterval: 100}
}

func newFS(t *testing.T) *vfs.MemFS {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	return fs
}

// build makes a segment at base 100 holding batches of the given record counts, with
// maxTimestamps tss; it returns the segment and each batch's position.
func build(t *testing.T, fs vfs.FS, counts []int, tss []int64) (*segment.Segment, []int64) {
	t.Helper()
	s, err := segment.Create(opts(fs, segment.FormatKafka), 100)
	if err != nil {
		t.Fatal(err)
	}
	var pos []int64
	for i, n := range counts {
		pos = append(pos, s.Size())
		if _, err := s.Append(segmenttest.Batch(n, 20, tss[i]-1, tss[i], 0), 1); err != nil {
			t.Fatal(err)
		}
	}
	return s, pos
}

func TestSegmentFindAndExtent(t *testing.T) {
	fs := newFS(t)
	counts := []int{1, 3, 2, 1, 4, 1, 1, 2} // bases 100 101 104 106 107 111 112 113, next 115
	tss := []int64{10, 20, 30, 40, 50, 60, 70, 80}
	s, pos := build(t, fs, counts, tss)
	defer s.Release()
	bases := []segment.Offset{100, 101, 104, 106, 107, 111, 112, 113}
	if s.Next() != 115 {
		t.Fatalf("Next %d", s.Next())
	}
	for off := segment.Offset(100); off < 115; off++ {
		p, info, err := s.Find(off)
		if err != nil {
			t.Fatalf("Find(%d): %v", off, err)
		}
		if info.Base > off || info.Last < off {
			t.Fatalf("Find(%d) = batch [%d, %d]", off, info.Base, info.Last)
		}
		i := 0
		for i+1 < len(bases) && bases[i+1] <= off {
			i++
		}
		if p != pos[i] {
			t.Fatalf("Find(%d) at %d, want %d", off, p, pos[i])
		}
	}
	for _, off := range []segment.Offset{99, 115, -1} {
		if _, _, err := s.Find(off); !errors.Is(err, segment.ErrOutOfRange) {
			t.Fatalf("Find(%d): %v", off, err)
		}
	}
	size := func(i int) int64 { return pos[i+1] - pos[i] }
	for _, tc := range []struct {
		name       string
		off        segment.Offset
		maxBytes   int64
		upTo       segment.Offset
		atLeastOne bool
		from, to   int // batch indexes [from, to)
		next       segment.Offset
	}{
		{"all", 100, 1 << 20, 1 << 40, true, 0, 8, 115},
		{"below base reads from base", 50, 1 << 20, 1 << 40, true, 0, 8, 115},
		{"exact two", 101, size(1) + size(2), 1 << 40, true, 1, 3, 106},
		{"one byte short", 101, size(1) + size(2) - 1, 1 << 40, true, 1, 2, 104},
		{"too small, at least one", 101, 1, 1 << 40, true, 1, 2, 104},
		{"too small, none", 101, 1, 1 << 40, false, 1, 1, 101},
		{"up to a boundary", 100, 1 << 20, 107, true, 0, 4, 107},
		{"up to inside a batch", 100, 1 << 20, 109, true, 0, 4, 107},
		{"first straddles upTo", 107, 1 << 20, 109, true, 4, 4, 107},
		{"at next", 115, 1 << 20, 1 << 40, true, 8, 8, 115},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, end, next, err := s.Extent(tc.off, tc.maxBytes, tc.upTo, tc.atLeastOne)
			if err != nil {
				t.Fatal(err)
			}
			at := func(i int) int64 {
				if i == len(pos) {
					return s.Size()
				}
				return pos[i]
			}
			if p != at(tc.from) || end != at(tc.to) || next != tc.next {
				t.Fatalf("Extent = [%d, %d) next %d; want [%d, %d) next %d", p, end, next, at(tc.from), at(tc.to), tc.next)
			}
		})
	}
}

func TestSegmentFindTimestamp(t *testing.T) {
	fs := newFS(t)
	tss := []int64{50, 10, 40, 70, 60, 70, 90, 20, 85, 100}
	counts := make([]int, len(tss))
	for i := range counts {
		counts[i] = 1 + i%3
	}
	s, _ := build(t, fs, counts, tss)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	check := func(s *segment.Segment) {
		t.Helper()
		var bases []segment.Offset
		b := segment.Offset(100)
		for _, n := range counts {
			bases = append(bases, b)
			b += segment.Offset(n)
		}
		for q := int64(0); q <= 110; q++ {
			want := -1
			for i, ts := range tss {
				if ts >= q {
					want = i
					break
				}
			}
			off, ts, ok, err := s.FindTimestamp(q)
			if err != nil {
				t.Fatal(err)
			}
			if want < 0 {
				if ok {
					t.Fatalf("FindTimestamp(%d) = %d, want none", q, off)
				}
				continue
			}
			if !ok || off != bases[want] || ts != tss[want] {
				t.Fatalf("FindTimestamp(%d) = %d %d %v, want %d %d", q, off, ts, ok, bases[want], tss[want])
			}
		}
		if ts, off, _ := s.MaxTimestamp(); ts != 100 || off != bases[9] {
			t.Fatalf("MaxTimestamp = %d at %d", ts, off)
		}
	}
	check(s)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	next := s.Next()
	s.Release()
	// Reopened: the indexes come from the files, read on first use.
	s2, err := segment.Open(opts(fs, segment.FormatKafka), 100, next)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Release()
	check(s2)
}

func TestSegmentTruncateTo(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  segment.Offset
		next segment.Offset
		max  int64
	}{
		{"past next", 200, 115, 80},
		{"boundary", 107, 107, 40},
		{"inside a batch", 109, 107, 40},
		{"to base", 100, 100, -1},
		{"below base", 50, 100, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFS(t)
			counts := []int{1, 3, 2, 1, 4, 1, 1, 2}
			tss := []int64{10, 20, 30, 40, 50, 60, 80, 70}
			s, _ := build(t, fs, counts, tss)
			defer s.Release()
			if err := s.TruncateTo(tc.off); err != nil {
				t.Fatal(err)
			}
			if s.Next() != tc.next {
				t.Fatalf("Next %d, want %d", s.Next(), tc.next)
			}
			if ts, _, _ := s.MaxTimestamp(); ts != tc.max {
				t.Fatalf("MaxTimestamp %d, want %d", ts, tc.max)
			}
			// The file holds the entries, then nothing or the zeros written ahead.
			st, _ := fs.Stat(s.Path())
			tail := make([]byte, max(st.Size()-s.Size(), 0))
			s.File().ReadAt(tail, s.Size())
			if st.Size() < s.Size() || !bytes.Equal(tail, make([]byte, len(tail))) {
				t.Fatalf("file %d bytes, segment %d", st.Size(), s.Size())
			}
			// Appends continue, and the index works over old and new entries.
			if off, err := s.Append(segmenttest.Batch(2, 20, 1, 1, 0), 1); err != nil || off != tc.next {
				t.Fatalf("Append after TruncateTo: %d, %v", off, err)
			}
			for off := segment.Offset(100); off < s.Next(); off++ {
				if _, info, err := s.Find(off); err != nil || info.Base > off || info.Last < off {
					t.Fatalf("Find(%d): %+v %v", off, info, err)
				}
			}
		})
	}
}

func TestSegmentRecover(t *testing.T) {
	fs := newFS(t)
	s, pos := build(t, fs, []int{1, 2, 3, 4, 5}, []int64{1, 2, 3, 4, 5})
	if err := s.FlushIndex(); err != nil {
		t.Fatal(err)
	}
	point := s.Point()
	s.Append(segmenttest.Batch(1, 20, 9, 9, 0), 1)
	s.Append(segmenttest.Batch(1, 20, 9, 9, 0), 1)
	full := make([]byte, s.Size())
	s.ReadAt(full, 0)
	s.Release()
	for _, p := range []segment.Point{point, {Next: 100, MaxTimestamp: -1, MaxTimestampOffset: -1}} {
		// Tear the last batch.
		f, _ := fs.Create("/d/" + segment.FileName(100, segment.LogExt))
		f.Write(full[:len(full)-5])
		f.Close()
		r, cut, err := segment.Recover(opts(fs, segment.FormatKafka), 100, p)
		if err != nil {
			t.Fatal(err)
		}
		if cut == nil || cut.Offset <= pos[4] || !errors.Is(cut, segment.ErrCorrupt) {
			t.Fatalf("cut %v", cut)
		}
		if r.Next() != 116 {
			t.Fatalf("Next %d after recovery, want 116", r.Next())
		}
		if ts, off, _ := r.MaxTimestamp(); ts != 9 || off != 115 {
			t.Fatalf("MaxTimestamp %d at %d", ts, off)
		}
		for off := segment.Offset(100); off < 116; off++ {
			if _, _, err := r.Find(off); err != nil {
				t.Fatalf("Find(%d): %v", off, err)
			}
		}
		r.Release()
	}
}

func TestSegmentEntries(t *testing.T) {
	fs := newFS(t)
	s, err := segment.Create(opts(fs, segment.FormatEntries), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	for i := 0; i < 50; i++ {
		off, err := s.Append(bytes.Repeat([]byte{byte(i)}, i), 0)
		if err != nil || off != segment.Offset(7+i) {
			t.Fatalf("Append %d: %d, %v", i, off, err)
		}
	}
	for i := 0; i < 50; i++ {
		p, err := s.ReadEntry(segment.Offset(7 + i))
		if err != nil || !bytes.Equal(p, bytes.Repeat([]byte{byte(i)}, i)) {
			t.Fatalf("ReadEntry(%d) = %v, %v", 7+i, p, err)
		}
	}
	if ts, off, _ := s.MaxTimestamp(); ts != -1 || off != -1 {
		t.Fatalf("MaxTimestamp of entries: %d %d", ts, off)
	}
}

// TestSegmentFullOffsets: relative offsets are 32 bits; Append says ErrFull when a
// batch would go past them.
func TestSegmentFullOffsets(t *testing.T) {
	fs := newFS(t)
	s, _ := segment.Create(opts(fs, segment.FormatKafka), 0)
	defer s.Release()
	big := segmenttest.Batch(1, 1, 0, 0, 0)
	// A batch header may claim up to 2^31 offsets (compacted batches have gaps).
	putLastOffsetDelta(big, math.MaxInt32-1)
	for i := 0; i < 2; i++ {
		if _, err := s.Append(big, 0); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if _, err := s.Append(big, 0); !errors.Is(err, segment.ErrFull) {
		t.Fatalf("third append: %v, want ErrFull", err)
	}
}

func putLastOffsetDelta(b []byte, v int32) {
	b[segment.BatchLastOffsetDeltaPos] = byte(v >> 24)
	b[segment.BatchLastOffsetDeltaPos+1] = byte(v >> 16)
	b[segment.BatchLastOffsetDeltaPos+2] = byte(v >> 8)
	b[segment.BatchLastOffsetDeltaPos+3] = byte(v)
}

func TestSegmentRemovedStaysReadable(t *testing.T) {
	fs := newFS(t)
	s, pos := build(t, fs, []int{1, 2}, []int64{1, 2})
	s.Acquire() // a reader
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	s.Release() // the owner
	if _, err := fs.Stat(s.Path()); err == nil {
		t.Fatal("file still listed after Remove")
	}
	b := make([]byte, pos[1])
	if _, err := s.ReadAt(b, 0); err != nil {
		t.Fatalf("read after Remove, before the last Release: %v", err)
	}
	if _, err := segment.CheckBatch(b); err != nil {
		t.Fatal(err)
	}
	s.Release()
	if _, err := s.ReadAt(b, 0); err == nil {
		t.Fatal("read after the last Release succeeded")
	}
}

// TestSegmentPreallocate checks that the zeros written ahead of a FormatKafka segment's
// entries are never data: reads stop at the entries, Seal cuts them off durably, and
// recovery of a crashed segment cuts a zero tail without calling it corruption.
func TestSegmentPreallocate(t *testing.T) {
	fileSize := func(fs vfs.FS, s *segment.Segment) int64 {
		t.Helper()
		st, err := fs.Stat(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	fs := newFS(t)
	s, _ := build(t, fs, []int{1, 3, 2}, []int64{1, 2, 3})
	size := s.Size()
	if got := fileSize(fs, s); got < size+segment.DefaultPreallocate/2 {
		t.Fatalf("file %d bytes for %d of entries: nothing preallocated", got, size)
	}
	tail := make([]byte, fileSize(fs, s)-size)
	if _, err := s.File().ReadAt(tail, size); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Fatal("preallocated bytes are not zeros")
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := vfs.SyncDir(fs, "/d"); err != nil {
		t.Fatal(err)
	}

	// A crash with the zeros synced: recovery cuts them, and reports no corruption.
	crashed := fs.CrashClone(rand.New(rand.NewPCG(1, 2)))
	r, cut, err := segment.Recover(opts(crashed, segment.FormatKafka), 100,
		segment.Point{Next: 100, MaxTimestamp: -1, MaxTimestampOffset: -1})
	if err != nil || cut != nil {
		t.Fatalf("Recover: cut %v, %v", cut, err)
	}
	if r.Next() != s.Next() || r.Size() != size || fileSize(crashed, r) != size {
		t.Fatalf("recovered next %d size %d file %d, want %d %d", r.Next(), r.Size(), fileSize(crashed, r), s.Next(), size)
	}
	// Appends after recovery land right after the entries.
	if off, err := r.Append(segmenttest.Batch(1, 20, 4, 4, 0), 1); err != nil || off != s.Next() {
		t.Fatalf("Append after Recover: %d, %v", off, err)
	}
	r.Release()

	// Seal cuts the zeros; the Sync after it makes the cut durable even with no entry
	// appended since the last Sync, so a clean open (which trusts the file's size) finds
	// the entries only.
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(fs, s); got != size {
		t.Fatalf("sealed file %d bytes, entries %d", got, size)
	}
	reopens := func(what string) {
		t.Helper()
		for seed := range uint64(20) {
			crashed := fs.CrashClone(rand.New(rand.NewPCG(seed, 3)))
			o, err := segment.Open(opts(crashed, segment.FormatKafka), 100, s.Next())
			if err != nil {
				t.Fatal(err)
			}
			if o.Size() != size {
				t.Fatalf("%s, seed %d: segment reopened with %d bytes, want %d", what, seed, o.Size(), size)
			}
			o.Release()
		}
	}
	// Killed after Seal, before its Sync: the next process recovers the segment from
	// the page cache, where it is cut already and its point covers it all; its first
	// Sync must still make the cut durable.
	r, cut, err = segment.Recover(opts(fs, segment.FormatKafka), 100, s.Point())
	if err != nil || cut != nil || r.Size() != size {
		t.Fatalf("Recover after Seal: size %d, cut %v, %v", r.Size(), cut, err)
	}
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	reopens("recovered after Seal")
	r.Release()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	reopens("sealed and synced")
	s.Release()

	// FormatEntries segments and a negative Preallocate write nothing ahead.
	for _, o := range []segment.Options{opts(fs, segment.FormatEntries),
		{FS: fs, Dir: "/d", Format: segment.FormatKafka, Preallocate: -1}} {
		e, err := segment.Create(o, 500)
		if err != nil {
			t.Fatal(err)
		}
		entry := []byte("entry")
		if o.Format == segment.FormatKafka {
			entry = segmenttest.Batch(1, 20, 1, 1, 0)
		}
		if _, err := e.Append(entry, 1); err != nil {
			t.Fatal(err)
		}
		if got := fileSize(fs, e); got != e.Size() {
			t.Fatalf("format %v, Preallocate %d: file %d bytes, entries %d", o.Format, o.Preallocate, got, e.Size())
		}
		e.Remove()
		e.Release()
	}
}

// Retire moves a dropped segment's .log aside and Reuse makes a new segment of it,
// writing over the old entries; readers of the old segment keep theirs until they
// release it. Appends to the reused file write zeros to the end of their page, so the
// kernel need not read it first. Recovery of a reused file cuts the old entries past
// the last new one without calling them damage; a stray byte pattern there is still
// damage.
func TestSegmentRetireReuse(t *testing.T) {
	fs := newFS(t)
	o := opts(fs, segment.FormatEntries)
	old, err := segment.Create(o, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ { // more than a page
		if _, err := old.Append(bytes.Repeat([]byte{byte(i)}, 50), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Sync(); err != nil {
		t.Fatal(err)
	}
	oldSize := old.Size()
	old.Acquire() // a reader
	released := make(chan struct{})
	if err := old.Retire("/d/1.retired", func() { close(released) }); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat("/d/" + segment.FileName(100, segment.LogExt)); err == nil {
		t.Fatal("the retired .log keeps its name")
	}
	old.Release() // the owner's reference
	select {
	case <-released:
		t.Fatal("retired while a reader holds the segment")
	default:
	}
	got := make([]byte, 50)
	if _, err := old.ReadAt(got, oldSize-50); err != nil || got[0] != 99 {
		t.Fatalf("reader's last entry: %v %v", got[:4], err)
	}
	old.Release()
	<-released

	s, err := segment.Reuse(o, 200, "/d/1.retired")
	if err != nil {
		t.Fatal(err)
	}
	if s.Size() != 0 || s.Next() != 200 {
		t.Fatalf("reused segment holds %d bytes up to %d", s.Size(), s.Next())
	}
	for i := 0; i < 3; i++ {
		if off, err := s.Append([]byte("new entry"), 0); err != nil || off != segment.Offset(200+i) {
			t.Fatalf("append %d: offset %d, %v", i, off, err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	newSize := s.Size()
	s.Release() // abandoned: the old entries stay past the new ones
	path := "/d/" + segment.FileName(200, segment.LogExt)
	if st, err := fs.Stat(path); err != nil || st.Size() != oldSize {
		t.Fatalf("reused file: %v, %v; want %d bytes", st, err, oldSize)
	}
	f, err := fs.OpenReadWrite(path)
	if err != nil {
		t.Fatal(err)
	}
	page := make([]byte, 4096+100)
	if _, err := f.ReadAt(page, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !bytes.Equal(page[newSize:4096], make([]byte, 4096-newSize)) || bytes.Equal(page[4096:], make([]byte, 100)) {
		t.Fatalf("reused file past the new entries: zeros to the page's end, then old bytes: got %v ... %v",
			page[newSize:newSize+8], page[4090:4110])
	}
	r, cut, err := segment.Recover(o, 200, segment.Point{Next: 200, MaxTimestamp: -1, MaxTimestampOffset: -1})
	if err != nil || cut != nil {
		t.Fatalf("recover a reused file: cut %v, %v", cut, err)
	}
	if r.Size() != newSize || r.Next() != 203 {
		t.Fatalf("recovered %d bytes up to %d, want %d up to 203", r.Size(), r.Next(), newSize)
	}
	r.Release()
	if st, err := fs.Stat(path); err != nil || st.Size() != newSize {
		t.Fatalf("recovered file: %v, %v; want %d bytes", st, err, newSize)
	}

	// Bytes past the end that are not an older entry are damage.
	f, err = fs.OpenReadWrite(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte{0xab}, 40), newSize)
	f.Close()
	r, cut, err = segment.Recover(o, 200, segment.Point{Next: 200, MaxTimestamp: -1, MaxTimestampOffset: -1})
	if err != nil || cut == nil || r.Next() != 203 {
		t.Fatalf("recover after stray bytes: cut %v, next %d, %v", cut, r.Next(), err)
	}
	r.Release()
}

// truncCountFS counts the truncations of each file it opened.
type truncCountFS struct {
	vfs.FS
	mu     sync.Mutex
	truncs map[string]int
}

type truncCountFile struct {
	vfs.File
	fs   *truncCountFS
	name string
}

func (f *truncCountFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	f.fs.truncs[f.name]++
	f.fs.mu.Unlock()
	return f.File.Truncate(size)
}

func (f *truncCountFile) WriteVAt(bufs [][]byte, off int64) (int, error) {
	return vfs.WriteVAt(f.File, bufs, off)
}

func (t *truncCountFS) Create(name string) (vfs.File, error) {
	f, err := t.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &truncCountFile{File: f, fs: t, name: name}, nil
}

func (t *truncCountFS) count(name string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.truncs[name]
}

// FreeGradually frees a removed segment's file in steps only when no reader holds it: a
// reader's bytes stay whole, and it frees nothing of a segment not removed.
func TestSegmentFreeGradually(t *testing.T) {
	fs := &truncCountFS{FS: newFS(t), truncs: map[string]int{}}
	o := opts(fs, segment.FormatEntries)
	mk := func(base segment.Offset) (*segment.Segment, string) {
		s, err := segment.Create(o, base)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			if _, err := s.Append(bytes.Repeat([]byte{byte(i)}, 1000), 0); err != nil {
				t.Fatal(err)
			}
		}
		return s, "/d/" + segment.FileName(base, segment.LogExt)
	}

	// Held by a reader: no truncation; the reader reads everything.
	held, name := mk(100)
	held.Acquire()
	if err := held.Remove(); err != nil {
		t.Fatal(err)
	}
	held.FreeGradually(3000, 0)
	if n := fs.count(name); n != 0 {
		t.Fatalf("%d truncations of a segment a reader holds", n)
	}
	got := make([]byte, held.Size())
	if _, err := held.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if got[len(got)-1] != 9 {
		t.Fatalf("reader's last byte %d after FreeGradually", got[len(got)-1])
	}
	held.Release()

	// Removed, no reader: freed in steps from the end (10,160 bytes in 3,000-byte steps).
	s, name := mk(200)
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	s.FreeGradually(3000, 0)
	if n := fs.count(name); n != 3 {
		t.Fatalf("%d truncations of a removed segment, want 3", n)
	}

	// Not removed: only released.
	kept, name := mk(300)
	kept.FreeGradually(3000, 0)
	if n := fs.count(name); n != 0 {
		t.Fatalf("%d truncations of a segment not removed", n)
	}
}

// cacheCallsFS records the page cache advice its files are given.
type cacheCallsFS struct {
	vfs.FS
	mu    sync.Mutex
	calls []string
}

type cacheCallsFile struct {
	vfs.File
	fs *cacheCallsFS
}

func (f *cacheCallsFile) WriteVAt(bufs [][]byte, off int64) (int, error) {
	return vfs.WriteVAt(f.File, bufs, off)
}

func (f *cacheCallsFile) StartWriteback(off, n int64) error {
	f.fs.record(fmt.Sprintf("writeback %d+%d", off, n))
	return nil
}

func (f *cacheCallsFile) DropCache(off, n int64) error {
	f.fs.record(fmt.Sprintf("drop %d+%d", off, n))
	return nil
}

func (c *cacheCallsFS) record(call string) {
	c.mu.Lock()
	c.calls = append(c.calls, call)
	c.mu.Unlock()
}

func (c *cacheCallsFS) Create(name string) (vfs.File, error) {
	f, err := c.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &cacheCallsFile{File: f, fs: c}, nil
}

func (c *cacheCallsFS) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls
	c.calls = nil
	return calls
}

// WriteBack starts the write-back of the whole pages appended since the last call and
// drops nothing: the leader's pages stay cached for its readers.
func TestSegmentWriteBack(t *testing.T) {
	fs := &cacheCallsFS{FS: newFS(t)}
	s, err := segment.Create(opts(fs, segment.FormatEntries), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	entry := bytes.Repeat([]byte{1}, 10000)
	s.Append(entry, 0)
	s.WriteBack()
	first := s.Size() &^ 4095
	if got, want := fs.take(), []string{fmt.Sprintf("writeback 0+%d", first)}; !slices.Equal(got, want) {
		t.Fatalf("first WriteBack: %q, want %q", got, want)
	}
	s.WriteBack()
	if got := fs.take(); len(got) != 0 {
		t.Fatalf("WriteBack with nothing new: %q", got)
	}
	s.Append(entry, 0)
	s.WriteBack()
	second := s.Size() &^ 4095
	if got, want := fs.take(), []string{fmt.Sprintf("writeback %d+%d", first, second-first)}; !slices.Equal(got, want) {
		t.Fatalf("second WriteBack: %q, want %q", got, want)
	}
}
