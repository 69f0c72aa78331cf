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

// refresh looks again if the last look expired and no other caller is looking.
func (g *spaceGuard) refresh() {
	if now := g.now(); now.UnixNano() >= g.next.Load() && g.mu.TryLock() {
		g.look(now)
		g.mu.Unlock()
	}
}

// check returns an ErrStorage error while less than min bytes are free.
func (g *spaceGuard) check() error {
	if g == nil || g.min <= 0 {
		return nil
	}
	if st := g.status(); st.WritesRefused {
		return fmt.Errorf("%w: disk full: %d bytes free in %s, and %d are kept free", ErrStorage, st.FreeBytes, g.dir, g.min)
	}
	return nil
}

// DiskStatus is a node's data directory file system as its free-space check sees it.
// Zero values mean unknown: the node does not report it (an older node, one not heard
// from lately) or could not look.
type DiskStatus struct {
	// FreeBytes is the space free to unprivileged users at the last look.
	FreeBytes int64 `json:"free_bytes"`
	// MinFreeBytes is the space the node keeps free (--min-free-bytes); 0 when the check
	// is off.
	MinFreeBytes int64 `json:"min_free_bytes"`
	// WritesRefused: FreeBytes is below MinFreeBytes, so the node refuses new entries
	// (KAFKA_STORAGE_ERROR) in the groups it leads.
	WritesRefused bool `json:"writes_refused"`
	// ApplyFailing names the data groups in which a committed entry keeps failing to
	// apply on the node (a write failed, its disk is full): the entry is tried again until
	// it applies, and meanwhile a group the node leads refuses writes. Empty when none.
	ApplyFailing []string `json:"apply_failing,omitempty"`
}

// status returns what the check sees now, looking again if the last look expired, so it
// is current even while no write comes to look.
func (g *spaceGuard) status() DiskStatus {
	if g == nil {
		return DiskStatus{}
	}
	g.refresh()
	st := DiskStatus{MinFreeBytes: max(g.min, 0)}
	if free := g.free.Load(); free != math.MaxInt64 { // a look succeeded
		st.FreeBytes = free
		st.WritesRefused = g.min > 0 && free < g.min
	}
	return st
}
