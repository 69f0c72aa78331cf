package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// opCounter records the operations on each file.
type opCounter struct {
	mu  sync.Mutex
	ops map[string]int // "op name" -> count
}

func countOps(fs *vfs.FaultFS) *opCounter {
	c := &opCounter{ops: map[string]int{}}
	fs.Trace(func(_ int64, op vfs.Op, name string) {
		c.mu.Lock()
		c.ops[op.String()+" "+path.Base(name)]++
		c.mu.Unlock()
	})
	return c
}

// reads returns how many reads hit files whose name ends with suffix.
func (c *opCounter) reads(suffix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.ops {
		if strings.HasPrefix(k, "read ") && strings.HasSuffix(k, suffix) {
			n += v
		}
	}
	return n
}

func (c *opCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.ops {
		n += v
	}
	return n
}

// fillLog appends n batches of the given record count and syncs.
func fillLog(t *testing.T, l *Log, n, records int) {
	t.Helper()
	for i := 0; i < n; i++ {
		mustAppend(t, l, batch(records, int64(i)))
	}
	mustSync(t, l)
}

// TestCleanOpenReadsNothing: opening a cleanly closed log reads no entry and no index
// of a sealed segment, and costs the same whatever the segments hold.
func TestCleanOpenReadsNothing(t *testing.T) {
	opsFor := func(records int) (int, *opCounter) {
		mem := vfs.NewMem()
		cfg := Config{FS: mem, SegmentBytes: int64(len(batch(records, 0))) * 10}
		l := mustOpen(t, "/log", cfg)
		fillLog(t, l, 40, records) // 4 segments whatever the size
		if l.Segments() != 4 {
			t.Fatalf("%d segments, want 4", l.Segments())
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		ffs := vfs.NewFaultFS(mem)
		c := countOps(ffs)
		cfg.FS = ffs
		l = mustOpen(t, "/log", cfg)
		defer l.Close()
		return c.total(), c
	}
	small, cs := opsFor(30) // segments of ~32 KiB: some index entries
	large, cl := opsFor(3000)
	if small != large {
		t.Fatalf("clean open: %d operations for a small log, %d for one 100 times larger", small, large)
	}
	for _, c := range []*opCounter{cs, cl} {
		if n := c.reads(".log"); n != 0 {
			t.Fatalf("clean open read .log files %d times: %v", n, c.ops)
		}
	}
}

// TestUncleanOpenScansPastCheckpoint: after a crash only the segments past the last
// recovery checkpoint are read.
func TestUncleanOpenScansPastCheckpoint(t *testing.T) {
	mem := vfs.NewMem()
	cfg := Config{FS: mem, SegmentBytes: 2000, CheckpointBytes: 1 << 30}
	l := mustOpen(t, "/log", cfg)
	fillLog(t, l, 60, 2) // many segments; the sync after the last roll checkpoints
	segs := l.Segments()
	mustAppend(t, l, batch(1, 1)) // past the checkpoint
	ffs := vfs.NewFaultFS(mem.CrashClone(newRand(1)))
	c := countOps(ffs)
	cfg.FS = ffs
	l2 := mustOpen(t, "/log", cfg)
	defer l2.Close()
	scanned := 0
	for k := range c.ops {
		if strings.HasPrefix(k, "read ") && strings.HasSuffix(k, ".log") {
			scanned++
		}
	}
	if segs < 5 || scanned != 1 {
		t.Fatalf("%d of %d segments scanned after a crash, want 1: %v", scanned, segs, c.ops)
	}
	if l2.LogEndOffset() < l.LogEndOffset()-1 {
		t.Fatalf("end %d, want at least %d", l2.LogEndOffset(), l.LogEndOffset()-1)
	}
}

// corruptions of the active segment's .log, applied after a crash, and what recovery
// must keep.
func TestRecoveryCutsAtFirstBadByte(t *testing.T) {
	const n = 10 // batches of 2 records: offsets 0..19
	type damage func(b []byte, starts []int) []byte
	for _, tc := range []struct {
		name    string
		damage  damage
		keepEnd Offset // the log end after recovery
	}{
		{"intact", func(b []byte, s []int) []byte { return b }, 20},
		{"partial header", func(b []byte, s []int) []byte { return b[:s[9]+30] }, 18},
		{"partial batch", func(b []byte, s []int) []byte { return b[:len(b)-1] }, 18},
		{"bad crc in the middle", func(b []byte, s []int) []byte { b[s[5]+100] ^= 1; return b }, 10},
		{"bad crc field", func(b []byte, s []int) []byte { b[s[3]+segment.BatchCRCPos] ^= 1; return b }, 6},
		{"wrong base offset", func(b []byte, s []int) []byte {
			binary.BigEndian.PutUint64(b[s[4]:], 1234)
			return b
		}, 8},
		{"length past the end", func(b []byte, s []int) []byte {
			binary.BigEndian.PutUint32(b[s[7]+segment.BatchLengthPos:], 1<<30)
			return b
		}, 14},
		{"zeroed block", func(b []byte, s []int) []byte { clear(b[s[6] : s[6]+50]); return b }, 12},
		{"trailing zeros", func(b []byte, s []int) []byte { return append(b, make([]byte, 4096)...) }, 20},
		{"trailing garbage", func(b []byte, s []int) []byte { return append(b, bytes.Repeat([]byte{0xAB}, 100)...) }, 20},
		{"empty", func(b []byte, s []int) []byte { return b[:0] }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			cfg := Config{FS: mem, IndexInterval: 300}
			l := mustOpen(t, "/log", cfg)
			var starts []int
			for i := 0; i < n; i++ {
				starts = append(starts, int(l.Size()))
				mustAppend(t, l, batch(2, int64(i)))
			}
			mustSync(t, l) // no checkpoint past position 0: recovery scans it all
			name := "/log/" + segment.FileName(0, segment.LogExt)
			f, _ := mem.OpenReadWrite(name)
			b := make([]byte, l.Size())
			f.ReadAt(b, 0)
			b = tc.damage(b, starts)
			f.Truncate(0)
			f.WriteAt(b, 0)
			f.Sync()
			f.Close()
			// Crash without closing, and reopen.
			cfg.FS = mem.CrashClone(newRand(2))
			l2 := mustOpen(t, "/log", cfg)
			defer l2.Close()
			if l2.LogEndOffset() != tc.keepEnd {
				t.Fatalf("end %d after recovery, want %d", l2.LogEndOffset(), tc.keepEnd)
			}
			got, _ := readBytes(t, l2, 0, 1<<20, 100)
			offs, _, err := kafkaEntries(got)
			if err != nil {
				t.Fatal(err)
			}
			if want := int(tc.keepEnd / 2); len(offs) != want {
				t.Fatalf("%d batches served, want %d", len(offs), want)
			}
			if st, _ := cfg.FS.Stat(name); st.Size() != l2.Size() {
				t.Fatalf("file is %d bytes, log %d: the bad tail was not cut", st.Size(), l2.Size())
			}
			// Appends go on from the cut, and the index works for every offset.
			if off := mustAppend(t, l2, batch(2, 99)); off != tc.keepEnd {
				t.Fatalf("append after recovery at %d, want %d", off, tc.keepEnd)
			}
			for o := Offset(0); o < tc.keepEnd+2; o++ {
				if e, err := l2.Entry(o); err != nil || segmentHeaderBase(e) != o-o%2 {
					t.Fatalf("Entry(%d): %v", o, err)
				}
			}
		})
	}
}

