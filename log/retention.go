package log

import (
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// DeleteBefore moves LogStartOffset up to off (Kafka DeleteRecords; Raft compacting
// its log head) and deletes the segments wholly below it. With off at or past
// LogEndOffset the log becomes empty and its next offset is off. Off at or below
// LogStartOffset does nothing; a negative off is ErrOffsetOutOfRange. The new start is
// durable when DeleteBefore returns, and so are the removals of the segments' files.
//
// Appends are held up only while the segments are unhooked, not while their files are
// removed (which on a large file takes a while); readers still holding a ReadResult over
// them keep reading them.
func (l *Log) DeleteBefore(off Offset) error {
	l.syncMu.Lock()
	l.writeMu.Lock()
	err := l.writable()
	if err == nil && off < 0 {
		err = fmt.Errorf("log: delete before %d: %w", off, ErrOffsetOutOfRange)
	}
	if err != nil || off <= l.LogStartOffset() {
		l.writeMu.Unlock()
		l.syncMu.Unlock()
		return err
	}
	if off >= l.LogEndOffset() {
		err := l.resetLocked(off)
		l.writeMu.Unlock()
		l.syncMu.Unlock()
		if err != nil {
			return fmt.Errorf("log: delete before %d: %w", off, err)
		}
		return nil
	}
	l.writeMu.Unlock()
	removed, err := l.moveStart(off)
	l.syncMu.Unlock()
	if err == nil {
		err = l.removeDetached(removed)
	}
	if err != nil {
		return fmt.Errorf("log: delete before %d: %w", off, err)
	}
	return nil
}

// moveStart makes off, LogStartOffset < off <= LogEndOffset, the log start: first
// durably (the checkpoint, so that segments below it that a crash brings back are
// dropped at the next Open), then in memory, where it detaches the segments wholly below
// off (never the active one). It returns them, counted in removing: the caller removes
// their files with removeDetached once it has let go of syncMu. syncMu is held, writeMu
// is not; LogEndOffset can only grow meanwhile.
func (l *Log) moveStart(off Offset) ([]*segment.Segment, error) {
	ck := l.ck
	ck.Clean = false
	ck.LogStart = off
	// Only syncMu holders write checkpoints: appends go on while this one is written.
	if err := writeCheckpoint(l.cfg.FS, l.dir, ck); err != nil {
		return nil, err
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.ck = ck
	n := 0
	for n < len(l.segs)-1 && l.segs[n].Next() <= off {
		n++
	}
	removed := slices.Clone(l.segs[:n])
	l.mu.Lock()
	l.segs = slices.Clone(l.segs[n:])
	l.logStart.Store(int64(off))
	l.mu.Unlock()
	if n > 0 {
		l.forgetMaxTimestamp()
		l.unsynced = slices.DeleteFunc(l.unsynced, func(u *segment.Segment) bool { return slices.Contains(removed, u) })
		l.rmMu.Lock()
		l.removing += n
		l.rmMu.Unlock()
	}
	return removed, nil
}

// removeDetached removes the files of segments moveStart detached (or retires them for
// reuse, Config.RecycleSegments), then syncs the directory so that the removals are
// durable. It holds none of the log's locks: readers
// holding references keep reading the open files.
func (l *Log) removeDetached(segs []*segment.Segment) error {
	if len(segs) == 0 {
		return nil
	}
	var first error
	var removed []*segment.Segment
	for _, s := range segs {
		retired, err := l.dropSegment(s)
		if err != nil && first == nil {
			first = err
		}
		if retired {
			s.Release()
		} else {
			removed = append(removed, s)
		}
	}
	if err := vfs.SyncDir(l.cfg.FS, l.dir); err != nil && first == nil {
		first = err
	}
	l.rmMu.Lock()
	l.removing -= len(segs)
	l.rmDone.Broadcast()
	l.rmMu.Unlock()
	if len(removed) > 0 {
		// The names are gone; the blocks are freed behind the caller's back, a step at a
		// time, so that neither it nor other writers' fsyncs wait for them.
		l.freeing.Add(1)
		go func() {
			defer l.freeing.Done()
			for _, s := range removed {
				s.FreeGradually(freeStep, freePause)
			}
		}()
	}
	return first
}

// freeStep and freePause pace the freeing of removed segments' blocks
// (segment.FreeGradually): about 1.3 s for a 1 GiB segment, in the background. Variables
// so that BenchmarkFreeSegment can compare freeing all at once.
var (
	freeStep  int64 = 8 << 20
	freePause       = 5 * time.Millisecond
)

// waitRemovals waits until the files of every detached segment are removed.
func (l *Log) waitRemovals() {
	l.rmMu.Lock()
	for l.removing > 0 {
		l.rmDone.Wait()
	}
	l.rmMu.Unlock()
}

// EnforceRetention deletes the oldest segments that Config.RetentionAge or
// Config.RetentionBytes allow to go, moving LogStartOffset to the first entry kept.
// When every entry has expired by age the active segment is rolled first, so that the
// log ends up empty (its next offset unchanged). Like DeleteBefore, it makes the new log
// start durable before removing files, removes them without holding up appends, and
// syncs the directory after: a segment it deleted never comes back after a crash.
func (l *Log) EnforceRetention(now time.Time) error {
	l.syncMu.Lock()
	l.writeMu.Lock()
	off, err := l.retentionPoint(now)
	l.writeMu.Unlock()
	var removed []*segment.Segment
	if err == nil && off > l.LogStartOffset() {
		l.cfg.Logger.Debug("retention moves the log start", zap.String("dir", l.dir), zap.Int64("start", int64(off)))
		removed, err = l.moveStart(off)
	}
	l.syncMu.Unlock()
	if err == nil {
		err = l.removeDetached(removed)
	}
	if err != nil {
		return fmt.Errorf("log: retention: %w", err)
	}
	return nil
}

// retentionPoint returns the base of the first segment retention keeps (rolling first
// when every entry has expired by age), or LogStartOffset when it keeps them all.
// syncMu and writeMu are held.
func (l *Log) retentionPoint(now time.Time) (Offset, error) {
	if err := l.writable(); err != nil {
		return 0, err
	}
	n := 0
	if l.cfg.RetentionAge > 0 {
		cutoff := now.Add(-l.cfg.RetentionAge)
		for n < len(l.segs) && l.segs[n].Size() > 0 {
			newest, err := l.newest(l.segs[n])
			if err != nil {
				return 0, err
			}
			if !newest.Before(cutoff) {
				break
			}
			n++
		}
		if n == len(l.segs) {
			if err := l.roll(); err != nil {
				return 0, err
			}
		}
	}
	if l.cfg.RetentionBytes > 0 {
		var total int64
		for _, s := range l.segs[n:] {
			total += s.Size()
		}
		for n < len(l.segs)-1 && total-l.segs[n].Size() >= l.cfg.RetentionBytes {
			total -= l.segs[n].Size()
			n++
		}
	}
	if n == 0 {
		return l.LogStartOffset(), nil
	}
	return max(l.segs[n].Base(), l.LogStartOffset()), nil
}

// newest returns the time of a segment's newest entry: its largest batch timestamp in
// FormatKafka, else the .log file's modification time.
func (l *Log) newest(s *segment.Segment) (time.Time, error) {
	if l.cfg.Format == FormatKafka {
		ts, _, err := s.MaxTimestamp()
		if err != nil {
			return time.Time{}, err
		}
		if ts >= 0 {
			return time.UnixMilli(ts), nil
		}
	}
	st, err := l.cfg.FS.Stat(s.Path())
	if err != nil {
		return time.Time{}, err
	}
	return st.ModTime(), nil
}

// Close syncs everything, records a clean shutdown (the next Open reads no entries) and
// closes the log. ReadResults not yet released stay readable until they are. Close
// returns the first error met; a log whose sync failed is closed without the clean
// mark, so the next Open recovers it.
func (l *Log) Close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	l.closed.Store(true)
	// Removals that DeleteBefore or EnforceRetention started finish before the log is
	// closed, so that nothing touches the directory once Close returns.
	l.waitRemovals()
	l.freeing.Wait()
	err := l.failed
	if err == nil {
		err = l.closeClean()
	}
	l.mu.Lock()
	segs := l.segs
	l.segs = nil
	l.mu.Unlock()
	releaseAll(segs)
	if err != nil {
		return fmt.Errorf("log: close: %w", err)
	}
	return nil
}

func (l *Log) closeClean() error {
	a := l.active()
	segs := append(slices.Clone(l.unsynced), a)
	for _, s := range segs {
		if err := s.Seal(); err != nil {
			return err
		}
		if err := s.Sync(); err != nil {
			return err
		}
		if err := s.SyncIndex(); err != nil {
			return err
		}
	}
	if err := vfs.SyncDir(l.cfg.FS, l.dir); err != nil {
		return err
	}
	ts, off := l.MaxTimestamp()
	return writeCheckpoint(l.cfg.FS, l.dir, checkpoint{
		Clean: true, LogStart: l.LogStartOffset(), SegmentBase: a.Base(), Point: a.Point(),
		MaxTimestamp: ts, MaxTimestampOffset: off,
	})
}
