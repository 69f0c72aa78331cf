package replication

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// RaftReplicator is the Replicator of a cluster node: it runs the data groups this node is
// a member of (as the controller's metadata lists them) and routes each key to the group
// its partition is placed on.
//
// Semantics:
//   - A key's leader is its group's Raft leader; the epoch is the Raft term. Leadership is
//     Local only once the leader's barrier has applied everything committed before its term.
//   - Replicate at a node that is not Local returns ErrNotLeader. Otherwise it returns once
//     the entry is committed (in the Raft log of a majority, fsynced) and applied here; the
//     result is what the state machine's Apply returned. If leadership is lost after the
//     entry was submitted, the outcome is unknown (ErrOutcomeUnknown): the entry may still
//     commit under the next leader, so idempotent producers rely on the state machine's
//     own dedupe. Replicate waits for the outcome once the entry is submitted, whatever
//     ctx says: Raft always resolves it (commit, loss of leadership, or shutdown).
//   - There is no leader-local acknowledgement: a Kafka acks=1 write is answered like
//     acks=all. An entry is applied only once committed (that is how every replica assigns
//     the same offsets), so there is nothing to acknowledge earlier.
type RaftReplicator struct {
	cfg    ClusterConfig
	logger *zap.Logger
	mux    *Mux
	ctrl   *RaftController

	mu     sync.Mutex // guards groups, keys, closed; never held over raft calls
	groups map[string]*dataGroup
	keys   map[string]*dataGroup // registered keys
	closed bool

	startMu sync.Mutex // serializes group starts

	index atomic.Pointer[keyIndex] // key -> group for the latest metadata

	aliveMu    sync.Mutex // guards aliveSince
	aliveSince map[NodeID]time.Time

	ctrlReady atomic.Bool // the controller caught up once since start

	space *spaceGuard // refuses entries while the disk is nearly full

	peers *peerWatch // whether the other nodes' processes are there

	changedMu sync.Mutex // guards changed
	changed   chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup
}

var (
	_ Replicator      = (*RaftReplicator)(nil)
	_ AsyncReplicator = (*RaftReplicator)(nil)
)

// AsyncReplicator is implemented by replicators that take further entries for a key
// before the earlier ones are committed. Submit orders entry after every entry submitted
// for the key before it returned, and the function it returns waits for the outcome (what
// Replicate would return). A caller with several entries to write (pipelined produce
// requests) submits them in order and then waits, so they share a replication round.
type AsyncReplicator interface {
	Submit(ctx context.Context, key string, entry []byte) (wait func() (any, error))
}

// keyIndex maps partition keys to their data groups for one metadata version.
type keyIndex struct {
	version uint64
	groups  map[string]string // key -> group
}

// NewRaftReplicator starts the data-group side of a cluster node. ctrl is the node's
// controller; groups start as the metadata lists them.
func NewRaftReplicator(cfg ClusterConfig, mux *Mux, ctrl *RaftController) (*RaftReplicator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &RaftReplicator{
		cfg:        cfg,
		logger:     cfg.Logger.With(zap.String("component", "replicator")),
		mux:        mux,
		ctrl:       ctrl,
		groups:     map[string]*dataGroup{},
		keys:       map[string]*dataGroup{},
		aliveSince: map[NodeID]time.Time{},
		changed:    make(chan struct{}),
		stop:       make(chan struct{}),
		space:      newSpaceGuard(cfg.Dir, cfg.MinFreeBytes),
	}
	r.index.Store(&keyIndex{groups: map[string]string{}})
	r.peers = newPeerWatch(r.logger, cfg.ElectionTimeout, r.leaderDown, r.notifyChanged)
	if err := mux.HandleService(pingService, servePing); err != nil {
		return nil, err
	}
	ctrl.setGone(r.nodeGone)
	ctrl.setLeading(r.leading)
	ctrl.setDisk(r.diskStatus)
	ctrl.setElect(r.electHere)
	if err := mux.HandleService(dataService, r.serveData); err != nil {
		return nil, err
	}
	r.wg.Add(2)
	go r.watch()
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-r.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		for ctx.Err() == nil {
			if err := ctrl.WaitReady(ctx); err == nil {
				r.ctrlReady.Store(true)
				return
			}
		}
	}()
	return r, nil
}

