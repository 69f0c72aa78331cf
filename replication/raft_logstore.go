package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/vfs"
)

// logStore is a data group's raft.LogStore on a log.Log of FormatEntries: each Raft entry
// is one log entry, so StoreLogs is a run of appends and one fsync, DeleteRange is a
// suffix truncation (conflicting entries) or a head cut (compaction after a snapshot),
// and recent entries stay in a byte-bounded memory cache, which is where the leader reads
// them from when it replicates.
//
// Raft index i is log offset i. When the next entry does not follow the last one (the
// first entry, or the entries after an installed snapshot, when raft may have kept a
// few old entries below the snapshot) the log restarts at the entry's index.
//
// An entry: index uvarint, term uvarint, type byte, appendedAt varint (unix ns),
// len(data) uvarint, data, then the extensions to the end.
//
// Raft calls StoreLogs and suffix DeleteRanges from its main goroutine, head compaction
// (a prefix DeleteRange) from its snapshot goroutine and GetLog from any goroutine. A
// compaction holds compactMu only, so StoreLogs goes on while it removes old segment
// files; everything else that changes the log holds writeMu, then compactMu when it may
// move the log's start or cut it. mu guards the cache, never over I/O.
type logStore struct {
	dir    string
	log    *log.Log
	logger *zap.Logger

	writeMu   sync.Mutex // StoreLogs, suffix DeleteRange and Close serialize
	compactMu sync.Mutex // head compaction; after writeMu
	buf       []byte     // encoding buffer reused when nothing is cached; under writeMu

	appended atomic.Int64 // bytes appended, ever (in this process)

	mu         sync.Mutex
	cache      []*raft.Log
	cacheHead  int // index into cache of the oldest entry
	cacheLen   int
	cacheBytes int64
	cacheMax   int64
}

var _ raft.LogStore = (*logStore)(nil)

const logStoreSegmentBytes = 64 << 20

// logStoreRecycleSegments is how many files of dropped segments a log store keeps for
// new ones to write over (log.Config.RecycleSegments).
const logStoreRecycleSegments = 4

// logStoreConfig configures a log store; zero values are the defaults.
type logStoreConfig struct {
	CacheBytes   int64 // bound of the cache of recent entries; 0: no cache
	SegmentBytes int64 // default logStoreSegmentBytes
	FS           vfs.FS
	Logger       *zap.Logger
}

// openEntryLogStore opens (creating) the log store in dir.
func openEntryLogStore(dir string, cfg logStoreConfig) (*logStore, error) {
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = logStoreSegmentBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	l, err := log.Open(filepath.Join(dir, "entries"), log.Config{
		Format:       log.FormatEntries,
		SegmentBytes: cfg.SegmentBytes,
		FS:           cfg.FS,
		Logger:       cfg.Logger,
		// Entries are read back from the cache of recent ones, or by a follower far
		// behind: their pages would only push partition data out of the page cache.
		DropCacheAfterSync: true,
		// Snapshots drop the log's head about as fast as it grows: new segments write
		// over the files of dropped ones (about one snapshot's worth at the defaults).
		RecycleSegments: logStoreRecycleSegments,
	})
	if err != nil {
		return nil, fmt.Errorf("raft log store: %w", err)
	}
	s := &logStore{dir: dir, log: l, logger: cfg.Logger, cacheMax: cfg.CacheBytes}
	// Check the mapping on the last entry: raft must never get a wrong entry.
	if end := l.LogEndOffset(); end > l.LogStartOffset() {
		var last raft.Log
		if err := s.GetLog(uint64(end-1), &last); err != nil {
			l.Close()
			return nil, fmt.Errorf("raft log store: check last entry: %w", err)
		}
	}
	return s, nil
}

// meanEntryBytes returns the mean stored size of the entries in the log, 0 when empty.
func (s *logStore) meanEntryBytes() int64 {
	first, last := s.log.LogStartOffset(), s.log.LogEndOffset()
	if last <= first {
		return 0
	}
	return s.log.Size() / int64(last-first)
}

