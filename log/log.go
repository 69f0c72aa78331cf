package log

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// Offset is a position in the log. In FormatKafka a batch of N records takes N offsets;
// in FormatEntries an entry takes one.
type Offset = segment.Offset

// Format says what a log's entries are.
type Format = segment.Format

const (
	// FormatKafka: entries are Kafka RecordBatch v2; Append sets baseOffset and
	// partitionLeaderEpoch in the stored copy; a batch takes lastOffsetDelta+1 offsets.
	FormatKafka = segment.FormatKafka
	// FormatEntries: entries are opaque byte strings, one offset each.
	FormatEntries = segment.FormatEntries
)

var (
	// ErrOffsetOutOfRange is returned by Read and Entry for an offset below
	// LogStartOffset or past LogEndOffset (Entry: at or past it).
	ErrOffsetOutOfRange = errors.New("log: offset out of range")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("log: closed")
	// ErrCorrupt matches errors about bytes that failed a length, offset or checksum
	// check (usually a *CorruptionError).
	ErrCorrupt = segment.ErrCorrupt
	// ErrInvalidEntry is returned by Append for bytes that are not a well-formed
	// RecordBatch v2 (FormatKafka).
	ErrInvalidEntry = segment.ErrInvalidEntry
	// ErrEntryTooLarge is returned by Append for an entry over Config.MaxEntryBytes.
	ErrEntryTooLarge = errors.New("log: entry too large")
	// ErrTruncated is returned by ReadResult methods when a TruncateTo removed the
	// result's entries after the Read that made it.
	ErrTruncated = segment.ErrTruncated
	// ErrTimestampNotFound is returned by OffsetForTimestamp when no entry has a
	// timestamp at or after the one asked for.
	ErrTimestampNotFound = errors.New("log: no entry at or after the timestamp")
	// ErrFailed wraps the error that left the log unable to take writes (a failure in the
	// middle of a truncation, or while recovering from a failed sync). Reads go on;
	// closing and reopening the log recovers it from disk.
	ErrFailed = errors.New("log: failed")
)

// CorruptionError says where bytes failed a check.
type CorruptionError = segment.CorruptionError

// Defaults for Config.
const (
	DefaultSegmentBytes    = 1 << 30
	DefaultCheckpointBytes = 256 << 20
)

// Config configures a Log. The zero value is a FormatKafka log on the real file system
// with 1 GiB segments, no age-based roll and no retention.
type Config struct {
	Format Format
	FS     vfs.FS      // nil: vfs.Default
	Logger *zap.Logger // nil: zap.NewNop()
	// SegmentBytes rolls a new segment when an append would take the active one past
	// this size (at most segment.MaxSize). Default 1 GiB.
	SegmentBytes int64
	// SegmentAge rolls a new segment at the first append after the active one has been
	// open this long. 0: never.
	SegmentAge time.Duration
	// RetentionBytes makes EnforceRetention delete the oldest segments while the log
	// stays at least this large without them. <= 0: no limit.
	RetentionBytes int64
	// RetentionAge makes EnforceRetention delete segments whose newest entry is older:
	// by maxTimestamp in FormatKafka, by the file's modification time in FormatEntries
	// or when batches carry no timestamps. <= 0: no limit.
	RetentionAge time.Duration
	// IndexInterval is the bytes of log between index entries. Default 4096.
	IndexInterval int64
	// MaxEntryBytes is the largest entry Append accepts, and recovery believes, header
	// included. Default 256 MiB.
	MaxEntryBytes int64
	// CheckpointBytes makes Sync write a recovery checkpoint once this many bytes were
	// appended since the last one (and after every roll), bounding what recovery after
	// a crash scans. Default 256 MiB.
	CheckpointBytes int64
	// Now is the clock for roll and retention ages. nil: time.Now.
	Now func() time.Time
	// DropCacheAfterSync makes Sync drop the pages it made durable from the page cache
	// (segment.Options.DropCacheAfterSync): for a log its owner rarely reads back.
	DropCacheAfterSync bool
	// RecycleSegments is how many .log files of segments dropped from the head the log
	// keeps for new segments to write over (segment.Retire and Reuse) rather than
	// creating files: for a log whose head goes as fast as it grows, a Raft log say, on
	// whose files writes then need no block allocation, fdatasyncs no journal commit,
	// and drops no freeing of blocks (a TRIM of each with discard). Only segments of at
	// least half SegmentBytes are kept. 0: none.
	RecycleSegments int
}

