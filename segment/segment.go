package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/vfs"
)

// File name extensions of a segment's files.
const (
	LogExt       = ".log"
	IndexExt     = ".index"
	TimeIndexExt = ".timeindex"
)

// MaxSize is the largest a segment's .log may grow: positions in the index are uint32.
const MaxSize = math.MaxUint32

// Defaults for Options.
const (
	DefaultIndexInterval = 4096
	DefaultMaxEntryBytes = 256 << 20
	// DefaultPreallocate is Options.Preallocate for FormatKafka segments.
	DefaultPreallocate = 1 << 20
)

// topUpInterval is the least time between two preallocations of one segment: it bounds
// the zeros written ahead to Preallocate bytes per interval however fast the segment
// grows (past that rate appends grow the file, and their syncs are large anyway).
const topUpInterval = 100 * time.Millisecond

// ErrPoisoned is returned by every write to a segment after one of its files failed to
// sync: the data the kernel dropped cannot be written again, so the segment must be
// closed and recovered from disk.
var ErrPoisoned = errors.New("segment: poisoned by a failed sync")

// FileName returns the name of the file of the segment at base with extension ext:
// the base offset in 20 digits, e.g. 00000000000000000042.log.
func FileName(base Offset, ext string) string {
	return fmt.Sprintf("%020d%s", base, ext)
}