func (s *logStore) empty() bool { return s.log.LogEndOffset() == s.log.LogStartOffset() }

// FirstIndex returns the first index in the log, 0 when empty.
func (s *logStore) FirstIndex() (uint64, error) {
	if s.empty() {
		return 0, nil
	}
	return uint64(s.log.LogStartOffset()), nil
}

// LastIndex returns the last index in the log, 0 when empty.
func (s *logStore) LastIndex() (uint64, error) {
	if s.empty() {
		return 0, nil
	}
	return uint64(s.log.LogEndOffset() - 1), nil
}

// GetLog reads the entry at index, from the cache when it is recent.
func (s *logStore) GetLog(index uint64, out *raft.Log) error {
	s.mu.Lock()
	if l := s.cached(index); l != nil {
		*out = *l
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if index == 0 || index > 1<<62 {
		return raft.ErrLogNotFound
	}
	b, err := s.log.Entry(log.Offset(index))
	if errors.Is(err, log.ErrOffsetOutOfRange) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raft log store: get %d: %w", index, err)
	}
	if err := decodeRaftLog(b, out); err != nil {
		return fmt.Errorf("raft log store: get %d: %w", index, err)
	}
	if out.Index != index {
		return fmt.Errorf("raft log store: get %d: %w: entry holds index %d", index, log.ErrCorrupt, out.Index)
	}
	return nil
}

// cached returns the cached entry at index or nil. mu is held.
func (s *logStore) cached(index uint64) *raft.Log {
	if s.cacheLen == 0 {
		return nil
	}
	first := s.cache[s.cacheHead].Index
	if index < first || index >= first+uint64(s.cacheLen) {
		return nil
	}
	return s.cache[(s.cacheHead+int(index-first))%len(s.cache)]
}

// slowSync is how long a Raft log fsync may take before the store warns: every write of
// the group waits for it, on a leader and on the followers that make the majority, and a
// node held up longer than the election timeout can cost the group its leader. A variable
// for tests.
var slowSync = time.Second

// StoreLog stores one entry.
func (s *logStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends entries (which follow the last one, or start an empty log) and makes
// them durable with one fsync.
func (s *logStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	end := s.log.LogEndOffset()
	if first := log.Offset(logs[0].Index); first != end {
		if first < end && !s.empty() {
			return fmt.Errorf("raft log store: store %d: %w: the log ends at %d", first, ErrInvalid, end-1)
		}
		// Entries that do not follow the last one come after an installed snapshot (raft
		// may have kept some of the old log, all below the snapshot): the log restarts
		// where they begin.
		s.compactMu.Lock()
		var err error
		if first > end {
			err = s.log.DeleteBefore(first)
		} else {
			err = s.log.TruncateTo(first)
		}
		s.compactMu.Unlock()
		s.mu.Lock()
		s.cacheReset()
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%w: raft log store: reset to %d: %w", ErrStorage, first, err)
		}
		if got := s.log.LogEndOffset(); got != first {
			return fmt.Errorf("raft log store: reset to %d: %w: the log ends at %d", first, ErrInvalid, got)
		}
		end = first
	}
	// The cache keeps entries decoded from their own encoded copy: raft's entries may hold
	// a caller's buffer, which the caller reuses once the entry is applied.
	caching := s.cacheMax > 0
	var cached []*raft.Log
	for i, l := range logs {
		if l.Index != logs[0].Index+uint64(i) {
			return fmt.Errorf("raft log store: store: %w: index %d after %d", ErrInvalid, l.Index, logs[0].Index+uint64(i)-1)
		}
		var buf []byte
		if caching {
			buf = make([]byte, 0, encodedSize(l))
		} else {
			buf = s.buf[:0]
		}
		buf = encodeRaftLog(buf, l)
		if _, err := s.log.Append(buf, 0); err != nil {
			return s.undo(end, fmt.Errorf("raft log store: append %d: %w", l.Index, err))
		}
		if caching {
			c := new(raft.Log)
			if err := decodeRaftLog(buf, c); err != nil {
				return s.undo(end, fmt.Errorf("raft log store: append %d: %w", l.Index, err))
			}
			cached = append(cached, c)
		} else if cap(buf) <= 4<<20 {
			s.buf = buf
		}
	}
	start := time.Now()
	if err := s.log.Sync(); err != nil {
		return s.undo(end, fmt.Errorf("raft log store: sync: %w", err))
	}
	var n int64
	for _, l := range logs {
		n += logBytes(l)
	}
	s.appended.Add(n)
	if took := time.Since(start); took >= slowSync {
		s.logger.Warn("slow Raft log fsync: the disk held up this group's replication",
			zap.Duration("took", took), zap.Int("entries", len(logs)), zap.Int64("bytes", n))
	}
	if caching {
		s.mu.Lock()
		for _, l := range cached {
			s.cachePut(l)
		}
		s.mu.Unlock()
	}
	return nil
}

