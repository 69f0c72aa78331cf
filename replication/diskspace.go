package replication

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// spaceCheckEvery is how long a look at the free space is trusted.
const spaceCheckEvery = 200 * time.Millisecond

// spaceGuard says whether the file system of dir has at least min bytes free, looking at
// it at most every spaceCheckEvery (a look is one statfs, made by one caller while the
// others use the last answer).
type spaceGuard struct {
	dir  string
	min  int64
	now  func() time.Time
	mu   sync.Mutex   // held by the caller that looks
	next atomic.Int64 // when the last look expires, in Unix nanoseconds
	free atomic.Int64 // bytes free to unprivileged users at the last look
}

func newSpaceGuard(dir string, min int64) *spaceGuard {
	g := &spaceGuard{dir: dir, min: min, now: time.Now}
	g.free.Store(math.MaxInt64) // until a look succeeds
	g.look(g.now())
	return g
}

func (g *spaceGuard) look(now time.Time) {
	var st unix.Statfs_t
	if err := unix.Statfs(g.dir, &st); err == nil {
		g.free.Store(int64(st.Bavail) * int64(st.Bsize))
	}
	g.next.Store(now.Add(spaceCheckEvery).UnixNano())
}

// check returns an ErrStorage error while less than min bytes are free.
func (g *spaceGuard) check() error {
	if g == nil || g.min <= 0 {
		return nil
	}
	if now := g.now(); now.UnixNano() >= g.next.Load() && g.mu.TryLock() {
		g.look(now)
		g.mu.Unlock()
	}
	if free := g.free.Load(); free < g.min {
		return fmt.Errorf("%w: disk full: %d bytes free in %s, and %d are kept free", ErrStorage, free, g.dir, g.min)
	}
	return nil
}
