package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"
)

// dataGroup is one data Raft group on this node: raft, its log store (logStore on
// log.FormatEntries), raft-boltdb as stable store, file snapshots, and the FSM routing
// entries to partitions.
type dataGroup struct {
	name   string
	spec   atomic.Pointer[DataGroup] // the controller's view: members, moves; see setSpec
	self   NodeID
	logger *zap.Logger
	fsm    *groupFSM
	raft   *raft.Raft
	trans  *groupTransport
	logs   raft.LogStore
	stable *raftboltdb.BoltStore
	hooks  groupHooks

	raftPtr    atomic.Pointer[raft.Raft] // raft, for goroutines that may run before NewRaft returns
	readyTerm  atomic.Uint64             // the term whose barrier this node completed as leader
	readySince atomic.Int64              // unix nanos when readyTerm was set
	// leaderlessSince (unix nanos) is when this node last saw the group lose its leader,
	// 0 while it knows one (noteLeader).
	leaderlessSince atomic.Int64
	lastTranfer     time.Time // owned by run
	// patience is the election timeout this node stands for election after while it
	// waits for the group's first leader (three times the configured one when another
	// member is the preferred leader); 0 once it has seen a leader. Owned by run.
	patience, electionTimeout time.Duration

	// Owned by run: the move this member is catching up in (generation), since when, and
	// the leader's commit index it must apply up to; when it last tried to hand over
	// leadership to leave the group.
	catchGen              int
	catchSince            time.Time
	catchTarget           uint64
	lastLeave             time.Time
	flushBytes, snapBytes int64
	trailingLogs          uint64       // most entries kept behind a snapshot
	trailingBytes         int64        // about how many bytes of log those may be
	snapMark              atomic.Int64 // appended() at the last snapshot

	observerCh chan raft.Observation
	observer   *raft.Observer
	peers      *peerHealth // whether this node's heartbeats reach the others, while it leads
	stop       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
}

// groupHooks connect a group to the rest of the node.
type groupHooks struct {
	// expect and gone answer for keys with no registered state machine (groupFSM).
	expect keyExpecter
	gone   keyGone
	// preferredReady says whether node has been alive long enough to take leadership back.
	preferredReady func(node NodeID) bool
	// noAutoRebalance: the group does not hand leadership back to its preferred member
	// by itself.
	noAutoRebalance bool
	// addr returns a node's Raft address.
	addr func(node NodeID) string
	// leadershipChanged is called after this node's view of the group's leader changes.
	leadershipChanged func()
	// moveDone reports a step of a move to the controller (raft_membership.go).
	moveDone func(ctx context.Context, op, group string, gen int, node NodeID) error
	// ctrlReady says whether this node's controller view has caught up since it started:
	// moves are driven from it, and a stale one would undo them.
	ctrlReady func() bool
}

// groupMaxInFlight is how many AppendEntries a leader keeps in flight to each follower.
const groupMaxInFlight = 4

// openLogStore opens a data group's Raft log store in dir; a variable so that tests and
// benchmarks can compare stores.
var openLogStore = func(dir string, cacheBytes int64, logger *zap.Logger) (raft.LogStore, error) {
	return openEntryLogStore(dir, logStoreConfig{CacheBytes: cacheBytes, Logger: logger})
}

