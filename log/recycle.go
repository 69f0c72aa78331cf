package log

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/segment"
)

// retiredExt names the .log files of dropped segments kept for reuse
// (Config.RecycleSegments): "<20-digit number>.retired". Open removes any it finds.
const retiredExt = ".retired"

func isRetiredName(name string) bool { return strings.HasSuffix(name, retiredExt) }

// dropSegment removes the files of a segment detached from the head, or retires its .log
// for reuse when the pool has room (retired). The caller then drops its reference: with
// Release after a retirement, with FreeGradually after a removal.
func (l *Log) dropSegment(s *segment.Segment) (retired bool, err error) {
	path, gen, ok := l.retireSlot(s)
	if !ok {
		return false, s.Remove()
	}
	if err := s.Retire(path, func() { l.retired(path, gen) }); err != nil {
		l.poolMu.Lock()
		l.pooling--
		l.poolMu.Unlock()
		return false, errors.Join(err, s.Remove())
	}
	return true, nil
}

// retireSlot reserves a place in the pool for s's file and names it; ok is false when the
// log keeps no files, the pool is full, or s is too small to be worth keeping.
func (l *Log) retireSlot(s *segment.Segment) (path string, gen uint64, ok bool) {
	if l.cfg.RecycleSegments <= 0 || s.Size() < l.cfg.SegmentBytes/2 {
		return "", 0, false
	}
	l.poolMu.Lock()
	defer l.poolMu.Unlock()
	if len(l.pool)+l.pooling >= l.cfg.RecycleSegments {
		return "", 0, false
	}
	l.pooling++
	l.poolSeq++
	return l.path(fmt.Sprintf("%020d%s", l.poolSeq, retiredExt)), l.poolGen, true
}

// retired takes a retired file into the pool once its last reader released it, or
// removes it when a reset came in between or the log is closed.
func (l *Log) retired(path string, gen uint64) {
	l.poolMu.Lock()
	l.pooling--
	keep := gen == l.poolGen && !l.closed.Load()
	if keep {
		l.pool = append(l.pool, path)
	}
	l.poolMu.Unlock()
	if !keep {
		l.removeRetired(path)
	}
}

// createSegment starts a segment at base, writing over a retired file when there is one.
// writeMu is held.
func (l *Log) createSegment(base Offset) (*segment.Segment, error) {
	l.poolMu.Lock()
	var path string
	if n := len(l.pool); n > 0 {
		path = l.pool[n-1]
		l.pool = l.pool[:n-1]
	}
	l.poolMu.Unlock()
	if path != "" {
		s, err := segment.Reuse(l.opts, base, path)
		if err == nil {
			return s, nil
		}
		l.cfg.Logger.Warn("reusing a retired segment file failed; creating one", zap.String("path", path), zap.Error(err))
		l.removeRetired(path)
	}
	return segment.Create(l.opts, base)
}

// dropPool removes the retired files and makes those still held by readers go too when
// released: after a reset the log's offsets may start lower than theirs, and an old
// entry must never pass for a new one in a reused file.
func (l *Log) dropPool() {
	l.poolMu.Lock()
	pool := l.pool
	l.pool = nil
	l.poolGen++
	l.poolMu.Unlock()
	for _, path := range pool {
		l.removeRetired(path)
	}
}

func (l *Log) removeRetired(path string) {
	if err := l.cfg.FS.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.cfg.Logger.Warn("removing a retired segment file", zap.String("path", path), zap.Error(err))
	}
}