func segmentHeaderBase(b []byte) Offset {
	h, err := segment.ParseBatchHeader(b)
	if err != nil {
		return -1
	}
	return h.BaseOffset
}

// TestRecoveryDropsSegmentsPastACut: a bad byte in a sealed segment past the checkpoint
// cuts the log there, and the later segments go.
func TestRecoveryDropsSegmentsPastACut(t *testing.T) {
	mem := vfs.NewMem()
	cfg := Config{FS: mem, SegmentBytes: 1500, CheckpointBytes: 1 << 30}
	l := mustOpen(t, "/log", cfg)
	mustAppend(t, l, batch(1, 1))
	mustSync(t, l) // the checkpoint is in segment 0
	for i := 0; i < 30; i++ {
		mustAppend(t, l, batch(2, int64(i)))
	}
	// Make the later segments durable without moving the checkpoint (as when writing
	// the checkpoint failed), so that recovery scans them.
	l.writeMu.Lock()
	for _, s := range append(l.unsynced, l.active()) {
		s.FlushIndex()
		s.Sync()
	}
	l.unsynced, l.ckDue = nil, false
	l.writeMu.Unlock()
	if l.Segments() < 4 {
		t.Fatalf("%d segments", l.Segments())
	}
	// Damage the second segment.
	l.mu.RLock()
	second := l.segs[1]
	l.mu.RUnlock()
	f, _ := mem.OpenReadWrite(second.Path())
	f.WriteAt([]byte{0xFF}, 400) // in the second batch
	f.Sync()
	f.Close()
	cfg.FS = mem.CrashClone(newRand(3))
	l2 := mustOpen(t, "/log", cfg)
	defer l2.Close()
	if l2.Segments() != 2 {
		t.Fatalf("%d segments after recovery, want 2", l2.Segments())
	}
	if end := l2.LogEndOffset(); end <= second.Base() || end >= second.Next() {
		t.Fatalf("end %d, want inside the damaged segment [%d, %d)", end, second.Base(), second.Next())
	}
	names, _ := cfg.FS.List("/log")
	for _, nm := range names {
		if b, _, ok := segment.ParseFileName(nm); ok && b > second.Base() {
			t.Fatalf("file %s of a segment past the cut remains", nm)
		}
	}
}

