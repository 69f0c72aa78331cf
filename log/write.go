package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// Append appends one entry and returns its base offset, LogEndOffset before the call.
//
// In FormatKafka entry is one whole RecordBatch v2; the stored copy gets baseOffset and
// partitionLeaderEpoch = leaderEpoch (entry itself is left as it is), and the batch
// takes lastOffsetDelta+1 offsets. Its CRC is not checked here: the caller checked it.
// In FormatEntries entry is an opaque payload taking one offset; leaderEpoch is ignored.
//
// The entry is readable when Append returns; it is durable after the next successful
// Sync. Append returns ErrInvalidEntry for a malformed batch, ErrEntryTooLarge,
// ErrClosed, an ErrFailed error, or the I/O error of the write (ENOSPC on a full disk)
// after cutting back whatever part of the entry reached the file; the log is then as it
// was before the call, and reads go on.
func (l *Log) Append(entry []byte, leaderEpoch int32) (Offset, error) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	if l.failed != nil {
		return 0, l.failed
	}
	size := int64(len(entry))
	if l.cfg.Format == FormatEntries {
		size += segment.EntryHeaderSize
	}
	if size > l.cfg.MaxEntryBytes {
		return 0, fmt.Errorf("%w: %d bytes, the limit is %d", ErrEntryTooLarge, size, l.cfg.MaxEntryBytes)
	}
	s := l.active()
	if l.hasStray || s.Size() > 0 && (s.Size()+size > l.cfg.SegmentBytes ||
		l.cfg.SegmentAge > 0 && l.cfg.Now().Sub(l.activeCreated) >= l.cfg.SegmentAge) {
		if err := l.roll(); err != nil {
			return 0, fmt.Errorf("log: append: %w", err)
		}
		s = l.active()
	}
	off, err := s.Append(entry, leaderEpoch)
	if errors.Is(err, segment.ErrFull) && s.Size() > 0 {
		if err := l.roll(); err != nil {
			return 0, fmt.Errorf("log: append: %w", err)
		}
		s = l.active()
		off, err = s.Append(entry, leaderEpoch)
	}
	if err != nil {
		return 0, fmt.Errorf("log: append: %w", err)
	}
	l.logEnd.Store(int64(s.Next()))
	l.sinceCk += size
	if l.cfg.Format == FormatKafka {
		ts := int64(binary.BigEndian.Uint64(entry[segment.BatchMaxTimestampPos:]))
		l.maxTS.Lock()
		if l.maxTS.known && ts > l.maxTS.ts {
			l.maxTS.ts, l.maxTS.off = ts, off
		}
		l.maxTS.Unlock()
	}
	return off, nil
}

// roll seals the active segment and starts a new one at LogEndOffset. writeMu is held.
func (l *Log) roll() error {
	old := l.active()
	if err := old.Seal(); err != nil {
		// The entries are safe; the index entries stay pending until the next Sync.
		l.cfg.Logger.Warn("sealing a segment", zap.String("path", old.Path()), zap.Error(err))
	}
	s, err := l.createSegment(old.Next())
	if err != nil {
		l.hasStray, l.stray = true, old.Next()
		return err
	}
	l.hasStray = false
	l.mu.Lock()
	l.segs = append(l.segs, s)
	l.mu.Unlock()
	l.unsynced = append(l.unsynced, old)
	l.rolls++
	l.dirDirty = true
	l.ckDue = true
	l.activeCreated = l.cfg.Now()
	return nil
}

// Sync makes every entry appended before the call durable: it fdatasyncs the segments
// written since the last Sync, and the directory when segments were created. Every
// CheckpointBytes, and after a roll, it also writes the recovery checkpoint.
//
// A failed fsync is never retried: the segment is closed and recovered from disk, the
// log is cut back to what the last successful Sync made durable (LogEndOffset moves
// back), and the error is returned. Appends may run while Sync waits for the disk.
func (l *Log) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.syncLocked(false)
}

