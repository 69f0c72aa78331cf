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
// durable when DeleteBefore returns.
func (l *Log) DeleteBefore(off Offset) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if off < 0 {
		return fmt.Errorf("log: delete before %d: %w", off, ErrOffsetOutOfRange)
	}
	if off <= l.LogStartOffset() {
		return nil
	}
	if off >= l.LogEndOffset() {
		if err := l.resetLocked(off); err != nil {
			return fmt.Errorf("log: delete before %d: %w", off, err)
		}
		return nil
	}
	ck := l.ck
	ck.Clean = false
	ck.LogStart = off
	if err := writeCheckpoint(l.cfg.FS, l.dir, ck); err != nil {
		return fmt.Errorf("log: delete before %d: %w", off, err)
	}
	l.ck = ck
	l.logStart.Store(int64(off))
	n := 0
	for n < len(l.segs)-1 && l.segs[n].Next() <= off {
		n++
	}
	if err := l.removeHead(n); err != nil {
		return fmt.Errorf("log: delete before %d: %w", off, err)
	}
	return nil
}

// removeHead deletes the first n segments (never the active one). writeMu is held.
func (l *Log) removeHead(n int) error {
	n = min(n, len(l.segs)-1)
	if n <= 0 {
		return nil
	}
	removed := slices.Clone(l.segs[:n])
	l.mu.Lock()
	l.segs = slices.Clone(l.segs[n:])
	if start := l.segs[0].Base(); Offset(l.logStart.Load()) < start {
		l.logStart.Store(int64(start))
	}
	l.mu.Unlock()
	l.forgetMaxTimestamp()
	l.dirDirty = true
	var first error
	for _, s := range removed {
		l.unsynced = slices.DeleteFunc(l.unsynced, func(u *segment.Segment) bool { return u == s })
		if err := s.Remove(); err != nil && first == nil {
			first = err
		}
		s.Release()
	}
	return first
}

// EnforceRetention deletes the oldest segments that Config.RetentionAge or
// Config.RetentionBytes allow to go, moving LogStartOffset to the first entry kept.
// When every entry has expired by age the active segment is rolled first, so that the
// log ends up empty (its next offset unchanged).
func (l *Log) EnforceRetention(now time.Time) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	n := 0
	if l.cfg.RetentionAge > 0 {
		cutoff := now.Add(-l.cfg.RetentionAge)
		for n < len(l.segs) && l.segs[n].Size() > 0 {
			newest, err := l.newest(l.segs[n])
			if err != nil {
				return fmt.Errorf("log: retention: %w", err)
			}
			if !newest.Before(cutoff) {
				break
			}
			n++
		}
		if n == len(l.segs) {
			if err := l.roll(); err != nil {
				return fmt.Errorf("log: retention: %w", err)
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
		return nil
	}
	l.cfg.Logger.Debug("retention deletes segments", zap.String("dir", l.dir), zap.Int("segments", n))
	if err := l.removeHead(n); err != nil {
		return fmt.Errorf("log: retention: %w", err)
	}
	return nil
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