func TestBadIndexFilesAreRebuilt(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(fs vfs.FS, base Offset)
	}{
		{"missing index", func(fs vfs.FS, base Offset) { fs.Remove("/log/" + segment.FileName(base, segment.IndexExt)) }},
		{"missing time index", func(fs vfs.FS, base Offset) { fs.Remove("/log/" + segment.FileName(base, segment.TimeIndexExt)) }},
		{"garbage index", func(fs vfs.FS, base Offset) {
			f, _ := fs.Create("/log/" + segment.FileName(base, segment.IndexExt))
			f.Write(bytes.Repeat([]byte{0xFF}, 24))
			f.Close()
		}},
		{"torn index entry", func(fs vfs.FS, base Offset) {
			f, _ := fs.OpenReadWrite("/log/" + segment.FileName(base, segment.IndexExt))
			st, _ := f.Stat()
			f.Truncate(st.Size() - 3)
			f.Close()
		}},
		{"decreasing time index", func(fs vfs.FS, base Offset) {
			f, _ := fs.OpenReadWrite("/log/" + segment.FileName(base, segment.TimeIndexExt))
			var e [12]byte
			f.WriteAt(e[:], 12)
			f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			cfg := Config{FS: mem, SegmentBytes: 8000, IndexInterval: 200}
			l := mustOpen(t, "/log", cfg)
			for i := 0; i < 60; i++ {
				mustAppend(t, l, batch(2, int64(i*10)))
			}
			end := l.LogEndOffset()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			tc.do(mem, 0) // the first, sealed segment
			l = mustOpen(t, "/log", cfg)
			defer l.Close()
			for o := Offset(0); o < end; o++ {
				e, err := l.Entry(o)
				if err != nil || segmentHeaderBase(e) != o-o%2 {
					t.Fatalf("Entry(%d): %v", o, err)
				}
			}
			if off, _, err := l.OffsetForTimestamp(55); err != nil || off != 12 {
				t.Fatalf("OffsetForTimestamp(55) = %d, %v; want 12", off, err)
			}
		})
	}
}

func TestBadCheckpointScansEverything(t *testing.T) {
	mem := vfs.NewMem()
	cfg := Config{FS: mem, SegmentBytes: 2000}
	l := mustOpen(t, "/log", cfg)
	fillLog(t, l, 40, 2)
	end := l.LogEndOffset()
	l.Close()
	f, _ := mem.OpenReadWrite("/log/checkpoint")
	f.WriteAt([]byte{0xFF}, 20)
	f.Close()
	l = mustOpen(t, "/log", cfg)
	defer l.Close()
	if l.LogEndOffset() != end {
		t.Fatalf("end %d, want %d", l.LogEndOffset(), end)
	}
}

func TestStrayFiles(t *testing.T) {
	mem := vfs.NewMem()
	cfg := Config{FS: mem, SegmentBytes: 2000}
	l := mustOpen(t, "/log", cfg)
	fillLog(t, l, 40, 2)
	end := l.LogEndOffset()
	l.Close()
	for _, name := range []string{"7.log", "00000000000000000007.log.tmp", "checkpoint.tmp",
		segment.FileName(9999, segment.IndexExt), "notes.txt"} {
		f, _ := mem.Create("/log/" + name)
		f.Write([]byte("junk"))
		f.Close()
	}
	l = mustOpen(t, "/log", cfg)
	defer l.Close()
	if l.LogEndOffset() != end || l.LogStartOffset() != 0 {
		t.Fatalf("start %d end %d, want 0 %d", l.LogStartOffset(), l.LogEndOffset(), end)
	}
	names, _ := mem.List("/log")
	for _, gone := range []string{"00000000000000000007.log.tmp", "checkpoint.tmp", segment.FileName(9999, segment.IndexExt)} {
		if slices.Contains(names, gone) {
			t.Fatalf("%s not cleaned up: %v", gone, names)
		}
	}
}

