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
}

// LocalReplicator is the single-node Replicator: no consensus, this node leads every key.
// Replicate applies the entry at once (serialised per state machine) and, in FsyncAlways
// mode, waits for the state machine's committer goroutine, which runs one Sync covering
// every entry applied so far, then Commit, then wakes the waiting calls.
//
// Indexes are per state machine, dense, from 1 in each process lifetime; the term (leader
// epoch) is always 0.
type LocalReplicator struct {
	cfg LocalConfig

	mu     sync.RWMutex
	groups map[string]*localGroup
	closed bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// localGroup is one registered state machine.
type localGroup struct {
	key string
	sm  StateMachine

	// mu serialises every call into sm. It is held over Apply and over Sync, so an fsync
	// delays the Applies that arrive during it; they are covered by the next one.
	mu      sync.Mutex
	applied uint64 // Invariant: committed <= applied.

	// cmu guards the commit side.
	cmu       sync.Mutex
	committed uint64
	syncErr   error         // sticky: a failed fsync poisons the state machine
	commitCh  chan struct{} // closed and replaced when committed moves or syncErr is set
	kick      chan struct{} // buffered 1: wakes the committer
	stop      chan struct{}
	done      chan struct{}
	gone      bool // unregistered
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
	g := &localGroup{key: key, sm: sm, commitCh: make(chan struct{}), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	r.groups[key] = g
	if r.cfg.Fsync == FsyncAlways {
		go r.commitLoop(g)
	} else {
		close(g.done)
	}
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
		r.stopGroup(g)
	}
}

func (r *LocalReplicator) stopGroup(g *localGroup) {
	g.cmu.Lock()
	if g.gone {
		g.cmu.Unlock()
		return
	}
	g.gone = true
	close(g.stop)
	g.cmu.Unlock()
	<-g.done
	g.cmu.Lock()
	close(g.commitCh)
	g.commitCh = make(chan struct{})
	g.cmu.Unlock()
}

// Replicate implements Replicator.
func (r *LocalReplicator) Replicate(ctx context.Context, key string, entry []byte) (any, error) {
	r.mu.RLock()
	g, ok := r.groups[key]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("replicate %s: %w", key, ErrUnknownKey)
	}

	g.cmu.Lock()
	err := g.syncErr
	gone := g.gone
	g.cmu.Unlock()
	if err != nil {
		return nil, err
	}
	if gone {
		return nil, fmt.Errorf("replicate %s: %w", key, ErrUnknownKey)
	}

	g.mu.Lock()
	idx := g.applied + 1
	g.applied = idx
	res := g.sm.Apply(idx, localTerm, entry)
	if r.cfg.Fsync != FsyncAlways {
		g.sm.Commit(idx)
		g.mu.Unlock()
		return res, nil
	}
	g.mu.Unlock()

	for {
		g.cmu.Lock()
		committed, err, gone, ch := g.committed, g.syncErr, g.gone, g.commitCh
		g.cmu.Unlock()
		switch {
		case committed >= idx:
			return res, nil
		case err != nil:
			return nil, err
		case gone:
			return nil, fmt.Errorf("replicate %s: %w: unregistered while waiting for fsync", key, ErrOutcomeUnknown)
		}
		select {
		case g.kick <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("replicate %s: %w: %v", key, ErrOutcomeUnknown, ctx.Err())
		}
	}
}

// commitLoop is g's group-commit goroutine (FsyncAlways).
func (r *LocalReplicator) commitLoop(g *localGroup) {
	defer close(g.done)
	for {
		select {
		case <-g.stop:
			return
		case <-g.kick:
		}
		if !r.syncGroup(g) {
			return
		}
	}
}

// syncGroup runs one Sync covering everything applied so far, then Commit; false once the
// state machine is poisoned.
func (r *LocalReplicator) syncGroup(g *localGroup) bool {
	g.mu.Lock()
	idx := g.applied
	g.cmu.Lock()
	if g.committed >= idx || g.syncErr != nil {
		poisoned := g.syncErr != nil
		g.cmu.Unlock()
		g.mu.Unlock()
		return !poisoned
	}
	g.cmu.Unlock()
	err := g.sm.Sync()
	if err == nil {
		g.sm.Commit(idx)
	}
	g.mu.Unlock()

	g.cmu.Lock()
	if err != nil {
		g.syncErr = fmt.Errorf("replicate %s: %w: %v", g.key, ErrSyncFailed, err)
	} else {
		g.committed = idx
	}
	close(g.commitCh)
	g.commitCh = make(chan struct{})
	g.cmu.Unlock()
	if err != nil && r.cfg.OnSyncError != nil {
		r.cfg.OnSyncError(g.key, err)
	}
	return err == nil
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

// Leadership implements Replicator: this node leads every key; Local once key is
// registered.
func (r *LocalReplicator) Leadership(key string) Leadership {
	r.mu.RLock()
	_, ok := r.groups[key]
	r.mu.RUnlock()
	return Leadership{Leader: r.cfg.NodeID, Epoch: localTerm, Local: ok}
}

// Close implements Replicator: it stops the committers (waiting Replicate calls return
// ErrOutcomeUnknown) and the interval syncer. State machines are not synced; their owner
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
		r.stopGroup(g)
	}
	return nil
}

var _ Replicator = (*LocalReplicator)(nil)