func (c *Config) fill() {
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	c.SegmentBytes = min(c.SegmentBytes, segment.MaxSize)
	if c.IndexInterval <= 0 {
		c.IndexInterval = segment.DefaultIndexInterval
	}
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = segment.DefaultMaxEntryBytes
	}
	if c.CheckpointBytes <= 0 {
		c.CheckpointBytes = DefaultCheckpointBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Log is the ordered segments of one partition, or of one Raft log: a directory of
// %020d.log/.index/.timeindex files and a recovery checkpoint.
//
// One writer at a time (Append, Sync, TruncateTo, DeleteBefore, EnforceRetention,
// Close serialize among themselves) and any number of concurrent readers (Read, Entry,
// the offsets and timestamps). Readers see only entries that were fully appended.
// DeleteBefore and EnforceRetention remove the files of the segments they drop after
// releasing the writer's locks: appends and syncs go on meanwhile.
//
// Lock order: syncMu, then writeMu, then mu; rmMu is taken alone or last. mu and rmMu are
// never held over I/O.
type Log struct {
	dir  string
	cfg  Config
	opts segment.Options

	syncMu  sync.Mutex // Sync and the structural changes
	writeMu sync.Mutex // the writer: Append and anything that touches the active segment

	mu sync.RWMutex
	// segs are the segments in offset order; the last is the active one. Guarded by
	// mu for readers; changed only with writeMu held too.
	// Invariant: len(segs) >= 1, and segs[i].Next() == segs[i+1].Base().
	segs []*segment.Segment
	// Invariant: segs[0].Base() <= logStart <= logEnd.
	logStart atomic.Int64
	logEnd   atomic.Int64
	closed   atomic.Bool
	maxTS    struct {
		sync.Mutex
		known bool
		ts    int64
		off   Offset
	}

	// Writer state, guarded by writeMu.
	unsynced      []*segment.Segment // sealed segments not yet synced
	rolls         int64              // segments rolled, ever
	dirDirty      bool               // segment files created or removed since the last directory sync
	activeCreated time.Time
	// hasStray: a roll failed, and files of a segment at stray may have been left
	// behind. The active segment takes no more entries (they would lie past that
	// file's base, which Open would then trust as the segment's end) until a roll
	// succeeds (it recreates the files) or a truncation removes them.
	// Invariant: hasStray implies stray == LogEndOffset.
	hasStray bool
	stray    Offset
	sinceCk  int64      // bytes appended since the last checkpoint
	ckDue    bool       // the next Sync writes a checkpoint whatever sinceCk is
	ck       checkpoint // the last checkpoint written
	failed   error      // sticky; see ErrFailed

	// removing counts segments detached from segs (below the log start) whose files
	// are being removed without the log's locks. A reset, which may create files of the
	// same names, and Close wait until it is zero. Guarded by rmMu.
	rmMu     sync.Mutex
	rmDone   *sync.Cond // signalled when removing drops
	removing int
	// freeing counts the goroutines freeing removed segments' blocks; Close waits.
	freeing sync.WaitGroup

	// The files kept for reuse (Config.RecycleSegments). Guarded by poolMu.
	poolMu  sync.Mutex
	pool    []string // retired .log files no reader holds, ready to be written over
	pooling int      // segments retired whose readers have not all released them
	poolGen uint64   // bumped by a reset: files retired before it are removed instead
	poolSeq uint64   // numbers the retired files' names
}

// Open opens the log in dir, creating dir and an empty log (next offset 0) when there
// is none. After a clean Close it reads no entries; otherwise it scans the segments
// past the last recovery checkpoint, cuts the log at the first entry that fails its
// length, offset or CRC check, and rebuilds their indexes.
func Open(dir string, cfg Config) (*Log, error) {
	cfg.fill()
	l := &Log{dir: dir, cfg: cfg, opts: segment.Options{
		FS: cfg.FS, Dir: dir, Format: cfg.Format, IndexInterval: cfg.IndexInterval,
		MaxEntryBytes: cfg.MaxEntryBytes, DropCacheAfterSync: cfg.DropCacheAfterSync,
		Logger: cfg.Logger,
	}}
	l.rmDone = sync.NewCond(&l.rmMu)
	if err := l.open(); err != nil {
		for _, s := range l.segs {
			s.Release()
		}
		return nil, fmt.Errorf("log: open %s: %w", dir, err)
	}
	return l, nil
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// LogStartOffset returns the first offset readable.
func (l *Log) LogStartOffset() Offset { return Offset(l.logStart.Load()) }

// LogEndOffset returns the offset the next Append assigns.
func (l *Log) LogEndOffset() Offset { return Offset(l.logEnd.Load()) }

// Size returns the bytes of all segments' entries.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.Size()
	}
	return n
}