// syncLocked is Sync; forceCk writes a checkpoint whatever is due. syncMu is held.
func (l *Log) syncLocked(forceCk bool) error {
	l.writeMu.Lock()
	if l.closed.Load() {
		l.writeMu.Unlock()
		return ErrClosed
	}
	if l.failed != nil {
		l.writeMu.Unlock()
		return l.failed
	}
	segs := make([]*segment.Segment, 0, len(l.unsynced)+1)
	segs = append(segs, l.unsynced...)
	segs = append(segs, l.active())
	dirDirty, rolls := l.dirDirty, l.rolls
	ckDue := forceCk || l.ckDue || l.sinceCk >= l.cfg.CheckpointBytes
	var ck checkpoint
	var sinceCk int64
	if ckDue {
		for _, s := range segs {
			if err := s.FlushIndex(); err != nil {
				l.cfg.Logger.Warn("flushing a segment index; checkpoint postponed", zap.Error(err))
				ckDue = false
				break
			}
		}
	}
	if ckDue {
		a := l.active()
		ck = checkpoint{LogStart: l.LogStartOffset(), SegmentBase: a.Base(), Point: a.Point()}
		sinceCk = l.sinceCk
	}
	l.writeMu.Unlock()

	// The disk waits happen without writeMu: appends go on meanwhile.
	for _, s := range segs {
		if err := s.Sync(); err != nil {
			return l.poisoned(s, err)
		}
		if ckDue {
			if err := s.SyncIndex(); err != nil {
				return l.poisoned(s, err)
			}
		}
	}
	if dirDirty {
		if err := vfs.SyncDir(l.cfg.FS, l.dir); err != nil {
			return fmt.Errorf("log: sync: %w", err)
		}
		// Only a roll can have dirtied the directory since (truncations hold syncMu;
		// DeleteBefore and retention sync the directory themselves).
		l.writeMu.Lock()
		if l.rolls == rolls {
			l.dirDirty = false
		}
		l.writeMu.Unlock()
	}
	if !ckDue {
		return nil
	}
	if err := writeCheckpoint(l.cfg.FS, l.dir, ck); err != nil {
		// The entries are durable; recovery will scan a little more.
		l.cfg.Logger.Warn("writing the recovery checkpoint", zap.String("dir", l.dir), zap.Error(err))
		return nil
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	// The sealed segments are durable, indexes included, and covered by ck.
	l.unsynced = slices.DeleteFunc(l.unsynced, func(s *segment.Segment) bool {
		return slices.Contains(segs[:len(segs)-1], s)
	})
	if l.rolls == rolls {
		l.ckDue = false
	}
	l.sinceCk -= sinceCk
	l.ck = ck
	return nil
}

// poisoned handles a failed fsync of s: s is closed and recovered from disk, and the
// log cut back to what s's last successful sync covered. syncMu is held.
func (l *Log) poisoned(s *segment.Segment, syncErr error) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.cfg.Logger.Error("fsync failed; recovering the segment from disk", zap.String("path", s.Path()), zap.Error(syncErr))
	if err := l.replacePoisoned(s); err != nil {
		l.failed = fmt.Errorf("%w: recovering from a failed fsync (%v): %v", ErrFailed, syncErr, err)
	}
	return fmt.Errorf("log: sync: %w", syncErr)
}

func (l *Log) replacePoisoned(s *segment.Segment) error {
	_, syncedNext := s.Synced()
	p := segment.Point{Next: s.Base(), MaxTimestamp: -1, MaxTimestampOffset: -1}
	if l.ck.SegmentBase == s.Base() {
		p = l.ck.Point
	}
	fresh, cut, err := segment.Recover(l.opts, s.Base(), p)
	if err != nil {
		return err
	}
	if cut != nil {
		l.cfg.Logger.Warn("cut a segment at its first bad byte", zap.Error(cut))
	}
	l.mu.Lock()
	i := slices.Index(l.segs, s)
	l.segs[i] = fresh
	l.mu.Unlock()
	if j := slices.Index(l.unsynced, s); j >= 0 {
		l.unsynced[j] = fresh
	}
	s.Release()
	if i < len(l.segs)-1 {
		if err := fresh.Seal(); err != nil {
			return err
		}
	}
	if fresh.Next() < syncedNext {
		l.cfg.Logger.Error("synced entries lost", zap.String("path", fresh.Path()),
			zap.Int64("synced", int64(syncedNext)), zap.Int64("found", int64(fresh.Next())))
		syncedNext = fresh.Next()
	}
	if syncedNext <= l.LogStartOffset() {
		return l.resetLocked(max(syncedNext, l.LogStartOffset()))
	}
	return l.truncateLocked(syncedNext)
}

// truncateLocked removes the entries at or after off, LogStartOffset < off. It keeps the
// segments below off; the last of them, cut at off, becomes the active one. syncMu and
// writeMu are held.
func (l *Log) truncateLocked(off Offset) error {
	k := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].Base() >= off })
	k = max(k, 1)
	keep := l.segs[k-1]
	// Lower the checkpoint first: recovery must not trust bytes about to go.
	if l.ck.SegmentBase > keep.Base() || (l.ck.SegmentBase == keep.Base() && l.ck.Point.Next > off) {
		ck := l.ck
		ck.Clean = false
		ck.SegmentBase = keep.Base()
		ck.Point = segment.Point{Next: keep.Base(), MaxTimestamp: -1, MaxTimestampOffset: -1}
		if err := writeCheckpoint(l.cfg.FS, l.dir, ck); err != nil {
			return err
		}
		l.ck = ck
	}
	if err := l.removeStray(); err != nil {
		return err
	}
	wasActive := keep == l.active()
	removed := slices.Clone(l.segs[k:])
	if len(removed) > 0 {
		l.mu.Lock()
		l.segs = l.segs[:k:k]
		l.mu.Unlock()
		for _, s := range removed {
			l.unsynced = slices.DeleteFunc(l.unsynced, func(u *segment.Segment) bool { return u == s })
			err := s.Remove()
			s.Release()
			if err != nil {
				return err
			}
		}
		if err := vfs.SyncDir(l.cfg.FS, l.dir); err != nil {
			return err
		}
	}
	l.unsynced = slices.DeleteFunc(l.unsynced, func(u *segment.Segment) bool { return u == keep })
	if !wasActive {
		if err := keep.Resume(); err != nil {
			return err
		}
	}
	if err := keep.TruncateTo(off); err != nil {
		return err
	}
	l.publishEnd()
	l.activeCreated = l.cfg.Now()
	l.ckDue = true
	l.sinceCk = 0
	l.forgetMaxTimestamp()
	if l.LogEndOffset() < l.LogStartOffset() {
		// The batch holding off began below the log start.
		return l.resetLocked(l.LogStartOffset())
	}
	return nil
}