// TestFullDisk: with no space left, Append fails with ENOSPC, the partial bytes are cut
// back, reads go on, nothing written is damaged, and appends work again once there is
// space.
func TestFullDisk(t *testing.T) {
	for _, format := range []Format{FormatKafka, FormatEntries} {
		t.Run(format.String(), func(t *testing.T) {
			mem := vfs.NewMem()
			ffs := vfs.NewFaultFS(mem)
			cfg := Config{Format: format, FS: ffs, SegmentBytes: 3000}
			l := mustOpen(t, "/log", cfg)
			defer l.Close()
			m := newModel(format)
			rng := newRand(5)
			var stored [][]byte
			appendOne := func() error {
				e := m.makeEntry(rng)
				_, err := l.Append(e, 3)
				if err == nil {
					stored = append(stored, e)
				}
				return err
			}
			for i := 0; i < 30; i++ {
				if err := appendOne(); err != nil {
					t.Fatal(err)
				}
			}
			mustSync(t, l)
			ffs.SetSpace(500)
			var full error
			for i := 0; i < 100 && full == nil; i++ {
				full = appendOne()
			}
			if !errors.Is(full, syscall.ENOSPC) {
				t.Fatalf("append on a full disk: %v, want ENOSPC", full)
			}
			for i := 0; i < 5; i++ {
				if err := appendOne(); !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("append on a full disk: %v", err)
				}
			}
			checkStored := func(l *Log) {
				t.Helper()
				b, _ := readBytes(t, l, 0, 1<<30, l.LogEndOffset())
				var got [][]byte
				var err error
				if format == FormatEntries {
					_, got, err = entriesOf(b)
				} else {
					_, got, err = kafkaEntries(b)
				}
				if err != nil || len(got) != len(stored) {
					t.Fatalf("%d entries read (%v), %d appended", len(got), err, len(stored))
				}
				for i := range got {
					if !m.same(got[i], stored[i]) {
						t.Fatalf("entry %d damaged", i)
					}
				}
			}
			checkStored(l)
			if st, _ := mem.Stat(l.active().Path()); st.Size() != l.active().Size() {
				t.Fatalf("partial entry not cut back: file %d bytes, segment %d", st.Size(), l.active().Size())
			}
			// Sync on a full disk: index flushes may fail, the data stays durable.
			l.Sync()
			ffs.SetSpace(-1)
			for i := 0; i < 10; i++ {
				if err := appendOne(); err != nil {
					t.Fatalf("append after space came back: %v", err)
				}
			}
			mustSync(t, l)
			checkStored(l)
			checkStored(reopen(t, l, Config{Format: format, FS: mem, SegmentBytes: 3000}))
		})
	}
}

// TestFailedFsyncPoisons: a failed fsync is not retried; the segment is reopened from
// disk, the log cut back to the last successful Sync, and appends go on.
func TestFailedFsyncPoisons(t *testing.T) {
	mem := vfs.NewMem()
	ffs := vfs.NewFaultFS(mem)
	cfg := Config{FS: ffs}
	l := mustOpen(t, "/log", cfg)
	defer l.Close()
	fillLog(t, l, 5, 2) // durable to 10
	mustAppend(t, l, batch(2, 1))
	mustAppend(t, l, batch(2, 1)) // 10..13 not synced
	var mu sync.Mutex
	var after []string
	failed := false
	ffs.SetMask(vfs.OpSync | vfs.OpOpenReadWrite)
	ffs.FailAt(1, syscall.EIO, false) // the next sync: the .log's
	ffs.Trace(func(n int64, op vfs.Op, name string) {
		mu.Lock()
		defer mu.Unlock()
		if failed {
			after = append(after, op.String()+" "+path.Base(name))
		}
		if op == vfs.OpSync {
			failed = true
		}
	})
	if err := l.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync: %v, want EIO", err)
	}
	if l.LogEndOffset() != 10 {
		t.Fatalf("end %d after a failed sync, want 10 (the last synced)", l.LogEndOffset())
	}
	logName := segment.FileName(0, segment.LogExt)
	if !slices.Contains(after, "open-rw "+logName) {
		t.Fatalf("segment not reopened from disk after the failed fsync: %v", after)
	}
	if off := mustAppend(t, l, batch(2, 1)); off != 10 {
		t.Fatalf("append after a failed sync: offset %d, want 10", off)
	}
	mustSync(t, l)
	b, _ := readBytes(t, l, 0, 1<<20, 100)
	if offs, _, err := kafkaEntries(b); err != nil || len(offs) != 6 {
		t.Fatalf("read %v, %v", offs, err)
	}
}