// watch follows the metadata: starts the groups this node is a member of and tracks how
// long each node has been alive.
func (r *RaftReplicator) watch() {
	defer r.wg.Done()
	for {
		changed := r.ctrl.Changed()
		st := r.ctrl.State()
		r.updateIndex(st)
		r.updateLiveness(st)
		r.peers.sync(otherNodes(st, r.cfg.NodeID))
		groups := r.ctrl.Groups()
		for _, g := range groups {
			if slices.Contains(groupReplicas(g), r.cfg.NodeID) {
				dg, err := r.ensureGroup(g.Name)
				if err != nil {
					r.logger.Error("starting data group failed", zap.String("group", g.Name), zap.Error(err))
					continue
				}
				dg.setSpec(g)
			}
		}
		r.dropGroups(groups)
		r.notifyChanged()
		select {
		case <-r.stop:
			return
		case <-changed:
		case <-time.After(5 * time.Second): // retry failed group starts
		}
	}
}

func (r *RaftReplicator) updateIndex(st *ClusterState) *keyIndex {
	idx := r.index.Load()
	if idx.version == st.Version && idx.version != 0 {
		return idx
	}
	next := &keyIndex{version: st.Version, groups: map[string]string{}}
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			next.groups[partitionKey(t.ID, p.Partition)] = p.Group
		}
	}
	r.index.Store(next)
	return next
}

func (r *RaftReplicator) updateLiveness(st *ClusterState) {
	r.aliveMu.Lock()
	defer r.aliveMu.Unlock()
	now := time.Now()
	for _, n := range st.Nodes {
		_, was := r.aliveSince[n.ID]
		switch {
		case n.Alive && !was:
			r.aliveSince[n.ID] = now
		case !n.Alive && was:
			delete(r.aliveSince, n.ID)
		}
	}
}

// preferredReady says whether node has been alive for a while: long enough to have
// caught up after a restart.
func (r *RaftReplicator) preferredReady(node NodeID) bool {
	r.aliveMu.Lock()
	defer r.aliveMu.Unlock()
	since, ok := r.aliveSince[node]
	return ok && time.Since(since) > 5*time.Second
}

// partitionKey is partition.Key: "<topic ID in hex>/<partition>".
func partitionKey(id [16]byte, partition int32) string {
	return hex.EncodeToString(id[:]) + "/" + strconv.Itoa(int(partition))
}

// groupOf returns the data group of key in the latest metadata.
func (r *RaftReplicator) groupOf(key string) (string, bool) {
	idx := r.updateIndex(r.ctrl.State())
	g, ok := idx.groups[key]
	return g, ok
}