// undo cuts back entries appended by a failed StoreLogs, so the log never holds entries
// raft was told failed. The error it returns reaches the entries' submitters through
// raft, as an ErrStorage.
func (s *logStore) undo(end log.Offset, err error) error {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	if terr := s.log.TruncateTo(end); terr != nil {
		s.logger.Error("raft log store: cutting back a failed store failed", zap.Error(terr))
	}
	return fmt.Errorf("%w: %w", ErrStorage, err)
}

// cachePut adds l as the newest cached entry, evicting the oldest beyond the byte bound.
// mu is held.
func (s *logStore) cachePut(l *raft.Log) {
	if s.cacheMax <= 0 {
		return
	}
	if s.cacheLen > 0 && s.cache[(s.cacheHead+s.cacheLen-1)%len(s.cache)].Index+1 != l.Index {
		s.cacheReset()
	}
	if s.cacheLen == len(s.cache) {
		grown := make([]*raft.Log, max(64, 2*len(s.cache)))
		for i := range s.cacheLen {
			grown[i] = s.cache[(s.cacheHead+i)%len(s.cache)]
		}
		s.cache, s.cacheHead = grown, 0
	}
	s.cache[(s.cacheHead+s.cacheLen)%len(s.cache)] = l
	s.cacheLen++
	s.cacheBytes += logBytes(l)
	for s.cacheBytes > s.cacheMax && s.cacheLen > 1 {
		s.cacheBytes -= logBytes(s.cache[s.cacheHead])
		s.cache[s.cacheHead] = nil
		s.cacheHead = (s.cacheHead + 1) % len(s.cache)
		s.cacheLen--
	}
}

func (s *logStore) cacheReset() {
	clear(s.cache)
	s.cacheHead, s.cacheLen, s.cacheBytes = 0, 0, 0
}

// cacheDropFrom forgets cached entries at or after index. mu is held.
func (s *logStore) cacheDropFrom(index uint64) {
	for s.cacheLen > 0 {
		tail := (s.cacheHead + s.cacheLen - 1) % len(s.cache)
		if s.cache[tail].Index < index {
			return
		}
		s.cacheBytes -= logBytes(s.cache[tail])
		s.cache[tail] = nil
		s.cacheLen--
	}
}

// cacheDropBefore forgets cached entries before index. mu is held.
func (s *logStore) cacheDropBefore(index uint64) {
	for s.cacheLen > 0 && s.cache[s.cacheHead].Index < index {
		s.cacheBytes -= logBytes(s.cache[s.cacheHead])
		s.cache[s.cacheHead] = nil
		s.cacheHead = (s.cacheHead + 1) % len(s.cache)
		s.cacheLen--
	}
}

func logBytes(l *raft.Log) int64 { return int64(len(l.Data)+len(l.Extensions)) + 64 }