// TestResumedActiveSegment: after a clean reopen the active segment's indexes are read
// only when first needed, while appends go on; lookups over old and new entries work,
// also when the old index entries turn out to be bad, and the files are right at the
// next open.
func TestResumedActiveSegment(t *testing.T) {
	for _, damage := range []string{"none", "index", "timeindex"} {
		t.Run(damage, func(t *testing.T) {
			mem := vfs.NewMem()
			cfg := Config{FS: mem, IndexInterval: 200}
			l := mustOpen(t, "/log", cfg)
			for i := 0; i < 30; i++ {
				mustAppend(t, l, batch(2, int64(i*10)))
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			switch damage {
			case "index":
				f, _ := mem.OpenReadWrite("/log/" + segment.FileName(0, segment.IndexExt))
				f.WriteAt(bytes.Repeat([]byte{0xEE}, 8), 8)
				f.Close()
			case "timeindex":
				f, _ := mem.OpenReadWrite("/log/" + segment.FileName(0, segment.TimeIndexExt))
				f.WriteAt(make([]byte, 12), 12)
				f.Close()
			}
			core, logs := observer.New(zap.WarnLevel)
			cfg.Logger = zap.New(core)
			l = mustOpen(t, "/log", cfg)
			for i := 30; i < 60; i++ {
				mustAppend(t, l, batch(2, int64(i*10)))
			}
			check := func(l *Log) {
				t.Helper()
				for o := Offset(0); o < 120; o++ {
					if e, err := l.Entry(o); err != nil || segmentHeaderBase(e) != o-o%2 {
						t.Fatalf("Entry(%d): %v", o, err)
					}
				}
				for _, q := range []int64{0, 55, 295, 305, 590} {
					want := Offset((q + 9) / 10 * 2)
					if off, _, err := l.OffsetForTimestamp(q); err != nil || off != want {
						t.Fatalf("OffsetForTimestamp(%d) = %d, %v; want %d", q, off, err, want)
					}
				}
			}
			check(l)
			if rebuilt := logs.FilterMessage("rebuilding segment index").Len(); (rebuilt > 0) != (damage != "none") {
				t.Fatalf("%d index rebuilds with damage %q", rebuilt, damage)
			}
			for i := 60; i < 70; i++ {
				mustAppend(t, l, batch(2, int64(i*10)))
			}
			mustSync(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// The index files are whole and right: a lazily resumed segment that is
			// loaded at once reads them without a rebuild.
			for _, ext := range []string{segment.IndexExt, segment.TimeIndexExt} {
				f, _ := mem.Open("/log/" + segment.FileName(0, ext))
				st, _ := f.Stat()
				b := make([]byte, st.Size())
				f.ReadAt(b, 0)
				f.Close()
				var err error
				if ext == segment.IndexExt {
					_, err = segment.DecodeIndex(b, 1<<30, 140)
				} else {
					_, err = segment.DecodeTimeIndex(b, 140)
				}
				if err != nil {
					t.Fatalf("%s after close: %v", ext, err)
				}
			}
			l = mustOpen(t, "/log", cfg)
			defer l.Close()
			check(l)
		})
	}
}

// TestSyncSyncsTheDirectoryOnlyWhenNeeded: the directory is fsynced after segments were
// created or removed, once.
func TestSyncSyncsTheDirectoryOnlyWhenNeeded(t *testing.T) {
	mem := vfs.NewMem()
	ffs := vfs.NewFaultFS(mem)
	c := countOps(ffs)
	cfg := Config{FS: ffs, SegmentBytes: 2000, RetentionBytes: 4000}
	l := mustOpen(t, "/log", cfg)
	defer l.Close()
	fillLog(t, l, 40, 2) // rolls
	if err := l.EnforceRetention(time.Now()); err != nil {
		t.Fatal(err)
	}
	dirSyncs := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.ops["sync log"]
	}
	mustSync(t, l) // syncs the directory: segments were removed
	before, segs, n := dirSyncs(), l.Segments(), 0
	for ; l.active().Size()+2*int64(len(batch(1, 1))) < cfg.SegmentBytes; n++ {
		mustAppend(t, l, batch(1, 1))
		mustSync(t, l)
	}
	if l.Segments() != segs || n == 0 {
		t.Fatalf("rolled, or no room: %d appends", n)
	}
	if got := dirSyncs() - before; got != 0 {
		t.Fatalf("%d directory syncs for appends that created no segment", got)
	}
}