// ensureGroup starts group name if this node runs it and it is not running.
func (r *RaftReplicator) ensureGroup(name string) (*dataGroup, error) {
	r.mu.Lock()
	g, ok := r.groups[name]
	closed := r.closed
	r.mu.Unlock()
	if ok {
		return g, nil
	}
	if closed {
		return nil, ErrTransportClosed
	}
	r.startMu.Lock()
	defer r.startMu.Unlock()
	r.mu.Lock()
	g, ok = r.groups[name]
	r.mu.Unlock()
	if ok {
		return g, nil
	}
	dg, ok := r.ctrl.Groups()[name]
	if !ok {
		return nil, fmt.Errorf("data group %q: %w: not in the metadata", name, ErrUnknownKey)
	}
	if !slices.Contains(groupReplicas(dg), r.cfg.NodeID) {
		return nil, fmt.Errorf("data group %q: %w: node %d is not a member", name, ErrInvalid, r.cfg.NodeID)
	}
	g, err := startDataGroup(&r.cfg, r.mux, dg, groupHooks{
		expect:            r.expecter(name),
		gone:              r.gone,
		preferredReady:    r.preferredReady,
		noAutoRebalance:   r.cfg.NoAutoLeaderRebalance,
		addr:              r.peerAddr,
		leadershipChanged: r.notifyChanged,
		moveDone:          r.ctrl.moveDone,
		ctrlReady:         r.ctrlReady.Load,
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		g.close()
		return nil, ErrTransportClosed
	}
	r.groups[name] = g
	r.mu.Unlock()
	r.logger.Info("started data group", zap.String("group", name), zap.Any("members", dg.Members))
	return g, nil
}

func (r *RaftReplicator) peerAddr(id NodeID) string {
	for _, n := range r.ctrl.State().Nodes {
		if n.ID == id && n.RaftAddr != "" {
			return n.RaftAddr
		}
	}
	for _, p := range r.cfg.Peers {
		if p.ID == id {
			return p.RaftAddr
		}
	}
	return ""
}

// expecter waits until the metadata is at least at version, then says whether key is a
// partition of group.
func (r *RaftReplicator) expecter(group string) keyExpecter {
	return func(key string, version uint64, stop <-chan struct{}) (bool, bool) {
		for {
			changed := r.ctrl.Changed()
			st := r.ctrl.State()
			if st.Version >= version {
				g, ok := r.updateIndex(st).groups[key]
				return ok && g == group, true
			}
			select {
			case <-stop:
				return false, false
			case <-changed:
			}
		}
	}
}

// gone says whether key's partition is known to be deleted.
func (r *RaftReplicator) gone(key string) bool {
	if !r.ctrlReady.Load() {
		return false
	}
	_, ok := r.groupOf(key)
	return !ok
}

// Register attaches sm under key. The key's partition must be in the metadata; its group
// is started here if it is not running yet.
func (r *RaftReplicator) Register(key string, sm StateMachine) error {
	name, ok := r.groupOf(key)
	if !ok {
		return fmt.Errorf("register %q: %w: not in the cluster metadata", key, ErrUnknownKey)
	}
	g, err := r.ensureGroup(name)
	if err != nil {
		return fmt.Errorf("register %q: %w", key, err)
	}
	r.mu.Lock()
	if _, dup := r.keys[key]; dup {
		r.mu.Unlock()
		return fmt.Errorf("register %q: %w: already registered", key, ErrInvalid)
	}
	r.keys[key] = g
	r.mu.Unlock()
	if err := g.fsm.register(key, sm); err != nil {
		r.mu.Lock()
		delete(r.keys, key)
		r.mu.Unlock()
		return err
	}
	return nil
}

// Unregister detaches key.
func (r *RaftReplicator) Unregister(key string) {
	r.mu.Lock()
	g, ok := r.keys[key]
	delete(r.keys, key)
	r.mu.Unlock()
	if ok {
		g.fsm.unregister(key)
	}
}

// Replicate submits entry for key through its group and returns its Apply result once
// committed and applied.
func (r *RaftReplicator) Replicate(ctx context.Context, key string, entry []byte) (any, error) {
	return r.Submit(ctx, key, entry)()
}

// Submit implements AsyncReplicator: the entry is ordered after every entry submitted for
// the key before Submit returned, and the returned function waits for its result (what
// Replicate returns). Callers that submit several entries before waiting let Raft carry
// them in one round (one fsync per node).
func (r *RaftReplicator) Submit(ctx context.Context, key string, entry []byte) func() (any, error) {
	r.mu.Lock()
	g, ok := r.keys[key]
	r.mu.Unlock()
	if !ok {
		return failed(fmt.Errorf("replicate %q: %w", key, ErrUnknownKey))
	}
	if !g.ready() {
		return failed(fmt.Errorf("replicate %q: %w", key, ErrNotLeader))
	}
	if err := ctx.Err(); err != nil {
		return failed(err)
	}
	if err := r.space.check(); err != nil {
		return failed(fmt.Errorf("replicate %q: %w", key, err))
	}
	if err := g.fsm.applyFailure(); err != nil {
		return failed(fmt.Errorf("replicate %q: %w: group %s cannot apply entries on this node: %v", key, ErrStorage, g.name, err))
	}
	// Raft keeps entry only until the entry is applied here (the log store keeps its own
	// copy for followers), which is before the returned function returns.
	f := g.raft.ApplyLog(dataEntry(r.ctrl.State().Version, key, entry), 10*time.Second)
	return func() (any, error) {
		// The wait ends with the request's deadline: the entry may still commit and
		// apply, so its outcome is unknown, as when leadership is lost.
		var err error
		if ctx.Done() != nil {
			err = waitFuture(f, ctx.Done())
		} else {
			err = f.Error()
		}
		if errors.Is(err, errGroupClosing) {
			return nil, fmt.Errorf("replicate %s: %w: %w", key, ErrOutcomeUnknown, context.Cause(ctx))
		}
		if errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			// Not appended (raftErr: ErrNotLeader). The answer waits (a little) for the
			// transfer to end, so that it can name the next leader rather than this node,
			// which a client would not take as news.
			g.awaitTransfer(ctx)
		}
		if err != nil {
			return nil, raftErr("replicate "+key, err)
		}
		res := f.Response()
		if err, ok := res.(error); ok && errors.Is(err, ErrUnknownKey) {
			return nil, err
		}
		return res, nil
	}
}