// Segments returns the number of segments.
func (l *Log) Segments() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segs)
}

// IndexMemory returns the bytes of index held in memory for all segments.
func (l *Log) IndexMemory() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.IndexMemory()
	}
	return n
}

func (l *Log) active() *segment.Segment { return l.segs[len(l.segs)-1] }

// uncacheSegments is how many of the newest segments Uncache looks after: the active
// one and those rolled since the last call or the one before.
const uncacheSegments = 3

// Uncache is for a log nobody reads for now, a follower's replica of a partition, say:
// it starts writing back what was appended since the last call and drops from the page
// cache what the two calls before started writing back (segment.Segment.Uncache), so that a
// log kept for a later failover does not crowd out of memory the data readers want.
// Durability is unchanged: only Sync makes entries durable. Call it from the writer's
// goroutine every few MiB appended.
func (l *Log) Uncache() {
	if l.closed.Load() {
		return
	}
	var segs [uncacheSegments]*segment.Segment
	l.mu.RLock()
	n := 0
	for i := len(l.segs) - 1; i >= 0 && n < len(segs); i-- {
		segs[n] = l.segs[i]
		segs[n].Acquire()
		n++
	}
	l.mu.RUnlock()
	for _, s := range segs[:n] {
		s.Uncache()
		s.Release()
	}
}

// WriteBack starts the write-back of what was appended to the active segment since the
// last call (or Uncache), keeping it cached: the pages go to disk now, a few MiB at a
// time, and a later Sync has little left to write. Durability is unchanged. Call it from
// the writer's goroutine.
func (l *Log) WriteBack() {
	if l.closed.Load() {
		return
	}
	l.mu.RLock()
	s := l.active()
	s.Acquire()
	l.mu.RUnlock()
	s.WriteBack()
	s.Release()
}

// segmentFor returns the segment holding off (the last with base <= off), acquired.
// mu is held.
func (l *Log) segmentFor(off Offset) *segment.Segment {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].Base() > off })
	if i == 0 {
		return nil
	}
	s := l.segs[i-1]
	s.Acquire()
	return s
}

func (l *Log) path(name string) string { return filepath.Join(l.dir, name) }

func (l *Log) setSegments(segs []*segment.Segment) {
	l.mu.Lock()
	l.segs = segs
	l.mu.Unlock()
}

func (l *Log) publishEnd() {
	l.logEnd.Store(int64(l.active().Next()))
}