// removeStray removes, durably, the files a failed roll may have left. writeMu is held.
func (l *Log) removeStray() error {
	if !l.hasStray {
		return nil
	}
	if err := l.removeFiles(l.stray); err != nil {
		return err
	}
	if err := vfs.SyncDir(l.cfg.FS, l.dir); err != nil {
		return err
	}
	l.hasStray = false
	return nil
}

func (l *Log) forgetMaxTimestamp() {
	l.maxTS.Lock()
	l.maxTS.known = false
	l.maxTS.Unlock()
}

// resetLocked empties the log: its start and next offset become off. syncMu and writeMu
// are held. A checkpoint flagged Reset makes a reset cut short by a crash complete at
// the next Open.
func (l *Log) resetLocked(off Offset) error {
	// The new segment may take the name of one whose files are still being removed.
	l.waitRemovals()
	l.dropPool()
	ck := checkpoint{Reset: true, LogStart: off, SegmentBase: off,
		Point: segment.Point{Next: off, MaxTimestamp: -1, MaxTimestampOffset: -1}}
	if err := writeCheckpoint(l.cfg.FS, l.dir, ck); err != nil {
		// The flagged checkpoint may be on disk: the next Open would finish the reset,
		// so nothing more may be acknowledged.
		return l.fail(err)
	}
	old := l.segs
	for _, s := range old {
		if err := s.Remove(); err != nil {
			return l.fail(err)
		}
	}
	if err := l.removeStray(); err != nil {
		return l.fail(err)
	}
	s, err := segment.Create(l.opts, off)
	if err != nil {
		return l.fail(err)
	}
	l.mu.Lock()
	l.segs = []*segment.Segment{s}
	l.mu.Unlock()
	for _, o := range old {
		o.Release()
	}
	l.unsynced = nil
	l.logStart.Store(int64(off))
	l.logEnd.Store(int64(off))
	l.maxTS.Lock()
	l.maxTS.known, l.maxTS.ts, l.maxTS.off = true, -1, -1
	l.maxTS.Unlock()
	l.activeCreated = l.cfg.Now()
	l.sinceCk = 0
	if err := vfs.SyncDir(l.cfg.FS, l.dir); err != nil {
		return l.fail(err)
	}
	ck.Reset = false
	if err := writeCheckpoint(l.cfg.FS, l.dir, ck); err != nil {
		// Appends must not land while the checkpoint still says Reset.
		return l.fail(err)
	}
	l.ck = ck
	l.dirDirty, l.ckDue = false, false
	return nil
}

// fail makes the log refuse writes until it is reopened. writeMu is held.
func (l *Log) fail(err error) error {
	l.failed = fmt.Errorf("%w: %v", ErrFailed, err)
	return l.failed
}

// TruncateTo removes every entry at or after off; LogEndOffset becomes off, or the base
// of the batch holding off in FormatKafka (the batch goes whole). With off at or below
// LogStartOffset the log becomes empty with next offset off (LogStartOffset = off too).
// Off at or past LogEndOffset does nothing; a negative off is ErrOffsetOutOfRange. The
// truncation is durable when TruncateTo returns. Readers holding a ReadResult over the
// removed entries get ErrTruncated from it.
func (l *Log) TruncateTo(off Offset) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if off < 0 {
		return fmt.Errorf("log: truncate to %d: %w", off, ErrOffsetOutOfRange)
	}
	if off >= l.LogEndOffset() {
		return nil
	}
	var err error
	if off <= l.LogStartOffset() {
		err = l.resetLocked(off)
	} else if err = l.truncateLocked(off); err != nil {
		err = l.fail(err)
	}
	if err != nil {
		return fmt.Errorf("log: truncate to %d: %w", off, err)
	}
	return nil
}

func (l *Log) writable() error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.failed
}