func failed(err error) func() (any, error) { return func() (any, error) { return nil, err } }

// RetainsEntries says that Replicate does not keep the entry bytes it was given once it
// returns (the log store caches its own copy), so callers may reuse their buffers.
func (r *RaftReplicator) RetainsEntries() bool { return false }

// HandOff prepares a shutdown: every data group this node leads hands its leadership to
// another member known alive (raft_handoff.go), so its partitions have a leader again at
// once instead of after an election timeout, and clients are told where it went. It
// waits until the transfers are done or ctx ends; a group whose transfer fails stays led
// here until the node stops. It returns how many groups it handed off.
func (r *RaftReplicator) HandOff(ctx context.Context) (handed int, err error) {
	r.mu.Lock()
	groups := make([]*dataGroup, 0, len(r.groups))
	for _, g := range r.groups {
		groups = append(groups, g)
	}
	r.mu.Unlock()
	dead := nodeDead(r.ctrl.State())
	var wg sync.WaitGroup
	var n atomic.Int32
	errs := make([]error, len(groups))
	for i, g := range groups {
		if g.raft == nil || g.raft.State() != raft.Leader || len(g.configuration()) < 2 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			to, err := handOffLeadership(ctx, g.raft, handOffTargets(g.raft, r.cfg.NodeID, g.peers, dead))
			if err != nil {
				errs[i] = fmt.Errorf("hand off group %s: %w", g.name, err)
				return
			}
			n.Add(1)
			r.logger.Info("handed off the leadership of a data group", zap.String("group", g.name), zap.Int32("to", int32(to)))
		}()
	}
	wg.Wait()
	return int(n.Load()), errors.Join(errs...)
}

// Leadership reports the leader of key's group: from Raft for groups this node runs, from
// the controller's record of group leaders otherwise. A leader whose process is known gone
// is reported as none (unlessGone).
func (r *RaftReplicator) Leadership(key string) Leadership {
	return r.unlessGone(r.leadership(key))
}

func (r *RaftReplicator) leadership(key string) Leadership {
	r.mu.Lock()
	g, ok := r.keys[key]
	r.mu.Unlock()
	if ok {
		return g.leadership()
	}
	name, ok := r.groupOf(key)
	if !ok {
		return Leadership{Leader: -1}
	}
	r.mu.Lock()
	g, ok = r.groups[name]
	r.mu.Unlock()
	if ok {
		return g.leadership()
	}
	if gl, ok := r.ctrl.GroupLeaders()[name]; ok {
		return Leadership{Leader: gl.Leader, Epoch: int32(gl.Term)}
	}
	return Leadership{Leader: -1}
}

