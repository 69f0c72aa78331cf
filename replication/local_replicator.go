package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// FsyncMode says when the single-node replicator makes applied entries durable.
type FsyncMode int

const (
	// FsyncAlways: Replicate returns once an fsync covers the entry. Entries applied while
	// an fsync runs share the next one (group commit).
	FsyncAlways FsyncMode = iota
	// FsyncInterval: Replicate returns once the entry is applied; a background fsync runs
	// every LocalConfig.FsyncInterval. A crash loses up to one interval of acknowledged
	// writes.
	FsyncInterval
	// FsyncNever: entries are made durable only by the operating system and by a clean
	// shutdown.
	FsyncNever
)

// ParseFsyncMode parses "always", "interval" or "never".
func ParseFsyncMode(s string) (FsyncMode, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "interval":
		return FsyncInterval, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("%w: fsync mode %q (want always, interval or never)", ErrInvalid, s)
}

func (m FsyncMode) String() string {
	switch m {
	case FsyncAlways:
		return "always"
	case FsyncInterval:
		return "interval"
	case FsyncNever:
		return "never"
	}
	return fmt.Sprintf("FsyncMode(%d)", int(m))
}

// LocalConfig configures a LocalReplicator.
type LocalConfig struct {
	NodeID NodeID
	Fsync  FsyncMode
	// FsyncInterval is the period of background fsyncs in FsyncInterval mode (default 1s).
	FsyncInterval time.Duration
	// OnSyncError, if set, is told about every failed Sync; the entries it covered are
	// reported to their Replicate calls as failed.
	OnSyncError func(key string, err error)
	// Dir and MinFreeBytes: while the file system of Dir has less free space than
	// MinFreeBytes, Replicate refuses entries with ErrStorage. Off when either is unset
	// (zero) or MinFreeBytes is negative. With Dir set, the free space is reported
	// (Status) even while the check is off.
	Dir          string
	MinFreeBytes int64
}

// LocalReplicator is the single-node Replicator: no consensus, this node leads every key.
// Replicate applies the entry at once (serialised per state machine) and, in FsyncAlways
// mode, waits until an fsync covers it. There is no committer goroutine: the first
// waiting caller finds no fsync running and runs one itself, covering every entry applied
// so far, then Commit, then wakes the others; those that arrived during it are covered by
// the next one (group commit). State machines that are ConcurrentSyncers keep taking
// Applies during the fsync.
//
// Indexes are per state machine, dense, from 1 in each process lifetime; the term (leader
// epoch) is always 0.
type LocalReplicator struct {
	cfg   LocalConfig
	space *spaceGuard // nil: no data directory to look at

	mu     sync.RWMutex
	groups map[string]*localGroup
	closed bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// localGroup is one registered state machine.
type localGroup struct {
	key        string
	sm         StateMachine
	concurrent bool // sm may Sync while Apply runs

	// mu serialises Apply and Commit (and Sync unless concurrent).
	mu      sync.Mutex
	applied uint64 // Invariant: committed <= applied.

	// cmu guards the commit side.
	cmu       sync.Mutex
	committed uint64
	syncing   bool          // a caller is running an fsync
	syncErr   error         // sticky: a failed fsync poisons the state machine
	commitCh  chan struct{} // closed and replaced when committed moves, syncErr is set or the group goes
	gone      bool          // unregistered
}

// ErrSyncFailed wraps the error of a failed fsync; the state machine refuses further
// writes until it is reopened.
var ErrSyncFailed = errors.New("replication: fsync failed")

// localTerm is the leader epoch of every entry on a single node.
const localTerm = 0

// NewLocalReplicator returns a single-node replicator.
func NewLocalReplicator(cfg LocalConfig) *LocalReplicator {
	if cfg.FsyncInterval <= 0 {
		cfg.FsyncInterval = time.Second
	}
	r := &LocalReplicator{cfg: cfg, groups: make(map[string]*localGroup), stop: make(chan struct{})}
	if cfg.Dir != "" {
		r.space = newSpaceGuard(cfg.Dir, cfg.MinFreeBytes)
	}
	if cfg.Fsync == FsyncInterval {
		r.wg.Add(1)
		go r.syncEvery(cfg.FsyncInterval)
	}
	return r
}

// Register implements Replicator.
func (r *LocalReplicator) Register(key string, sm StateMachine) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("register %s: %w", key, errReplicatorClosed)
	}
	if _, ok := r.groups[key]; ok {
		return fmt.Errorf("register %s: %w: already registered", key, ErrInvalid)
	}
	g := &localGroup{key: key, sm: sm, commitCh: make(chan struct{})}
	if cs, ok := sm.(ConcurrentSyncer); ok && cs.SyncConcurrently() {
		g.concurrent = true
	}
	r.groups[key] = g
	return nil
}

var errReplicatorClosed = errors.New("replication: replicator closed")

// Unregister implements Replicator. Replicate calls still waiting for key return
// ErrOutcomeUnknown.
func (r *LocalReplicator) Unregister(key string) {
	r.mu.Lock()
	g, ok := r.groups[key]
	delete(r.groups, key)
	r.mu.Unlock()
	if ok {
		g.retire()
	}
}

// retire marks the group gone and wakes its waiters.
func (g *localGroup) retire() {
	g.cmu.Lock()
	defer g.cmu.Unlock()
	if g.gone {
		return
	}
	g.gone = true
	close(g.commitCh)
	g.commitCh = make(chan struct{})
}

// Replicate implements Replicator.
func (r *LocalReplicator) Replicate(ctx context.Context, key string, entry []byte) (any, error) {
	return r.Submit(ctx, key, entry)()
}