func startDataGroup(cfg *ClusterConfig, mux *Mux, g *DataGroup, hooks groupHooks) (*dataGroup, error) {
	dir := filepath.Join(cfg.Dir, "groups", g.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data group %s: %w", g.Name, err)
	}
	d := &dataGroup{
		name:   g.Name,
		self:   cfg.NodeID,
		logger: cfg.Logger.With(zap.String("group", g.Name)),
		hooks:  hooks,
		stop:   make(chan struct{}),
	}
	d.spec.Store(g)
	d.fsm = newGroupFSM(g.Name, d.logger, hooks.expect, hooks.gone)
	d.fsm.source = d.dataSources
	d.fsm.onSnapshot = func() { d.snapMark.Store(d.appended()) }
	d.flushBytes, d.snapBytes = cfg.FlushBytes, cfg.SnapshotBytes
	d.trailingLogs, d.trailingBytes = cfg.TrailingLogs, cfg.TrailingBytes
	fail := func(err error) (*dataGroup, error) {
		d.closeStores()
		return nil, fmt.Errorf("data group %s: %w", g.Name, err)
	}
	var err error
	if d.stable, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "stable.db")}); err != nil {
		return fail(err)
	}
	// A group of one has no followers to read recent entries back for.
	cache := cfg.LogCacheBytes
	if len(g.Members) == 1 {
		cache = 0
	}
	if d.logs, err = openLogStore(filepath.Join(dir, "log"), cache, d.logger); err != nil {
		return fail(err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclogFor(d.logger, "snapshot"))
	if err != nil {
		return fail(err)
	}
	sl, err := mux.Group(g.Name)
	if err != nil {
		return fail(err)
	}
	d.trans = newGroupTransport(sl, 10*time.Second, groupMaxInFlight, d.logger)
	has, err := raft.HasExistingState(d.logs, d.stable, snaps)
	if err != nil {
		return fail(err)
	}
	list, err := snaps.List()
	if err != nil {
		return fail(err)
	}
	if len(list) == 0 {
		// No snapshot: raft will replay the whole log, so every partition starts empty.
		if err := d.fsm.restoreState(nil); err != nil {
			return fail(err)
		}
	}
	rc := cfg.raftConfig(g.Name)
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 128
	// Followers learn the commit index from the next AppendEntries, or from an empty one
	// after CommitTimeout; an idle group sends that to every follower each time.
	rc.CommitTimeout = 100 * time.Millisecond
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	// The preferred leader should win the group's first election, so that leadership
	// starts spread over the nodes and is not handed over a few seconds later, under
	// load: the other members wait three times as long before they stand, until they
	// first see a leader (run).
	if d.self != g.Members[0] {
		d.electionTimeout, d.patience = rc.HeartbeatTimeout, 3*rc.HeartbeatTimeout
		rc.HeartbeatTimeout, rc.ElectionTimeout = d.patience, d.patience
	}
	d.raft, err = raft.NewRaft(rc, d.fsm, d.logs, d.stable, snaps, d.trans)
	if err != nil {
		return fail(err)
	}
	d.raftPtr.Store(d.raft)
	// A group that has moved is joined by being added by its leader, never bootstrapped:
	// a new member's configuration would not be the group's.
	if !has && g.Generation == 0 {
		var conf raft.Configuration
		for _, m := range g.Members {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: serverID(m), Address: raft.ServerAddress(hooks.addr(m))})
		}
		if err := d.raft.BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			d.close()
			return nil, fmt.Errorf("data group %s: bootstrap: %w", g.Name, err)
		}
	}
	d.observerCh = make(chan raft.Observation, 16)
	d.observer = raft.NewObserver(d.observerCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	d.raft.RegisterObserver(d.observer)
	d.peers = watchPeers(d.raft)
	d.wg.Add(2)
	go d.run()
	go d.flushLoop()
	return d, nil
}

func (d *dataGroup) closeStores() {
	if d.trans != nil {
		d.trans.Close()
	}
	if c, ok := d.logs.(io.Closer); ok && c != nil {
		c.Close()
	}
	if d.stable != nil {
		d.stable.Close()
	}
}

// run makes this node ready to serve after it wins an election (barrier), hands
// leadership to the preferred leader when that node is back, and takes the group through
// its moves (raft_membership.go), every 100 ms while one goes on.
func (d *dataGroup) run() {
	defer d.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	moveTick := time.NewTicker(100 * time.Millisecond)
	defer moveTick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-d.observerCh:
			d.noteLeader()
			if d.hooks.leadershipChanged != nil {
				d.hooks.leadershipChanged()
			}
		case <-moveTick.C:
			if len(d.spec.Load().Removing) == 0 {
				continue
			}
		case <-tick.C:
		}
		d.endPatience()
		d.becomeReady()
		d.maybeTransfer()
		d.reconcileMembers()
		d.reportCaughtUp()
	}
}

// endPatience puts the election timeout back once a leader is known, after the longer
// one a member that is not the preferred leader starts with.
func (d *dataGroup) endPatience() {
	if d.patience == 0 {
		return
	}
	if addr, _ := d.raft.LeaderWithID(); addr == "" {
		return
	}
	rc := d.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = d.electionTimeout, d.electionTimeout
	if err := d.raft.ReloadConfig(rc); err != nil {
		d.logger.Warn("restoring the election timeout failed", zap.Error(err))
		return
	}
	d.patience = 0
}