// electingFor is how long after a leader's process went away its groups count as
// electing a new one (Leadership.Electing).
const electingFor = 5 * time.Second

// unlessGone turns a leader whose process is gone (peerWatch) into no leader: clients
// sent there would only find a refused connection.
func (r *RaftReplicator) unlessGone(l Leadership) Leadership {
	if l.Leader < 0 || l.Leader == r.cfg.NodeID {
		return l
	}
	if down, since := r.peers.isDown(l.Leader); down {
		l.Leader, l.Local = -1, false
		l.Electing = time.Since(since) < electingFor
	}
	return l
}

// leaderDown makes the groups led by node, whose process just went away, and the
// controller group if node led it, stand for election now (standForElection).
func (r *RaftReplicator) leaderDown(node NodeID) {
	r.mu.Lock()
	groups := make([]*dataGroup, 0, len(r.groups))
	for _, g := range r.groups {
		groups = append(groups, g)
	}
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.ctrl.standForLeader(node, r.nodeGone, r.stop)
	}()
	for _, g := range groups {
		if _, id := g.raft.LeaderWithID(); id == "" || parseServerID(id) != node {
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			g.standForLeader(node, r.nodeGone, r.stop)
		}()
	}
}

// ProbeNodes asks the processes of nodes, all at once, whether they are there, and
// returns those found gone (peerWatch.probe): a round trip to each, or, for a process
// that died a moment ago, as long as its kernel takes to close its connections. This
// node is left out. Leadership names none of those found gone as a leader.
func (r *RaftReplicator) ProbeNodes(ctx context.Context, nodes []NodeID) []NodeID {
	var (
		mu   sync.Mutex
		gone []NodeID
		wg   sync.WaitGroup
	)
	for _, id := range nodes {
		if id == r.cfg.NodeID {
			continue
		}
		wg.Go(func() {
			if r.peers.probe(ctx, id) {
				mu.Lock()
				gone = append(gone, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return gone
}

// nodeGone says whether node's process is known gone (peerWatch).
func (r *RaftReplicator) nodeGone(node NodeID) bool {
	down, _ := r.peers.isDown(node)
	return down
}

// otherNodes returns the Raft addresses of the nodes of st other than self.
func otherNodes(st *ClusterState, self NodeID) map[NodeID]string {
	out := make(map[NodeID]string, len(st.Nodes))
	for _, n := range st.Nodes {
		if n.ID != self && n.RaftAddr != "" {
			out[n.ID] = n.RaftAddr
		}
	}
	return out
}

// LeadershipChanged returns a channel closed at the next change of any group's leader as
// seen by this node (or of the metadata).
func (r *RaftReplicator) LeadershipChanged() <-chan struct{} {
	r.changedMu.Lock()
	defer r.changedMu.Unlock()
	return r.changed
}

func (r *RaftReplicator) notifyChanged() {
	r.changedMu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.changedMu.Unlock()
}

// leading reports the groups this node leads and serves, with their terms, and the groups
// it runs, for the controller's heartbeat.
func (r *RaftReplicator) leading() (map[string]uint64, []string) {
	r.mu.Lock()
	groups := make([]*dataGroup, 0, len(r.groups))
	for _, g := range r.groups {
		groups = append(groups, g)
	}
	r.mu.Unlock()
	out := map[string]uint64{}
	running := make([]string, 0, len(groups))
	for _, g := range groups {
		running = append(running, g.name)
		if g.ready() {
			out[g.name] = g.readyTerm.Load()
		}
	}
	return out, running
}

// Close stops every data group; state machines are left as they are.
func (r *RaftReplicator) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	r.peers.close()
	r.wg.Wait()
	r.startMu.Lock()
	defer r.startMu.Unlock()
	r.mu.Lock()
	groups := r.groups
	r.groups = map[string]*dataGroup{}
	r.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.close(); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