// Submit implements AsyncReplicator: the entry is applied before Submit returns (so the
// caller may reuse entry at once), and the returned function waits until an fsync covers
// it. Entries submitted one after another before waiting share an fsync.
func (r *LocalReplicator) Submit(ctx context.Context, key string, entry []byte) func() (any, error) {
	r.mu.RLock()
	g, ok := r.groups[key]
	r.mu.RUnlock()
	if !ok {
		return failedWait(fmt.Errorf("replicate %s: %w", key, ErrUnknownKey))
	}

	g.cmu.Lock()
	err, gone := g.syncErr, g.gone
	g.cmu.Unlock()
	if err != nil {
		return failedWait(err)
	}
	if gone {
		return failedWait(fmt.Errorf("replicate %s: %w", key, ErrUnknownKey))
	}
	if err := r.space.check(); err != nil {
		return failedWait(fmt.Errorf("replicate %s: %w", key, err))
	}

	g.mu.Lock()
	idx := g.applied + 1
	g.applied = idx
	res := g.sm.Apply(idx, localTerm, entry)
	if r.cfg.Fsync != FsyncAlways {
		g.sm.Commit(idx)
		g.mu.Unlock()
		return func() (any, error) { return res, nil }
	}
	g.mu.Unlock()
	return func() (any, error) { return r.waitDurable(ctx, g, idx, res) }
}

func failedWait(err error) func() (any, error) { return func() (any, error) { return nil, err } }

// waitDurable returns res once an fsync covers index idx of g, running the fsync itself
// when none is running.
func (r *LocalReplicator) waitDurable(ctx context.Context, g *localGroup, idx uint64, res any) (any, error) {
	for {
		g.cmu.Lock()
		committed, err, gone, ch := g.committed, g.syncErr, g.gone, g.commitCh
		switch {
		case committed >= idx:
			g.cmu.Unlock()
			return res, nil
		case err != nil:
			g.cmu.Unlock()
			return nil, err
		case gone:
			g.cmu.Unlock()
			return nil, fmt.Errorf("replicate %s: %w: unregistered while waiting for fsync", g.key, ErrOutcomeUnknown)
		case !g.syncing:
			// Nobody is syncing: this caller runs the fsync for everyone applied so far.
			g.syncing = true
			g.cmu.Unlock()
			r.syncGroup(g)
			continue
		}
		g.cmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("replicate %s: %w: %v", g.key, ErrOutcomeUnknown, ctx.Err())
		}
	}
}

// syncGroup runs one Sync covering everything applied so far, then Commit, and wakes the
// waiters. The caller has set g.syncing.
func (r *LocalReplicator) syncGroup(g *localGroup) {
	g.mu.Lock()
	idx := g.applied
	var err error
	if g.concurrent {
		g.mu.Unlock()
		err = g.sm.Sync()
		g.mu.Lock()
	} else {
		err = g.sm.Sync()
	}
	if err == nil {
		g.sm.Commit(idx)
	}
	g.mu.Unlock()

	g.cmu.Lock()
	g.syncing = false
	if err != nil {
		if g.syncErr == nil {
			g.syncErr = fmt.Errorf("replicate %s: %w: %v", g.key, ErrSyncFailed, err)
		}
	} else if idx > g.committed {
		g.committed = idx
	}
	close(g.commitCh)
	g.commitCh = make(chan struct{})
	g.cmu.Unlock()
	if err != nil && r.cfg.OnSyncError != nil {
		r.cfg.OnSyncError(g.key, err)
	}
}

// syncEvery is the background fsync of FsyncInterval mode.
func (r *LocalReplicator) syncEvery(d time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.RLock()
		groups := make([]*localGroup, 0, len(r.groups))
		for _, g := range r.groups {
			groups = append(groups, g)
		}
		r.mu.RUnlock()
		for _, g := range groups {
			g.mu.Lock()
			err := g.sm.Sync()
			g.mu.Unlock()
			if err != nil {
				g.cmu.Lock()
				if g.syncErr == nil {
					g.syncErr = fmt.Errorf("replicate %s: %w: %v", g.key, ErrSyncFailed, err)
				}
				g.cmu.Unlock()
				if r.cfg.OnSyncError != nil {
					r.cfg.OnSyncError(g.key, err)
				}
			}
		}
	}
}

// RetainsEntries reports that entry bytes are not kept after Replicate returns: Apply
// copies them into the log. Callers may reuse their buffers.
func (r *LocalReplicator) RetainsEntries() bool { return false }

func (r *LocalReplicator) diskStatus() (DiskStatus, bool) {
	return r.space.status(), r.space != nil
}

// Leadership implements Replicator: this node leads every key; Local once key is
// registered.
func (r *LocalReplicator) Leadership(key string) Leadership {
	r.mu.RLock()
	_, ok := r.groups[key]
	r.mu.RUnlock()
	return Leadership{Leader: r.cfg.NodeID, Epoch: localTerm, Local: ok}
}

// Close implements Replicator: waiting Replicate calls return ErrOutcomeUnknown and the
// interval syncer stops. State machines are not synced; their owner
// closes them.
func (r *LocalReplicator) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	groups := r.groups
	r.groups = map[string]*localGroup{}
	r.mu.Unlock()
	close(r.stop)
	r.wg.Wait()
	for _, g := range groups {
		g.retire()
	}
	return nil
}

var (
	_ Replicator      = (*LocalReplicator)(nil)
	_ AsyncReplicator = (*LocalReplicator)(nil)
)