// ParseFileName parses a name made by FileName. It accepts exactly 20 digits followed by
// one of the three extensions, so "7.log" and "00000000000000000007.log.tmp" are not
// segment files.
func ParseFileName(name string) (base Offset, ext string, ok bool) {
	if len(name) < 21 {
		return 0, "", false
	}
	digits, ext := name[:20], name[20:]
	if ext != LogExt && ext != IndexExt && ext != TimeIndexExt {
		return 0, "", false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, "", false
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return Offset(n), ext, true
}

// Options configure the segments of one log.
type Options struct {
	FS     vfs.FS
	Dir    string
	Format Format
	// IndexInterval is the bytes of log between two index entries.
	IndexInterval int64
	// MaxEntryBytes is the largest entry, header included, recovery accepts.
	MaxEntryBytes int64
	// Preallocate is how many bytes of zeros the writer keeps written past the end of
	// the .log it appends to: appends then land in blocks the file system has already
	// allocated and initialised, so the fdatasync that makes them durable writes the data
	// without a journal commit for the file's size and block map (on ext4 that commit is
	// shared by every file of the file system, and most of a small sync's latency and
	// nearly all of its tail). Space fallocate(2)d without writing does not do: writing
	// into it converts extents, which is metadata too. The zeros are never data: readers
	// and recovery stop at the last entry (a zero header is not a valid entry), Seal and
	// closing the log cut them off, and Recover cuts a zero tail without reporting
	// corruption. Zero: DefaultPreallocate for FormatKafka, none for FormatEntries;
	// negative: none.
	Preallocate int64
	// DropCacheAfterSync makes Sync tell the kernel that the .log pages it made durable
	// will not be read again soon (POSIX_FADV_DONTNEED), for logs written once and
	// read back only in rare cases, whose pages would otherwise crowd the page cache
	// at the expense of the data readers want. Its owner keeps what it rereads.
	DropCacheAfterSync bool
	Logger             *zap.Logger
}

func (o *Options) fill() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.IndexInterval <= 0 {
		o.IndexInterval = DefaultIndexInterval
	}
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if o.Preallocate == 0 && o.Format == FormatKafka {
		o.Preallocate = DefaultPreallocate
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// Point is a place in a segment up to which its .log bytes, and its index files up to
// the given lengths, are durable and verified: recovery after an unclean shutdown trusts
// what lies before it and scans from it.
type Point struct {
	Position           int64  // bytes of .log
	Next               Offset // the offset of the entry at Position
	IndexBytes         int64  // bytes of .index
	TimeIndexBytes     int64  // bytes of .timeindex
	MaxTimestamp       int64  // the largest maxTimestamp before Position; -1: none
	MaxTimestampOffset Offset // the first entry that has it; -1: none
}

// Segment is one segment of a log: its .log of entries and the sparse .index and
// .timeindex over it. It has one writer (Append, Sync, FlushIndex, Seal, TruncateTo,
// Close) and any number of concurrent readers, who see only entries the writer has fully
// appended. It is reference counted: the owner holds one reference from Create, Open or
// Recover; readers Acquire and Release theirs; the files close with the last one.
type Segment struct {
	o       Options
	base    Offset
	log     vfs.File
	logPath string

	// end is what readers may see: entries [base, next) in bytes [0, size), packed in
	// one word so that the two always match: next-base in the high 32 bits, size in the
	// low 32.
	end  atomic.Uint64
	refs atomic.Int32
	// gen counts truncations: a reader that saw one generation and finds another after
	// reading knows its bytes may have been cut and overwritten.
	gen atomic.Uint64

	loadMu sync.Mutex // held while reading the index files
	loaded atomic.Bool
	index  offsetIndex
	times  timeIndex

	// Writer state, touched only by the writer.
	w struct {
		b                       builder
		indexFile, timeFile     vfs.File
		indexFlushed, timeFlush int  // bytes of index/times the files hold
		resumed                 bool // Resume ran
		hdr                     [BatchHeaderSize]byte
		bufs                    [3][]byte
		// reused is set by Reuse: every append also writes zeros after its entry, a
		// header's worth at least and up to the end of the page, so that recovery
		// tells the file's old bytes past the last entry from damage (endMarkAt).
		reused                   bool
		indexOpened, timesOpened bool
		// fileEnd is the size of the .log file: Size() plus the zeros written ahead.
		// Invariant: the bytes of [Size(), fileEnd) are zero, or, with tailDirty set,
		// a failed append's or the old bytes of a reused file (Reuse).
		fileEnd   int64
		lastTopUp time.Time // when zeros were last written ahead
	}
	synced     atomic.Int64 // bytes of .log known durable
	syncedNext atomic.Int64
	// Page cache advice (DropCacheAfterSync, Uncache), over the .log's pages: those
	// below dropped were dropped, or asked to be twice; those in [dropped, kickedLast)
	// were asked once; write-back of those in [kickedLast, kicked) started at the last
	// Uncache. Invariant: dropped <= kickedLast <= kicked.
	cacheMu                     sync.Mutex
	dropped, kickedLast, kicked int64
	// Sync may run beside Append (it waits for the disk without the writer's lock), so
	// the state both touch is atomic.
	tailDirty atomic.Bool // the .log may hold bytes past size (a failed append, a reused file)
	// retired, set by Retire, is called by the last Release.
	retired func()
	removed atomic.Bool // Remove ran
	// resized is set when the .log was cut (Seal): the next Sync must sync even if no
	// entry was appended, so that the file's size is durable before anyone trusts it.
	resized  atomic.Bool
	poisoned atomic.Bool // a sync failed
	// rewrite says the index files hold entries that failed their checks (found by a
	// load after the writer resumed): the writer rewrites them whole at its next flush.
	rewrite atomic.Bool
	// lazy is where a segment resumed without reading its indexes stood: the index
	// entries in the files describe the bytes before it.
	// Guarded by loadMu.
	lazy struct {
		resumed bool
		size    int64
		next    Offset
	}
}

// builder adds index entries as entries are appended or scanned.
type builder struct {
	base       Offset
	interval   int64
	index      *offsetIndex
	times      *timeIndex
	sinceIndex int64 // bytes since the last index entry
	lastTimeTS int64 // the timestamp of the last time-index entry; -1: none
	maxTS      int64
	maxOffset  Offset
}

func (b *builder) add(pos int64, info EntryInfo) {
	if info.MaxTimestamp > b.maxTS {
		b.maxTS, b.maxOffset = info.MaxTimestamp, info.Base
		b.times.setMax(b.maxTS, b.maxOffset)
	}
	if pos > 0 && b.sinceIndex >= b.interval {
		b.index.append(uint32(info.Base-b.base), uint32(pos))
		b.sinceIndex = 0
		if b.maxTS > b.lastTimeTS {
			b.times.append(b.maxTS, uint32(b.maxOffset-b.base))
			b.lastTimeTS = b.maxTS
		}
	}
	b.sinceIndex += info.Size
}

// seal adds the final time-index entry, so that the file records the segment's maximum.
func (b *builder) seal() {
	if b.maxTS > b.lastTimeTS {
		b.times.append(b.maxTS, uint32(b.maxOffset-b.base))
		b.lastTimeTS = b.maxTS
	}
}

func (s *Segment) path(ext string) string {
	if ext == LogExt && s.logPath != "" {
		return s.logPath
	}
	return filepath.Join(s.o.Dir, FileName(s.base, ext))
}

func newSegment(o Options, base Offset) *Segment {
	o.fill()
	s := &Segment{o: o, base: base}
	s.logPath = s.path(LogExt)
	s.refs.Store(1)
	s.times.maxTS, s.times.maxOffset = -1, -1
	s.w.b = builder{base: base, interval: o.IndexInterval, index: &s.index, times: &s.times,
		lastTimeTS: -1, maxTS: -1, maxOffset: -1}
	return s
}

// Create makes a new, empty segment at base, truncating any files of that name. It does
// not sync the directory.
func Create(o Options, base Offset) (*Segment, error) {
	s := newSegment(o, base)
	var err error
	if s.log, err = s.o.FS.Create(s.path(LogExt)); err != nil {
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	if err := s.startEmpty(); err != nil {
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	return s, nil
}

// startEmpty creates the index files of a new segment whose .log is open and makes it an
// empty segment at its base. On an error it closes the files.
func (s *Segment) startEmpty() error {
	var err error
	if s.w.indexFile, err = s.o.FS.Create(s.path(IndexExt)); err == nil {
		s.w.timeFile, err = s.o.FS.Create(s.path(TimeIndexExt))
	}
	if err != nil {
		s.closeFiles()
		return err
	}
	s.w.indexOpened, s.w.timesOpened = true, true
	s.publish(0, s.base)
	s.syncedNext.Store(int64(s.base))
	s.loaded.Store(true)
	return nil
}

// Reuse makes a new, empty segment at base out of a .log that Retire moved to retired,
// renaming it to the segment's name (and truncating any index files of that name). It
// does not sync the directory. Appends write over the old bytes; those past the end are
// never read: readers stop at the segment's end, Seal and Truncate cut them off, and
// Recover cuts them without calling them damage, as each append writes a zero header
// after its entry. A file may be reused only by a log whose offsets have only grown
// since it was retired: an old entry must never pass for a new one.
func Reuse(o Options, base Offset, retired string) (*Segment, error) {
	s := newSegment(o, base)
	if err := o.FS.Rename(retired, s.path(LogExt)); err != nil {
		return nil, fmt.Errorf("reuse %s for segment %d: %w", retired, base, err)
	}
	var err error
	if s.log, err = s.o.FS.OpenReadWrite(s.path(LogExt)); err != nil {
		return nil, fmt.Errorf("reuse %s for segment %d: %w", retired, base, err)
	}
	st, err := s.log.Stat()
	if err == nil && st.Size() > MaxSize {
		err = fmt.Errorf("%d bytes", st.Size())
	}
	if err != nil {
		s.closeFiles()
	} else {
		err = s.startEmpty()
	}
	if err != nil {
		return nil, fmt.Errorf("reuse %s for segment %d: %w", retired, base, err)
	}
	s.w.fileEnd = st.Size()
	s.tailDirty.Store(st.Size() > 0)
	s.w.reused = true
	return s, nil
}

// Open opens the segment at base whose bytes are trusted (written before a clean
// shutdown or a recovery checkpoint) and whose entries end at next. Its indexes are read
// when first needed.
func Open(o Options, base, next Offset) (*Segment, error) {
	s := newSegment(o, base)
	var err error
	if s.log, err = s.o.FS.OpenReadWrite(s.path(LogExt)); err != nil {
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	st, err := s.log.Stat()
	if err != nil {
		s.log.Close()
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	if st.Size() > MaxSize || uint64(next-base) > math.MaxUint32 || next < base {
		s.log.Close()
		return nil, fmt.Errorf("open segment %d: %w", base, &CorruptionError{Path: s.path(LogExt),
			Err: fmt.Errorf("%w: %d bytes up to offset %d do not fit a segment", ErrCorrupt, st.Size(), next)})
	}
	s.publish(st.Size(), next)
	s.w.fileEnd = st.Size()
	s.synced.Store(st.Size())
	s.syncedNext.Store(int64(next))
	return s, nil
}

// Recover opens the segment at base after an unclean shutdown. It trusts the bytes and
// index entries before p (use Point{Next: base, MaxTimestamp: -1, MaxTimestampOffset:
// -1} to trust nothing), scans the rest checking every entry's length, offset and CRC,
// truncates the .log at the first bad byte and rebuilds the indexes past p. cut is
// non-nil when bytes were cut off, and says where.
func Recover(o Options, base Offset, p Point) (s *Segment, cut *CorruptionError, err error) {
	s = newSegment(o, base)
	defer func() {
		if err != nil {
			s.closeFiles()
			s = nil
			err = fmt.Errorf("recover segment %d: %w", base, err)
		}
	}()
	if s.log, err = s.o.FS.OpenReadWrite(s.path(LogExt)); err != nil {
		return
	}
	st, err := s.log.Stat()
	if err != nil {
		return
	}
	fileSize := min(st.Size(), MaxSize)
	if p.Position > fileSize || p.Next < base {
		s.o.Logger.Warn("segment shorter than its recovery point; scanning it all",
			zap.String("path", s.path(LogExt)), zap.Int64("size", fileSize), zap.Int64("point", p.Position))
		p = Point{Next: base, MaxTimestamp: -1, MaxTimestampOffset: -1}
	}
	if err = s.openIndexFiles(); err != nil {
		return
	}
	idx, err := readPrefix(s.w.indexFile, p.IndexBytes)
	if err != nil {
		return
	}
	tix, err := readPrefix(s.w.timeFile, p.TimeIndexBytes)
	if err != nil {
		return
	}
	relEnd := uint64(p.Next - base)
	nIdx, _ := DecodeIndex(idx, p.Position, relEnd)
	nTix, _ := DecodeTimeIndex(tix, relEnd)
	s.index.buf = idx[:nIdx]
	s.times.buf = tix[:nTix]
	s.w.indexFlushed, s.w.timeFlush = nIdx, nTix
	if err = s.w.indexFile.Truncate(int64(nIdx)); err != nil {
		return
	}
	if err = s.w.timeFile.Truncate(int64(nTix)); err != nil {
		return
	}
	b := &s.w.b
	b.maxTS, b.maxOffset = p.MaxTimestamp, p.MaxTimestampOffset
	if b.maxTS < 0 {
		b.maxTS, b.maxOffset = -1, -1
	}
	s.times.setMax(b.maxTS, b.maxOffset)
	if ts, _, ok := s.times.last(); ok {
		b.lastTimeTS = ts
	}
	b.sinceIndex = p.Position
	if _, pos, ok := s.index.last(); ok {
		b.sinceIndex = p.Position - int64(pos)
	}
	end, next, bad, err := s.scan(p.Position, fileSize, p.Next, true, b.add)
	if err != nil {
		return
	}
	if end < st.Size() {
		var zeros bool
		if zeros, err = allZero(s.log, end, st.Size()); err != nil {
			return
		}
		if !zeros && !s.endMarkAt(end) {
			// A zero tail is what Preallocate leaves, a zero header then old bytes what
			// a reused file does (Reuse); anything else is damage.
			if bad == nil {
				bad = &CorruptionError{Offset: end, Err: fmt.Errorf("%w: %d stray bytes", ErrCorrupt, st.Size()-end)}
			}
			bad.Path = s.path(LogExt)
			cut = bad
		}
		if err = s.log.Truncate(end); err != nil {
			return
		}
		if err = s.log.Sync(); err != nil {
			return
		}
	}
	s.w.fileEnd = end
	// The file's durable size is unknown: a cut of the zeros written ahead (Seal) may
	// not have been synced before the crash. The next Sync syncs it.
	s.resized.Store(true)
	s.publish(end, next)
	// What was scanned may sit in the page cache only (a killed process): only what the
	// point covers, or a synced cut, is known durable.
	if cut != nil {
		s.synced.Store(end)
		s.syncedNext.Store(int64(next))
	} else {
		s.synced.Store(p.Position)
		s.syncedNext.Store(int64(p.Next))
	}
	s.loaded.Store(true)
	return s, cut, nil
}

// endMarkAt reports whether a zero entry header, which appends to a reused file write
// after their entry, starts at byte pos of the .log.
func (s *Segment) endMarkAt(pos int64) bool {
	hdr := make([]byte, s.o.Format.HeaderSize())
	if n, _ := s.log.ReadAt(hdr, pos); n < len(hdr) {
		return false
	}
	for _, c := range hdr {
		if c != 0 {
			return false
		}
	}
	return true
}

// allZero reports whether bytes [from, to) of f are all zero.
func allZero(f vfs.File, from, to int64) (bool, error) {
	buf := make([]byte, min(to-from, 64<<10))
	for from < to {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), to-from)], from)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		from += int64(n)
		if err == io.EOF || (err == nil && n == 0) {
			return true, nil // shorter than its Stat said: nothing more to look at
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// readPrefix reads up to n bytes from the start of f.
func readPrefix(f vfs.File, n int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n = min(n, st.Size())
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

func (s *Segment) openIndexFiles() error {
	var err error
	if !s.w.indexOpened {
		if s.w.indexFile, err = s.o.FS.OpenReadWrite(s.path(IndexExt)); err != nil {
			return err
		}
		s.w.indexOpened = true
	}
	if !s.w.timesOpened {
		if s.w.timeFile, err = s.o.FS.OpenReadWrite(s.path(TimeIndexExt)); err != nil {
			return err
		}
		s.w.timesOpened = true
	}
	return nil
}

// publish makes entries [base, next) in bytes [0, size) visible to readers.
func (s *Segment) publish(size int64, next Offset) {
	s.end.Store(uint64(next-s.base)<<32 | uint64(size))
}

// extent returns what readers may see: the size and the next offset.
func (s *Segment) extent() (int64, Offset) {
	e := s.end.Load()
	return int64(e & math.MaxUint32), s.base + Offset(e>>32)
}

// Generation returns the number of truncations so far. Bytes read while it did not
// change are the entries the reader was promised.
func (s *Segment) Generation() uint64 { return s.gen.Load() }

// Base returns the segment's first offset.
func (s *Segment) Base() Offset { return s.base }

// Next returns the offset after the segment's last entry.
func (s *Segment) Next() Offset { _, n := s.extent(); return n }

// Size returns the bytes of the segment's .log that readers may read.
func (s *Segment) Size() int64 { n, _ := s.extent(); return n }

// File returns the .log file, for reading with ReadAt (never Read: the position is
// shared) or sendfile with an explicit offset.
func (s *Segment) File() vfs.File { return s.log }

// Path returns the path of the .log file.
func (s *Segment) Path() string { return s.path(LogExt) }

// Format returns the format of the segment's entries.
func (s *Segment) Format() Format { return s.o.Format }

// Acquire takes a reference for a reader. The caller must know the segment is still
// referenced (it found it in its owner's list under the owner's lock).
func (s *Segment) Acquire() { s.refs.Add(1) }

// Release drops a reference; the last one closes the files (and, after Retire, says so).
func (s *Segment) Release() {
	if n := s.refs.Add(-1); n == 0 {
		s.closeFiles()
		if s.retired != nil {
			s.retired()
		}
	} else if n < 0 {
		panic("segment: Release without a reference")
	}
}

func (s *Segment) closeFiles() {
	for _, f := range []vfs.File{s.log, s.w.indexFile, s.w.timeFile} {
		if f != nil {
			f.Close()
		}
	}
}

// Remove deletes the segment's files from the directory. Readers holding references go
// on reading the open files; the space is freed when the last reference is released
// (or by FreeGradually).
func (s *Segment) Remove() error {
	s.removed.Store(true)
	var first error
	for _, ext := range []string{LogExt, IndexExt, TimeIndexExt} {
		if err := s.o.FS.Remove(s.path(ext)); err != nil && !errors.Is(err, fs.ErrNotExist) && first == nil {
			first = fmt.Errorf("remove segment %d: %w", s.base, err)
		}
	}
	return first
}

// FreeGradually drops the caller's reference to a removed segment (Remove), like
// Release. When no reader holds the segment any more it first frees the .log's blocks a
// step bytes at a time, from the end, pausing between steps: freeing them all at once
// (the last close) holds the file system's journal for as long as it takes, every fsync
// waiting behind it; on a file system mounted with discard that includes a TRIM of each
// block. On this project's machines (BenchmarkFreeSegment in log/) closing a removed
// 256 MiB file held a concurrent fsync 59-93 ms; in 8 MiB steps 5 ms apart, at most
// 4.9-5.9 ms. Nothing may acquire the segment meanwhile (it is out of its owner's list,
// as Remove requires).
func (s *Segment) FreeGradually(step int64, pause time.Duration) {
	if s.removed.Load() && s.refs.Load() == 1 && step > 0 {
		if st, err := s.log.Stat(); err == nil {
			for size := st.Size() - step; size > 0; size -= step {
				if s.log.Truncate(size) != nil {
					break
				}
				time.Sleep(pause)
			}
		}
	}
	s.Release()
}

// Retire is Remove for a .log that a later segment will write over (Reuse): it removes
// the index files and renames the .log to path, and the last Release calls done, after
// which the file may be reused. The file keeps its blocks, so that writing them again
// needs no allocation and an fdatasync of bytes written over no journal commit; freeing
// them costs a commit too, and on a file system mounted with discard a TRIM of every
// block. Readers holding references go on reading the open file until they release it.
// Call it, like Remove, once the segment is out of its owner's list, before dropping the
// owner's reference. On an error the .log is still under its own name.
func (s *Segment) Retire(path string, done func()) error {
	for _, ext := range []string{IndexExt, TimeIndexExt} {
		if err := s.o.FS.Remove(s.path(ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("retire segment %d: %w", s.base, err)
		}
	}
	if err := s.o.FS.Rename(s.path(LogExt), path); err != nil {
		return fmt.Errorf("retire segment %d: %w", s.base, err)
	}
	s.retired = done
	return nil
}

// Poisoned reports whether a sync of the segment's files failed.
func (s *Segment) Poisoned() bool { return s.poisoned.Load() }

// Append writes one entry in one system call and returns its base offset. In FormatKafka
// entry is a whole RecordBatch v2: the copy on disk gets baseOffset = Next() and
// partitionLeaderEpoch = epoch (entry itself is not modified) and takes lastOffsetDelta+1
// offsets; the CRC is not checked. In FormatEntries entry is the payload, framed with its
// offset, length and CRC-32C, and takes one offset; epoch is ignored.
//
// Append returns ErrInvalidEntry for a malformed batch header, ErrFull when the entry
// does not fit the segment, ErrPoisoned after a failed sync, and the I/O error of a
// failed write, after cutting any partly written bytes back off.
func (s *Segment) Append(entry []byte, epoch int32) (Offset, error) {
	if s.poisoned.Load() {
		return 0, ErrPoisoned
	}
	pos, base := s.extent()
	var info EntryInfo
	var hdr, body []byte
	if s.o.Format == FormatEntries {
		PutEntryHeader(s.w.hdr[:], base, entry)
		hdr, body = s.w.hdr[:EntryHeaderSize], entry
		info = EntryInfo{Base: base, Last: base, Size: EntryHeaderSize + int64(len(entry)), MaxTimestamp: -1}
	} else {
		h, err := ParseBatchHeader(entry)
		if err != nil {
			return 0, err
		}
		if h.Size() != int64(len(entry)) {
			return 0, fmt.Errorf("%w: batch length %d does not match %d bytes", ErrInvalidEntry, h.Length, len(entry))
		}
		const fixed = BatchMagicPos + 1 // baseOffset, batchLength, partitionLeaderEpoch, magic
		copy(s.w.hdr[:fixed], entry)
		putUint64(s.w.hdr[BatchBaseOffsetPos:], uint64(base))
		putUint32(s.w.hdr[BatchLeaderEpochPos:], uint32(epoch))
		hdr, body = s.w.hdr[:fixed], entry[fixed:]
		info = EntryInfo{Base: base, Last: base + Offset(h.LastOffsetDelta), Size: h.Size(), MaxTimestamp: h.MaxTimestamp}
	}
	if pos+info.Size > MaxSize || uint64(info.Last-s.base) >= math.MaxUint32 {
		return 0, ErrFull
	}
	s.w.bufs[0], s.w.bufs[1] = hdr, body
	bufs := s.w.bufs[:2]
	needed := info.Size // bytes the append must write
	if s.w.reused {
		// The zeros run on to the end of the page: a write that ends inside a page of
		// the file that is not cached makes the kernel read that page from the disk
		// first, and a reused file's pages are not cached. Only the first header's
		// worth is needed.
		// Past the file's end there is nothing to read, and no need to grow it.
		tail := int64(s.o.Format.HeaderSize())
		needed += tail
		if r := (pos + needed) % pageSize; r != 0 {
			tail += min(pageSize-r, max(0, s.w.fileEnd-pos-needed))
		}
		s.w.bufs[2] = zeroChunk[:tail]
		bufs = s.w.bufs[:3]
	}
	n, err := vfs.WriteVAt(s.log, bufs, pos)
	s.w.bufs[0], s.w.bufs[1], s.w.bufs[2] = nil, nil, nil
	if err != nil && int64(n) >= needed {
		// Only zeros past the end header are missing: they spare a read, nothing more.
		s.o.Logger.Debug("padding a reused segment's page", zap.String("path", s.Path()), zap.Error(err))
		err = nil
	}
	if err != nil {
		if n > 0 || s.tailDirty.Load() {
			if terr := s.log.Truncate(pos); terr == nil {
				s.tailDirty.Store(false)
				s.w.fileEnd = pos
			} else {
				s.tailDirty.Store(true)
				s.w.fileEnd = max(s.w.fileEnd, pos+int64(n))
			}
		}
		return 0, fmt.Errorf("append to segment %d at byte %d: %w", s.base, pos, err)
	}
	end := pos + info.Size
	s.w.fileEnd = max(s.w.fileEnd, int64(n)+pos)
	s.w.b.add(pos, info)
	s.publish(end, info.Last+1)
	s.topUp(end)
	return base, nil
}

// zeroChunk is what preallocation writes: zero pages, never written, so free.
var zeroChunk [1 << 20]byte

// topUp writes zeros ahead of end (the end of the entries), up to Options.Preallocate
// bytes past it, when fewer than a quarter of that remain, at most once per
// topUpInterval. A failure is left alone: the zeros are an optimisation, and the next
// append reports a real problem. Writer only.
func (s *Segment) topUp(end int64) {
	want := s.o.Preallocate
	if want <= 0 || s.tailDirty.Load() || s.w.fileEnd-end >= want/4 || end+want > MaxSize {
		return
	}
	now := time.Now()
	if now.Sub(s.w.lastTopUp) < topUpInterval {
		return
	}
	s.w.lastTopUp = now
	for s.w.fileEnd < end+want {
		n, err := s.log.WriteAt(zeroChunk[:min(int64(len(zeroChunk)), end+want-s.w.fileEnd)], s.w.fileEnd)
		s.w.fileEnd += int64(n)
		if err != nil {
			s.o.Logger.Debug("preallocating a segment", zap.String("path", s.Path()), zap.Error(err))
			return
		}
	}
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	b[0], b[1], b[2], b[3] = byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32)
	b[4], b[5], b[6], b[7] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func putUint32(b []byte, v uint32) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// Sync makes the appended entries durable (fdatasync of the .log). A failure poisons
// the segment: every later write returns ErrPoisoned, and the owner must close it and
// recover it from disk.
func (s *Segment) Sync() error {
	if s.poisoned.Load() {
		return ErrPoisoned
	}
	size, next := s.extent()
	resized := s.resized.Swap(false)
	if s.synced.Load() == size && !s.tailDirty.Load() && !resized {
		return nil
	}
	if err := s.log.Sync(); err != nil {
		s.poisoned.Store(true)
		return fmt.Errorf("sync segment %d: %w", s.base, err)
	}
	s.synced.Store(size)
	s.syncedNext.Store(int64(next))
	if s.o.DropCacheAfterSync {
		s.dropSynced(size)
	}
	return nil
}

// dropSynced drops the cached pages of the .log below size, which is durable and so
// clean, leaving the partial page at the end, which the next append writes into.
func (s *Segment) dropSynced(size int64) {
	end := size &^ (pageSize - 1)
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.clampCacheMarks(end)
	if s.dropped < end {
		s.dropCache(s.dropped, end)
		s.dropped = end
		s.kickedLast, s.kicked = max(s.kickedLast, end), max(s.kicked, end)
	}
}

// Uncache is for a segment nobody reads for now. It asks the kernel to drop the pages
// whose write-back the last two calls started: those still being written back stay,
// and the next call asks again. Then it starts the write-back of the whole pages
// appended since the last call. It changes nothing about durability.
func (s *Segment) Uncache() { s.adviseCache(true) }

// WriteBack starts the write-back of the whole pages appended since the last call (or
// Uncache), keeping them cached.
func (s *Segment) WriteBack() { s.adviseCache(false) }

// adviseCache is Uncache (drop) or WriteBack: it drops, if asked, the pages whose
// write-back the last two calls started, then starts the write-back of the whole pages
// appended since the last call.
func (s *Segment) adviseCache(drop bool) {
	if s.poisoned.Load() {
		return
	}
	end := s.Size() &^ (pageSize - 1)
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.clampCacheMarks(end)
	if drop {
		s.dropCache(s.dropped, s.kicked)
		s.dropped, s.kickedLast = s.kickedLast, s.kicked
	}
	if s.kicked < end {
		if err := vfs.StartWriteback(s.log, s.kicked, end-s.kicked); err != nil {
			s.o.Logger.Debug("starting write-back", zap.String("path", s.Path()), zap.Error(err))
		}
		s.kicked = end
	}
}

// dropCache asks the kernel to drop the .log's clean pages in [from, to). It is advice:
// a failure is only logged.
func (s *Segment) dropCache(from, to int64) {
	if err := vfs.DropCache(s.log, from, to-from); err != nil {
		s.o.Logger.Debug("dropping pages from the page cache", zap.String("path", s.Path()), zap.Error(err))
	}
}

// clampCacheMarks keeps the page cache marks within the segment's whole pages: one cut
// back starts again from its new end. cacheMu is held.
func (s *Segment) clampCacheMarks(end int64) {
	s.dropped, s.kickedLast, s.kicked = min(s.dropped, end), min(s.kickedLast, end), min(s.kicked, end)
}

// pageSize is the page cache's granularity that dropSynced rounds to.
const pageSize = 4096

// Synced returns the bytes and the end offset that the last successful Sync made
// durable.
func (s *Segment) Synced() (size int64, next Offset) {
	return s.synced.Load(), Offset(s.syncedNext.Load())
}

// FlushIndex writes the index entries added since the last flush to the index files.
// It does not sync them. A failed write leaves the entries pending for the next flush.
func (s *Segment) FlushIndex() error {
	if s.poisoned.Load() {
		return ErrPoisoned
	}
	if err := s.openIndexFiles(); err != nil {
		return fmt.Errorf("flush index of segment %d: %w", s.base, err)
	}
	if err := s.applyRewrite(); err != nil {
		return fmt.Errorf("flush index of segment %d: %w", s.base, err)
	}
	idx := s.index.tail(s.w.indexFlushed)
	if len(idx) > 0 {
		n, err := s.w.indexFile.WriteAt(idx, int64(s.w.indexFlushed))
		if err != nil {
			return fmt.Errorf("flush index of segment %d (%d bytes written): %w", s.base, n, err)
		}
		s.w.indexFlushed += len(idx)
	}
	tix := s.times.tail(s.w.timeFlush)
	if len(tix) > 0 {
		n, err := s.w.timeFile.WriteAt(tix, int64(s.w.timeFlush))
		if err != nil {
			return fmt.Errorf("flush time index of segment %d (%d bytes written): %w", s.base, n, err)
		}
		s.w.timeFlush += len(tix)
	}
	return nil
}

// PendingIndexBytes returns the bytes of index entries not yet flushed.
func (s *Segment) PendingIndexBytes() int {
	return s.index.bytes() - s.w.indexFlushed + s.times.bytes() - s.w.timeFlush
}

// SyncIndex makes the flushed index entries durable. A failure poisons the segment.
func (s *Segment) SyncIndex() error {
	if s.poisoned.Load() {
		return ErrPoisoned
	}
	if err := s.openIndexFiles(); err != nil {
		return fmt.Errorf("sync index of segment %d: %w", s.base, err)
	}
	if err := s.w.indexFile.Sync(); err != nil {
		s.poisoned.Store(true)
		return fmt.Errorf("sync index of segment %d: %w", s.base, err)
	}
	if err := s.w.timeFile.Sync(); err != nil {
		s.poisoned.Store(true)
		return fmt.Errorf("sync time index of segment %d: %w", s.base, err)
	}
	return nil
}

// Seal prepares a segment that will take no more appends for a while (rolled, or the
// log is closing): it records the segment's largest timestamp in the time index, cuts
// off the zeros written ahead and bytes a failed append left past the end (the next Sync
// makes the cut durable), and flushes the index entries. A segment whose file cannot be
// cut is poisoned: it holds bytes past its entries that a clean open would trust, so its
// owner must recover it from disk.
func (s *Segment) Seal() error {
	if s.poisoned.Load() {
		return ErrPoisoned
	}
	s.w.b.seal()
	if size := s.Size(); s.tailDirty.Load() || s.w.fileEnd > size {
		if err := s.log.Truncate(size); err != nil {
			s.poisoned.Store(true)
			return fmt.Errorf("seal segment %d: %w", s.base, err)
		}
		s.tailDirty.Store(false)
		s.w.fileEnd = size
		s.resized.Store(true)
	}
	return s.FlushIndex()
}

// Point returns the segment's current end as a recovery point. Flush the index first;
// the point is durable once the .log and index files are synced after this call.
func (s *Segment) Point() Point {
	ts, off := s.times.max()
	size, next := s.extent()
	return Point{
		Position:           size,
		Next:               next,
		IndexBytes:         int64(s.w.indexFlushed),
		TimeIndexBytes:     int64(s.w.timeFlush),
		MaxTimestamp:       ts,
		MaxTimestampOffset: off,
	}
}

// applyRewrite starts the index files over when a load found them bad. Writer only.
func (s *Segment) applyRewrite() error {
	if !s.rewrite.Swap(false) {
		return nil
	}
	s.w.indexFlushed, s.w.timeFlush = 0, 0
	if err := s.w.indexFile.Truncate(0); err != nil {
		s.rewrite.Store(true)
		return err
	}
	if err := s.w.timeFile.Truncate(0); err != nil {
		s.rewrite.Store(true)
		return err
	}
	return nil
}

// Resume makes a segment opened with Open ready for appends. It reads only the last
// entry of each index file, which is all the writer needs; the rest is read when first
// needed, as for any segment opened with Open. So resuming costs the same whatever the
// segment holds. It is not needed after Create or Recover.
func (s *Segment) Resume() error {
	if err := s.openIndexFiles(); err != nil {
		return fmt.Errorf("resume segment %d: %w", s.base, err)
	}
	// Lazily only once: after that, memory holds entries the files may hold too.
	if !s.loaded.Load() && !s.w.resumed {
		ok, err := s.resumeLazily()
		if err != nil || ok {
			return err
		}
	}
	if err := s.load(); err != nil {
		return err
	}
	return s.resumeWriter()
}

// resumeLazily sets up the writer from the last entries of the index files. It
// reports false when they do not look right; the caller then reads them whole.
func (s *Segment) resumeLazily() (bool, error) {
	size, next := s.extent()
	relEnd := uint64(next - s.base)
	idx, idxSize, err := lastEntry(s.w.indexFile, IndexEntrySize)
	if err != nil || idx == nil && idxSize != 0 {
		return false, err
	}
	tix, tixSize, err := lastEntry(s.w.timeFile, TimeIndexEntrySize)
	if err != nil || tix == nil && tixSize != 0 {
		return false, err
	}
	if _, err := DecodeIndex(idx, size, relEnd); err != nil {
		return false, nil
	}
	if _, err := DecodeTimeIndex(tix, relEnd); err != nil {
		return false, nil
	}
	s.loadMu.Lock() // readers may be loading already (a sealed segment resumed by TruncateTo)
	defer s.loadMu.Unlock()
	if s.loaded.Load() {
		return false, nil
	}
	s.w.resumed = true
	s.lazy.resumed, s.lazy.size, s.lazy.next = true, size, next
	s.index.mu.Lock()
	s.index.skip = int(idxSize)
	s.index.mu.Unlock()
	s.times.mu.Lock()
	s.times.skip = int(tixSize)
	s.times.mu.Unlock()
	s.w.indexFlushed, s.w.timeFlush = int(idxSize), int(tixSize)
	b := &s.w.b
	b.sinceIndex = size
	if idx != nil {
		b.sinceIndex = size - int64(binary.BigEndian.Uint32(idx[4:]))
	}
	b.lastTimeTS, b.maxTS, b.maxOffset = -1, -1, -1
	if tix != nil {
		// The last entry of a cleanly closed segment holds its largest timestamp.
		b.lastTimeTS = int64(binary.BigEndian.Uint64(tix))
		b.maxTS, b.maxOffset = b.lastTimeTS, s.base+Offset(binary.BigEndian.Uint32(tix[8:]))
	}
	s.times.setMax(b.maxTS, b.maxOffset)
	return true, nil
}

// lastEntry returns the last whole entry of an index file and the file's size; nil
// when the file is empty or not a whole number of entries.
func lastEntry(f vfs.File, size int64) ([]byte, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	n := st.Size()
	if n == 0 || n%size != 0 {
		return nil, n, nil
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, n-size); err != nil {
		return nil, 0, err
	}
	return b, n, nil
}

func (s *Segment) resumeWriter() error {
	if err := s.openIndexFiles(); err != nil {
		return fmt.Errorf("resume segment %d: %w", s.base, err)
	}
	if err := s.applyRewrite(); err != nil {
		return fmt.Errorf("resume segment %d: %w", s.base, err)
	}
	// The files may hold more than what was found good: cut them to it.
	if err := s.w.indexFile.Truncate(int64(s.w.indexFlushed)); err != nil {
		return fmt.Errorf("resume segment %d: %w", s.base, err)
	}
	if err := s.w.timeFile.Truncate(int64(s.w.timeFlush)); err != nil {
		return fmt.Errorf("resume segment %d: %w", s.base, err)
	}
	b := &s.w.b
	b.maxTS, b.maxOffset = s.times.max()
	b.lastTimeTS = -1
	if ts, _, ok := s.times.last(); ok {
		b.lastTimeTS = ts
	}
	size := s.Size()
	b.sinceIndex = size
	if _, pos, ok := s.index.last(); ok {
		b.sinceIndex = size - int64(pos)
	}
	return nil
}

// load reads the index files of a segment opened with Open, once: all of them, or, for
// a segment resumed lazily, the entries before the point where it resumed, which go in
// front of those appended since. Index files that fail their checks are rebuilt from
// the .log.
func (s *Segment) load() error {
	if s.loaded.Load() {
		return nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.loaded.Load() {
		return nil
	}
	s.index.mu.RLock()
	idxSkip := s.index.skip
	s.index.mu.RUnlock()
	s.times.mu.RLock()
	tixSkip := s.times.skip
	s.times.mu.RUnlock()
	lazy := s.lazy.resumed
	size, next := s.extent()
	if lazy {
		size, next = s.lazy.size, s.lazy.next
	}
	relEnd := uint64(next - s.base)
	idx, idxErr := s.readFile(IndexExt, lazy, idxSkip)
	tix, tixErr := s.readFile(TimeIndexExt, lazy, tixSkip)
	if idxErr == nil {
		_, idxErr = DecodeIndex(idx, size, relEnd)
	}
	if tixErr == nil {
		_, tixErr = DecodeTimeIndex(tix, relEnd)
	}
	if idxErr == nil && tixErr == nil {
		s.index.prepend(idx)
		s.times.prepend(tix)
		if !lazy {
			s.w.indexFlushed, s.w.timeFlush = len(idx), len(tix)
			if ts, rel, ok := s.times.last(); ok {
				s.times.setMax(ts, s.base+Offset(rel))
			}
		}
		s.loaded.Store(true)
		return nil
	}
	s.o.Logger.Warn("rebuilding segment index", zap.String("path", s.path(LogExt)),
		zap.NamedError("index", idxErr), zap.NamedError("timeindex", tixErr))
	var index offsetIndex
	var times timeIndex
	times.maxTS, times.maxOffset = -1, -1
	b := builder{base: s.base, interval: s.o.IndexInterval, index: &index, times: &times,
		lastTimeTS: -1, maxTS: -1, maxOffset: -1}
	end, n, bad, err := s.scan(0, size, s.base, false, b.add)
	if err != nil {
		return fmt.Errorf("rebuild index of segment %d: %w", s.base, err)
	}
	if bad != nil || end != size || n != next {
		if bad == nil {
			bad = &CorruptionError{Offset: end, Err: fmt.Errorf("%w: entries end at offset %d, want %d", ErrCorrupt, n, next)}
		}
		bad.Path = s.path(LogExt)
		return fmt.Errorf("rebuild index of segment %d: %w", s.base, bad)
	}
	b.seal()
	s.index.prepend(index.buf)
	s.times.prepend(times.buf)
	if !lazy {
		s.times.setMax(times.maxTS, times.maxOffset)
	}
	// Nothing of the files is trusted: the writer, if there is one, rewrites them.
	s.rewrite.Store(true)
	s.loaded.Store(true)
	return nil
}

// readFile reads an index file: its first n bytes with prefix, else all of it.
func (s *Segment) readFile(ext string, prefix bool, n int) ([]byte, error) {
	f, err := s.o.FS.Open(s.path(ext))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !prefix {
		return readPrefix(f, math.MaxInt64)
	}
	b, err := readPrefix(f, int64(n))
	if err == nil && len(b) < n {
		err = fmt.Errorf("%w: %s shorter than %d bytes", ErrCorrupt, ext, n)
	}
	return b, err
}

// IndexMemory returns the bytes the segment's in-memory indexes take.
func (s *Segment) IndexMemory() int64 {
	s.index.mu.RLock()
	n := cap(s.index.buf)
	s.index.mu.RUnlock()
	s.times.mu.RLock()
	n += cap(s.times.buf)
	s.times.mu.RUnlock()
	return int64(n)
}
