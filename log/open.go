package log

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// open lists the directory, reads the checkpoint and opens or recovers the segments.
func (l *Log) open() error {
	fsys := l.cfg.FS
	if err := fsys.MkdirAll(l.dir, 0o755); err != nil {
		return err
	}
	names, err := fsys.List(l.dir)
	if err != nil {
		return err
	}
	logs := map[Offset]bool{}
	others := map[Offset]bool{}
	for _, name := range names {
		if strings.HasSuffix(name, ".tmp") || isRetiredName(name) {
			if err := fsys.Remove(l.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			continue
		}
		base, ext, ok := segment.ParseFileName(name)
		if !ok {
			continue
		}
		if ext == segment.LogExt {
			logs[base] = true
		} else {
			others[base] = true
		}
	}
	var bases []Offset
	for b := range logs {
		bases = append(bases, b)
	}
	slices.Sort(bases)
	for b := range others {
		if !logs[b] { // index files of a segment whose removal was cut short
			if err := l.removeFiles(b); err != nil {
				return err
			}
		}
	}

	ck, ok, err := readCheckpoint(fsys, l.dir)
	if errors.Is(err, errBadCheckpoint) {
		l.cfg.Logger.Warn("ignoring a bad recovery checkpoint; scanning every segment",
			zap.String("dir", l.dir), zap.Error(err))
		ok, err = false, nil
	}
	if err != nil {
		return err
	}
	if !ok {
		first := Offset(0)
		if len(bases) > 0 {
			first = bases[0]
		}
		ck = checkpoint{LogStart: first, SegmentBase: first,
			Point: segment.Point{Next: first, MaxTimestamp: -1, MaxTimestampOffset: -1}}
	}
	if ck.Reset || len(bases) == 0 {
		// A reset to an empty log was cut short, or this is a new log.
		off := max(ck.LogStart, ck.Point.Next)
		if ck.Reset {
			off = ck.SegmentBase
		}
		return l.resetFiles(bases, off)
	}
	// Drop segments wholly below the log start (a DeleteBefore cut short).
	for len(bases) > 1 && bases[1] <= ck.LogStart {
		if err := l.removeFiles(bases[0]); err != nil {
			return err
		}
		bases = bases[1:]
	}
	if ck.Clean && bases[len(bases)-1] == ck.SegmentBase {
		done, err := l.openClean(bases, ck)
		if err != nil || done {
			return err
		}
	}
	return l.recover(bases, ck)
}

// openClean opens the segments of a cleanly closed log without reading any entry.
// done is false when the files do not match the checkpoint; recovery then runs.
func (l *Log) openClean(bases []Offset, ck checkpoint) (done bool, err error) {
	segs := make([]*segment.Segment, 0, len(bases))
	release := func() {
		for _, s := range segs {
			s.Release()
		}
	}
	for i, b := range bases {
		next := ck.Point.Next
		if i+1 < len(bases) {
			next = bases[i+1]
		}
		s, err := segment.Open(l.opts, b, next)
		if err != nil {
			release()
			return false, err
		}
		segs = append(segs, s)
	}
	last := segs[len(segs)-1]
	if last.Size() != ck.Point.Position {
		l.cfg.Logger.Warn("active segment does not match the clean-shutdown checkpoint; recovering",
			zap.String("path", last.Path()), zap.Int64("size", last.Size()), zap.Int64("checkpoint", ck.Point.Position))
		release()
		return false, nil
	}
	if err := last.Resume(); err != nil {
		release()
		return false, err
	}
	l.segs = segs
	l.logStart.Store(int64(max(ck.LogStart, segs[0].Base())))
	l.publishEnd()
	l.maxTS.known, l.maxTS.ts, l.maxTS.off = true, ck.MaxTimestamp, ck.MaxTimestampOffset
	l.activeCreated = l.cfg.Now()
	// From here on a crash is unclean: the checkpoint loses its clean flag before any
	// write.
	ck.Clean = false
	if err := writeCheckpoint(l.cfg.FS, l.dir, ck); err != nil {
		return true, err
	}
	l.ck = ck
	return true, nil
}

// recover opens the segments after an unclean shutdown: those wholly before the
// checkpoint are trusted, the rest scanned.
func (l *Log) recover(bases []Offset, ck checkpoint) error {
	l.cfg.Logger.Info("recovering log", zap.String("dir", l.dir),
		zap.Int64("checkpoint_segment", int64(ck.SegmentBase)), zap.Int64("checkpoint_position", ck.Point.Position))
	var segs []*segment.Segment
	fail := func(err error) error {
		for _, s := range segs {
			s.Release()
		}
		return err
	}
	for i, b := range bases {
		if len(segs) > 0 && segs[len(segs)-1].Next() != b {
			// The previous segment was cut or ends short: what follows is past the
			// first bad byte.
			for _, rest := range bases[i:] {
				l.cfg.Logger.Warn("removing a segment past the recovered end",
					zap.String("dir", l.dir), zap.Int64("base", int64(rest)))
				if err := l.removeFiles(rest); err != nil {
					return fail(err)
				}
			}
			l.dirDirty = true
			break
		}
		var s *segment.Segment
		var cut *segment.CorruptionError
		var err error
		switch {
		case b < ck.SegmentBase && i+1 < len(bases) && bases[i+1] <= ck.SegmentBase:
			s, err = segment.Open(l.opts, b, bases[i+1])
		case b == ck.SegmentBase:
			s, cut, err = segment.Recover(l.opts, b, ck.Point)
		default:
			s, cut, err = segment.Recover(l.opts, b, segment.Point{Next: b, MaxTimestamp: -1, MaxTimestampOffset: -1})
		}
		if err != nil {
			return fail(err)
		}
		if cut != nil {
			l.cfg.Logger.Warn("cut a segment at its first bad byte", zap.Error(cut))
		}
		segs = append(segs, s)
	}
	// Recovered segments that are not the last are sealed; their indexes get synced by
	// the checkpoint below.
	for i, s := range segs[:len(segs)-1] {
		if segs[i].Base() >= ck.SegmentBase {
			if err := s.Seal(); err != nil {
				return fail(err)
			}
			l.unsynced = append(l.unsynced, s)
		}
	}
	l.segs = segs // from here on, Open releases them on error
	last := segs[len(segs)-1]
	if last.Base() < ck.SegmentBase {
		if err := last.Resume(); err != nil {
			return err
		}
	}
	l.logStart.Store(int64(max(ck.LogStart, segs[0].Base())))
	l.publishEnd()
	l.activeCreated = l.cfg.Now()
	l.ck = ck
	l.ck.Clean = false
	if l.LogStartOffset() > l.LogEndOffset() {
		// The log start was made durable, the entries up to it were not.
		return l.resetLocked(l.LogStartOffset())
	}
	// Make what recovery found durable and checkpoint it, so a second crash does not
	// scan it again.
	return l.syncLocked(true)
}

// resetFiles replaces the segments at bases by one empty segment at off: the log is
// empty and its next offset is off. Used by Open; resetLocked is the same for an open
// log.
func (l *Log) resetFiles(bases []Offset, off Offset) error {
	ck := checkpoint{Reset: true, LogStart: off, SegmentBase: off,
		Point: segment.Point{Next: off, MaxTimestamp: -1, MaxTimestampOffset: -1}}
	if err := writeCheckpoint(l.cfg.FS, l.dir, ck); err != nil {
		return err
	}
	for _, b := range bases {
		if err := l.removeFiles(b); err != nil {
			return err
		}
	}
	s, err := segment.Create(l.opts, off)
	if err != nil {
		return err
	}
	l.segs = []*segment.Segment{s}
	if err := vfs.SyncDir(l.cfg.FS, l.dir); err != nil {
		return err
	}
	ck.Reset = false
	if err := writeCheckpoint(l.cfg.FS, l.dir, ck); err != nil {
		return err
	}
	l.ck = ck
	l.logStart.Store(int64(off))
	l.logEnd.Store(int64(off))
	l.maxTS.known, l.maxTS.ts, l.maxTS.off = true, -1, -1
	l.activeCreated = l.cfg.Now()
	return nil
}

// removeFiles removes the files of the segment at base, .log first.
func (l *Log) removeFiles(base Offset) error {
	for _, ext := range []string{segment.LogExt, segment.IndexExt, segment.TimeIndexExt} {
		err := l.cfg.FS.Remove(l.path(segment.FileName(base, ext)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove segment %d: %w", base, err)
		}
	}
	return nil
}