// DeleteRange removes entries lo..hi inclusive: a suffix (hi at or past the last entry:
// raft rolling back a conflict, or dropping everything before a snapshot install) or a
// prefix (lo at or before the first entry: compaction). Entries in the middle stay. A
// compaction that leaves the last entry does not hold up StoreLogs.
func (s *logStore) DeleteRange(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	if done, err := s.compact(lo, hi); done {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	if s.empty() {
		return nil
	}
	first := uint64(s.log.LogStartOffset())
	last := uint64(s.log.LogEndOffset() - 1)
	switch {
	case hi >= last:
		from := max(lo, first)
		if err := s.log.TruncateTo(log.Offset(from)); err != nil {
			return fmt.Errorf("raft log store: delete %d-%d: %w", lo, hi, err)
		}
		s.mu.Lock()
		s.cacheDropFrom(from)
		s.mu.Unlock()
	case lo <= first:
		return s.dropHead(lo, hi)
	default:
		return fmt.Errorf("raft log store: delete %d-%d inside %d-%d: %w", lo, hi, first, last, ErrInvalid)
	}
	return nil
}

// compact deletes the prefix lo..hi when it leaves entries after it, holding compactMu
// only; done is false when DeleteRange must take the general path.
func (s *logStore) compact(lo, hi uint64) (done bool, err error) {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	// Under compactMu nothing can move the start or cut the end: StoreLogs only appends.
	if s.empty() {
		return false, nil
	}
	first := uint64(s.log.LogStartOffset())
	last := uint64(s.log.LogEndOffset() - 1)
	if lo > first || hi >= last {
		return false, nil
	}
	return true, s.dropHead(lo, hi)
}

// dropHead deletes entries up to hi (lo at or before the first). compactMu is held.
func (s *logStore) dropHead(lo, hi uint64) error {
	if err := s.log.DeleteBefore(log.Offset(hi + 1)); err != nil {
		return fmt.Errorf("raft log store: delete %d-%d: %w", lo, hi, err)
	}
	s.mu.Lock()
	s.cacheDropBefore(hi + 1)
	s.mu.Unlock()
	return nil
}

// Close closes the log cleanly.
func (s *logStore) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	s.mu.Lock()
	s.cacheReset()
	s.mu.Unlock()
	return s.log.Close()
}

func encodedSize(l *raft.Log) int {
	return 4*binary.MaxVarintLen64 + 1 + len(l.Data) + len(l.Extensions)
}

func encodeRaftLog(b []byte, l *raft.Log) []byte {
	b = appendRaftLogHeader(b, l)
	b = append(b, l.Data...)
	return append(b, l.Extensions...)
}

// appendRaftLogHeader appends what leads an entry, in the log store and on the wire:
// index and term (uvarint), type (a byte), AppendedAt (varint unix ns, 0 for none) and
// len(Data) (uvarint).
func appendRaftLogHeader(b []byte, l *raft.Log) []byte {
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.AppendVarint(b, at)
	return binary.AppendUvarint(b, uint64(len(l.Data)))
}

func decodeRaftLog(b []byte, l *raft.Log) error {
	bad := func(what string) error { return fmt.Errorf("%w: raft entry %s", log.ErrCorrupt, what) }
	var n int
	if l.Index, n = binary.Uvarint(b); n <= 0 {
		return bad("index")
	}
	b = b[n:]
	if l.Term, n = binary.Uvarint(b); n <= 0 {
		return bad("term")
	}
	b = b[n:]
	if len(b) < 1 {
		return bad("type")
	}
	l.Type = raft.LogType(b[0])
	b = b[1:]
	at, n := binary.Varint(b)
	if n <= 0 {
		return bad("time")
	}
	l.AppendedAt = time.Time{}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	b = b[n:]
	dl, n := binary.Uvarint(b)
	if n <= 0 || dl > uint64(len(b)-n) {
		return bad("data length")
	}
	b = b[n:]
	l.Data = b[:dl:dl]
	l.Extensions = nil
	if rest := b[dl:]; len(rest) > 0 {
		l.Extensions = rest
	}
	return nil
}