// appended is the bytes of Raft log this node has written for the group.
func (d *dataGroup) appended() int64 {
	if ls, ok := d.logs.(*logStore); ok {
		return ls.appended.Load()
	}
	return 0
}

// flushLoop syncs the group's partitions in the background every FlushBytes of log (or
// every few seconds after writes), and takes a snapshot every SnapshotBytes, so dirty
// page-cache data and the Raft log stay bounded whatever the entry sizes.
func (d *dataGroup) flushLoop() {
	defer d.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastFlush, lastFlushAt := d.appended(), time.Now()
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
		}
		d.boundTrailing()
		now := d.appended()
		if now-lastFlush >= d.flushBytes || (now > lastFlush && time.Since(lastFlushAt) > 5*time.Second) {
			if err := d.fsm.syncConcurrently(); err != nil {
				d.logger.Warn("background sync of partitions failed", zap.Error(err))
			}
			lastFlush, lastFlushAt = now, time.Now()
		}
		if now-d.snapMark.Load() >= d.snapBytes {
			start := time.Now()
			if err := d.raft.Snapshot().Error(); err != nil {
				d.logger.Info("snapshot failed", zap.Error(err))
				d.snapMark.Store(now) // try again after as many bytes
				continue
			}
			d.logger.Debug("snapshot taken", zap.Duration("took", time.Since(start)))
		}
	}
}

// minTrailingLogs is the fewest entries a group keeps behind a snapshot however large
// they are.
const minTrailingLogs = 64

// boundTrailing keeps the Raft log a snapshot leaves behind near trailingBytes: raft
// counts trailing entries, and a thousand 1 MiB produce batches would keep a GiB of log on
// disk and in the page cache. The count follows the log's mean entry size, between
// minTrailingLogs and the configured TrailingLogs; raft's config is reloaded when the
// count moves by more than a quarter.
func (d *dataGroup) boundTrailing() {
	ls, ok := d.logs.(*logStore)
	if !ok {
		return
	}
	mean := ls.meanEntryBytes()
	if mean <= 0 {
		return
	}
	want := min(max(uint64(d.trailingBytes/mean), minTrailingLogs), d.trailingLogs)
	rc := d.raft.ReloadableConfig()
	if diff := max(want, rc.TrailingLogs) - min(want, rc.TrailingLogs); diff*4 <= rc.TrailingLogs {
		return
	}
	rc.TrailingLogs = want
	if err := d.raft.ReloadConfig(rc); err != nil {
		d.logger.Warn("bounding the trailing Raft log", zap.Error(err))
	}
}

func (d *dataGroup) becomeReady() {
	if d.raft.State() != raft.Leader {
		return
	}
	term := d.raft.CurrentTerm()
	if d.readyTerm.Load() == term {
		return
	}
	start := time.Now()
	if err := d.raft.Barrier(10 * time.Second).Error(); err != nil {
		d.logger.Info("leader barrier failed", zap.Uint64("term", term), zap.Error(err))
		return
	}
	if d.raft.State() != raft.Leader || d.raft.CurrentTerm() != term {
		return
	}
	d.readySince.Store(time.Now().UnixNano())
	d.readyTerm.Store(term)
	d.logger.Info("leading data group", zap.Uint64("term", term), zap.Duration("barrier", time.Since(start)))
	if d.hooks.leadershipChanged != nil {
		d.hooks.leadershipChanged()
	}
}

// maybeTransfer moves leadership to the preferred leader (members[0]) once it has been
// alive for a while, so leadership stays spread across nodes after failures.
func (d *dataGroup) maybeTransfer() {
	spec := d.spec.Load()
	preferred := spec.Members[0]
	if preferred == d.self || !d.ready() || d.hooks.preferredReady == nil || d.hooks.noAutoRebalance {
		return
	}
	if time.Since(time.Unix(0, d.readySince.Load())) < 5*time.Second || time.Since(d.lastTranfer) < 10*time.Second {
		return
	}
	if !d.hooks.preferredReady(preferred) || d.configuration()[preferred] != raft.Voter {
		return
	}
	d.lastTranfer = time.Now()
	d.logger.Info("handing leadership to the preferred leader", zap.Int32("to", int32(preferred)))
	if err := waitFuture(d.raft.LeadershipTransferToServer(serverID(preferred), raft.ServerAddress(d.hooks.addr(preferred))), d.stop); err != nil {
		d.logger.Info("leadership transfer failed", zap.Int32("to", int32(preferred)), zap.Error(err))
	}
}

// awaitTransfer waits, at most transferWait or until ctx ends, while this node is still
// the leader during a leadership transfer.
func (d *dataGroup) awaitTransfer(ctx context.Context) {
	deadline := time.Now().Add(transferWait)
	for d.raft.State() == raft.Leader && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// transferWait bounds awaitTransfer: a transfer that takes longer has failed (raft gives
// up after an election timeout).
const transferWait = time.Second

// dataSources lists the other members' Raft addresses, the leader first: where a
// replica copies data it misses.
func (d *dataGroup) dataSources() []string {
	var out []string
	leader := NodeID(-1)
	if r := d.raftPtr.Load(); r != nil {
		if addr, id := r.LeaderWithID(); id != "" {
			if leader = parseServerID(id); leader != d.self {
				out = append(out, string(addr))
			}
		}
	}
	for _, m := range groupReplicas(d.spec.Load()) {
		if m != d.self && m != leader {
			out = append(out, d.hooks.addr(m))
		}
	}
	return out
}

// configuration returns the group's latest Raft configuration: each server's suffrage
// (a member being added is a non-voter until it has caught up); nil if raft cannot say.
func (d *dataGroup) configuration() map[NodeID]raft.ServerSuffrage {
	f := d.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	conf := map[NodeID]raft.ServerSuffrage{}
	for _, s := range f.Configuration().Servers {
		conf[parseServerID(s.ID)] = s.Suffrage
	}
	return conf
}

// viewReady says whether this node's controller view may drive moves (see
// groupHooks.ctrlReady).
func (d *dataGroup) viewReady() bool { return d.hooks.ctrlReady == nil || d.hooks.ctrlReady() }

// setSpec updates the controller's view of the group (its members change when it moves).
func (d *dataGroup) setSpec(g *DataGroup) { d.spec.Store(g) }

// ready says whether this node leads the group and may serve.
func (d *dataGroup) ready() bool {
	return d.raft.State() == raft.Leader && d.readyTerm.Load() == d.raft.CurrentTerm()
}

func (d *dataGroup) leadership() Leadership {
	l := Leadership{Leader: -1, Epoch: int32(d.raft.CurrentTerm())}
	if _, id := d.raft.LeaderWithID(); id != "" {
		l.Leader = parseServerID(id)
	} else {
		// Not noted yet (since 0): the leader was lost a moment ago.
		since := d.leaderlessSince.Load()
		l.Electing = since == 0 || time.Since(time.Unix(0, since)) < electingFor
	}
	l.Local = l.Leader == d.self && d.ready()
	return l
}

// noteLeader records since when the group has had no leader, as this node sees it.
// Owned by run.
func (d *dataGroup) noteLeader() {
	if _, id := d.raft.LeaderWithID(); id != "" {
		d.leaderlessSince.Store(0)
	} else if d.leaderlessSince.Load() == 0 {
		d.leaderlessSince.Store(time.Now().UnixNano())
	}
}

func (d *dataGroup) close() error {
	var err error
	d.closeOnce.Do(func() {
		d.fsm.close()
		close(d.stop)
		d.wg.Wait()
		if d.observer != nil {
			d.raft.DeregisterObserver(d.observer)
		}
		if d.peers != nil {
			d.peers.close()
		}
		if d.raft != nil {
			err = d.raft.Shutdown().Error()
		}
		d.closeStores()
	})
	return err
}

// appliedIndex returns the index of the last entry this node has applied. Raft's no-op
// and barrier entries never reach the state machine, so its own count stops before them
// (an idle group's leader committed a no-op and a barrier when it took over); raft's count
// includes them, and may also include a batch handed to the state machine and not yet
// applied. So raft's count is taken only while the state machine is idle: not while it
// applies, waits for a partition to be registered, or retries an entry that keeps
// failing to apply.
func (d *dataGroup) appliedIndex() uint64 {
	a := d.fsm.applied.Load()
	if d.fsm.busy.Load() > 0 {
		return a
	}
	return max(a, d.raft.AppliedIndex())
}

// standForLeader makes this member stand for election now that the process of leader,
// the group's leader, is gone (standForElection).
func (d *dataGroup) standForLeader(leader NodeID, down func(NodeID) bool, stop <-chan struct{}) {
	standForElection(d.raft, d.stable, d.self, leader, down, d.trans.standNow, d.logger, stop, d.stop)
}
