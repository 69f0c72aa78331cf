package replication

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"
)

// ErrControllerClosed is returned by calls on a closed controller.
var ErrControllerClosed = errors.New("replication: controller closed")

// controllerGroup is the controller's group name on the shared port.
const controllerGroup = "controller"

// RaftController is the Controller of a cluster: a Raft group over every node (raft-boltdb
// log and stable store, file snapshots) whose FSM holds the cluster metadata.
//
// Every node may call the changing methods: a call on a follower is forwarded to the leader
// over the shared Raft port ("_ctl" service, raft_rpc.go) and returns once this node has
// applied the change, so State shows it. Only the leader prepares changes (topic IDs,
// partition placement), one at a time.
//
// Liveness: every node sends the leader a heartbeat each second (which also registers its
// Kafka and Raft addresses); the leader marks a node dead after LivenessTimeout without
// one, or at once when the node's process is known gone (setGone), and alive again at the
// next heartbeat, through the log, so every node agrees. A heartbeat
// also carries the node's disk (free space, whether it refuses writes for lack of it):
// the leader keeps each node's last in memory, not in the log, and answers every
// heartbeat with all of them, so each node's Status shows every node's disk as of about
// a second ago.
type RaftController struct {
	cfg    ClusterConfig
	logger *zap.Logger
	mux    *Mux
	raft   *raft.Raft
	trans  *standingTransport
	store  *raftboltdb.BoltStore
	fsm    *ctrlFSM
	rpc    *rpcClient

	mu      sync.Mutex // guards state and changed
	state   *ClusterState
	changed chan struct{}

	writeMu sync.Mutex // serializes the leader's preparation of changes

	liveMu      sync.Mutex // guards lastSeen, running, disks, diskView and leaderTerm
	lastSeen    map[NodeID]time.Time
	running     map[NodeID][]string   // the data groups each node last said it runs
	disks       map[NodeID]diskReport // on the leader: each node's disk as it last said
	diskView    map[NodeID]DiskStatus // every node's disk, from the leader's answer to the last heartbeat
	diskViewAt  time.Time             // when that answer came
	leaderTerm  uint64
	stop        chan struct{}
	stopCtx     context.Context // done once Close begins: bounds the calls this node makes of its own accord
	stopCancel  context.CancelFunc
	wg          sync.WaitGroup
	closeOnce   sync.Once
	observerCh  chan raft.Observation
	observer    *raft.Observer
	peers       *peerHealth // whether this node's heartbeats reach the others, while it leads
	barrierTerm uint64      // the term in which the leader last completed a barrier; under writeMu

	leadingFn atomic.Pointer[func() (map[string]uint64, []string)] // reports the data groups this node leads and runs
	diskFn    atomic.Pointer[func() (DiskStatus, bool)]            // this node's disk, reported in heartbeats
	goneFn    atomic.Pointer[func(NodeID) bool]                    // whether a node's process is known gone
	electFn   atomic.Pointer[func(context.Context, string) error]  // hands a data group led here to its preferred member
	leaving   atomic.Bool                                          // HandOff ran: no more heartbeats

	// joinFailed is closed, with joinErr set, when the cluster refused this node's join.
	joinFailed chan struct{}
	joinErr    error
}

var _ Controller = (*RaftController)(nil)

// NewRaftController starts the controller group on mux. The first start with an empty
// directory bootstraps the group with cfg.Peers (identically on every node).
func NewRaftController(cfg ClusterConfig, mux *Mux) (*RaftController, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.Dir, controllerGroup)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	c := &RaftController{
		cfg:      cfg,
		logger:   cfg.Logger.With(zap.String("component", "controller")),
		mux:      mux,
		rpc:      newRPCClient(),
		changed:  make(chan struct{}),
		lastSeen: map[NodeID]time.Time{},
		running:  map[NodeID][]string{},
		disks:    map[NodeID]diskReport{},
		stop:     make(chan struct{}),

		joinFailed: make(chan struct{}),
	}
	c.stopCtx, c.stopCancel = context.WithCancel(context.Background())
	c.state = emptyCtrlData().clusterState(-1)
	c.fsm = newCtrlFSM(c.onFSMChange)

	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("controller: open raft.db: %w", err)
	}
	c.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclogFor(cfg.Logger, "snapshot"))
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("controller: snapshot store: %w", err)
	}
	sl, err := mux.Group(controllerGroup)
	if err != nil {
		store.Close()
		return nil, err
	}
	c.trans = newStandingTransport(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: sl, MaxPool: 3, Timeout: 10 * time.Second, Logger: hclogFor(cfg.Logger, "controller-transport"),
	}))
	rc := cfg.raftConfig(controllerGroup)
	rc.SnapshotThreshold = 1024
	rc.TrailingLogs = 1024

	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		c.trans.Close()
		store.Close()
		return nil, fmt.Errorf("controller: %w", err)
	}
	r, err := raft.NewRaft(rc, c.fsm, store, store, snaps, c.trans)
	if err != nil {
		c.trans.Close()
		store.Close()
		return nil, fmt.Errorf("controller: start raft: %w", err)
	}
	c.raft = r
	if !has && len(cfg.Join) == 0 {
		if err := r.BootstrapCluster(peersConfiguration(cfg.Peers)).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			c.Close()
			return nil, fmt.Errorf("controller: bootstrap: %w", err)
		}
		c.logger.Info("bootstrapped the controller group", zap.Int("peers", len(cfg.Peers)))
	}
	if err := mux.HandleService(ctlService, func(conn net.Conn) { serveRPC(conn, c.stop, c.serveCtl) }); err != nil {
		c.Close()
		return nil, err
	}
	c.observerCh = make(chan raft.Observation, 16)
	c.observer = raft.NewObserver(c.observerCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(c.observer)
	c.peers = watchPeers(r)
	if !has && len(cfg.Join) > 0 {
		c.wg.Add(1)
		go c.joinLoop()
	}
	if has {
		c.wg.Add(1)
		go c.memberCheckLoop()
	}
	c.wg.Add(3)
	go c.watchLeader()
	go c.heartbeatLoop()
	go c.leaderLoop()
	return c, nil
}

func peersConfiguration(peers []Peer) raft.Configuration {
	var cfg raft.Configuration
	for _, p := range peers {
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: serverID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
	}
	return cfg
}

// onFSMChange publishes d; the FSM calls it under its lock.
func (c *RaftController) onFSMChange(d *ctrlData) {
	c.publish(d)
}

func (c *RaftController) publish(d *ctrlData) {
	leader := NodeID(-1)
	if c.raft != nil {
		if _, id := c.raft.LeaderWithID(); id != "" {
			leader = parseServerID(id)
		}
	}
	st := d.clusterState(leader)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = st
	close(c.changed)
	c.changed = make(chan struct{})
}

// watchLeader republishes the state when the controller leader changes (ControllerID).
func (c *RaftController) watchLeader() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-c.observerCh:
			c.publish(c.fsm.view())
		}
	}
}

// State returns the current metadata.
func (c *RaftController) State() *ClusterState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Changed returns a channel closed at the next change of State.
func (c *RaftController) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Groups returns the data groups the controller knows of.
func (c *RaftController) Groups() map[string]*DataGroup { return c.fsm.view().Groups }

// GroupLeaders returns the data groups' leaders as last reported by them.
func (c *RaftController) GroupLeaders() map[string]GroupLeader { return c.fsm.view().GroupLeaders }

// setLeading installs the function the heartbeat asks for the data groups this node leads
// (with their terms) and runs.
func (c *RaftController) setLeading(fn func() (map[string]uint64, []string)) { c.leadingFn.Store(&fn) }

// setDisk installs the function the heartbeat asks for this node's disk (ok false: none
// to report).
func (c *RaftController) setDisk(fn func() (st DiskStatus, ok bool)) { c.diskFn.Store(&fn) }

// setGone installs the function that says whether a node's process is known to be gone
// (its Raft port refuses connections): the leader then counts it dead at once, without
// waiting for its heartbeats to time out.
func (c *RaftController) setGone(fn func(NodeID) bool) { c.goneFn.Store(&fn) }

// gone says whether node's process is known to be gone.
func (c *RaftController) gone(node NodeID) bool {
	fn := c.goneFn.Load()
	return fn != nil && (*fn)(node)
}

// setElect sets the function that answers rpcElectPreferred.
func (c *RaftController) setElect(fn func(ctx context.Context, group string) error) {
	c.electFn.Store(&fn)
}

// diskReport is a node's disk as a heartbeat reported it, and when.
type diskReport struct {
	at   time.Time
	disk DiskStatus
}

// nodeDisks returns every node's disk as the controller leader knows it, from its answer
// to this node's last heartbeat; nil when that answer is older than LivenessTimeout (or
// came from a leader that does not report disks).
func (c *RaftController) nodeDisks() map[NodeID]DiskStatus {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	if time.Since(c.diskViewAt) >= c.cfg.LivenessTimeout {
		return nil
	}
	return c.diskView
}

// leaderDisks, on the leader, returns the disks of the nodes heard from within
// LivenessTimeout.
func (c *RaftController) leaderDisks() map[NodeID]DiskStatus {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	out := make(map[NodeID]DiskStatus, len(c.disks))
	for id, r := range c.disks {
		if time.Since(r.at) < c.cfg.LivenessTimeout {
			out[id] = r.disk
		}
	}
	return out
}

// Leader returns the controller leader's node and Raft address, or -1.
func (c *RaftController) Leader() (NodeID, string) {
	addr, id := c.raft.LeaderWithID()
	if id == "" {
		return -1, ""
	}
	return parseServerID(id), string(addr)
}

// Raft exposes the controller's raft instance for status reports.
func (c *RaftController) Raft() *raft.Raft { return c.raft }

// CreateTopic creates a topic, placing its partitions on data groups.
func (c *RaftController) CreateTopic(ctx context.Context, spec TopicSpec) (*Topic, error) {
	resp, err := c.call(ctx, &rpcRequest{Op: rpcCreateTopic, Spec: &spec})
	if err != nil {
		return nil, err
	}
	return resp.Topic, nil
}

// DeleteTopic deletes a topic.
func (c *RaftController) DeleteTopic(ctx context.Context, name string) error {
	_, err := c.call(ctx, &rpcRequest{Op: rpcDeleteTopic, Name: name})
	return err
}

// CreatePartitions grows topic name to count partitions.
func (c *RaftController) CreatePartitions(ctx context.Context, name string, count int32) error {
	_, err := c.call(ctx, &rpcRequest{Op: rpcCreatePartitions, Name: name, Count: int64(count)})
	return err
}

// AlterConfigs sets or removes topic configs.
func (c *RaftController) AlterConfigs(ctx context.Context, name string, set map[string]*string) error {
	_, err := c.call(ctx, &rpcRequest{Op: rpcAlterConfigs, Name: name, Configs: set})
	return err
}

// AllocateProducerIDs reserves n producer IDs and returns the first.
func (c *RaftController) AllocateProducerIDs(ctx context.Context, n int64) (int64, error) {
	resp, err := c.call(ctx, &rpcRequest{Op: rpcAllocPIDs, Count: n})
	if err != nil {
		return 0, err
	}
	return resp.Value, nil
}

// WaitReady waits until a controller leader is known and this node has applied everything
// it had applied when asked.
func (c *RaftController) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.joinFailed:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err := c.call(ctx, &rpcRequest{Op: rpcReadIndex})
	select {
	case <-c.joinFailed:
		return c.joinErr
	default:
	}
	return err
}

// call runs req at the leader (here, or forwarded) and waits until this node has applied
// the index the answer names. Calls that did not reach a leader are retried until ctx ends.
func (c *RaftController) call(ctx context.Context, req *rpcRequest) (*rpcResponse, error) {
	var lastErr error
	backoff := 20 * time.Millisecond
	for {
		select {
		case <-c.stop:
			return nil, ErrControllerClosed
		default:
		}
		var resp *rpcResponse
		var err error
		leader, addr := c.Leader()
		switch {
		case leader == c.cfg.NodeID:
			r := c.handle(ctx, req)
			resp = &r
		case leader >= 0:
			resp, err = c.rpc.call(ctx, addr, req)
		default:
			err = fmt.Errorf("controller: %w: no leader known", ErrNotLeader)
		}
		if err == nil {
			err = resp.err()
		}
		if err == nil {
			if err := c.waitApplied(ctx, resp.Index); err != nil {
				return nil, err
			}
			return resp, nil
		}
		// Retry what never reached a leader (no leader, a follower answered, or the
		// connection failed before a request was sent); return everything else.
		var re *rpcError
		if !isRetryable(err) && errors.As(err, &re) {
			return nil, err
		}
		if errors.Is(err, ErrOutcomeUnknown) {
			return nil, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("controller %s: %w (last error: %v)", req.Op, ctx.Err(), lastErr)
		case <-c.stop:
			return nil, ErrControllerClosed
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

// waitApplied waits until this node's controller FSM has applied the command at index
// (and so every command before it).
func (c *RaftController) waitApplied(ctx context.Context, index uint64) error {
	for c.fsm.applied.Load() < index {
		select {
		case <-ctx.Done():
			return fmt.Errorf("controller: wait for index %d: %w", index, ctx.Err())
		case <-c.stop:
			return ErrControllerClosed
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// handle runs a request on this node, which must lead the controller group.
func (c *RaftController) handle(ctx context.Context, req *rpcRequest) rpcResponse {
	if c.raft.State() != raft.Leader {
		return responseError(fmt.Errorf("controller %s: %w", req.Op, ErrNotLeader))
	}
	switch req.Op {
	case rpcHeartbeat:
		resp := c.handleHeartbeat(req.Node, req.Leading, req.Running, req.Disk)
		if resp.Code == "" {
			resp.Disks = c.leaderDisks()
		}
		return resp
	case rpcReadIndex:
		// After the barrier this node's FSM has applied every command committed so far.
		if err := c.raft.Barrier(10 * time.Second).Error(); err != nil {
			return responseError(raftErr("controller barrier", err))
		}
		return rpcResponse{Index: c.fsm.applied.Load()}
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.barrier(c.raft.CurrentTerm()); err != nil {
		return responseError(err)
	}
	d := c.fsm.view()
	var cmd *ctrlCommand
	switch req.Op {
	case rpcJoin:
		return c.handleJoin(d, req.Node)
	case rpcMember:
		if req.Node == nil {
			return responseError(fmt.Errorf("controller: member: %w", ErrInvalid))
		}
		if _, ok := d.Nodes[req.Node.ID]; !ok {
			return responseError(fmt.Errorf("controller: node %d: %w: not a member of the cluster", req.Node.ID, ErrInvalid))
		}
		return rpcResponse{Index: c.fsm.applied.Load()}
	case rpcRemoveNode:
		if req.Node == nil {
			return responseError(fmt.Errorf("controller: remove node: %w", ErrInvalid))
		}
		var err error
		if cmd, err = c.prepareRemoveNode(d, req.Node.ID); err != nil {
			return responseError(err)
		}
	case rpcRebalance:
		moves := planRebalance(d, c.placeable(d))
		if len(moves) == 0 {
			return rpcResponse{Index: c.fsm.applied.Load(), Moves: moves}
		}
		cmd = &ctrlCommand{Op: opMoveGroups, Moves: moves}
		res, index, err := c.apply(cmd)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			return responseError(err)
		}
		c.logger.Info("rebalancing data groups", zap.Any("moves", moves))
		return rpcResponse{Index: index, Moves: moves}
	case rpcMemberCaughtUp, rpcGroupMoved:
		if req.Node == nil {
			return responseError(fmt.Errorf("controller %s: %w", req.Op, ErrInvalid))
		}
		op := opCaughtUp
		if req.Op == rpcGroupMoved {
			op = opGroupMoved
		}
		cmd = &ctrlCommand{Op: op, Group: req.Group, Generation: int(req.Count), NodeID: req.Node.ID}
	case rpcCreateTopic:
		var err error
		if cmd, err = c.prepareCreateTopic(d, req.Spec); err != nil {
			return responseError(err)
		}
	case rpcDeleteTopic:
		cmd = &ctrlCommand{Op: opDeleteTopic, Name: req.Name}
	case rpcCreatePartitions:
		t, ok := d.Topics[req.Name]
		if !ok {
			return responseError(fmt.Errorf("controller: create partitions %q: %w", req.Name, ErrUnknownTopic))
		}
		have := int64(len(t.Partitions))
		if req.Count <= have {
			return responseError(fmt.Errorf("controller: create partitions %q: %w: %d is not more than the current %d", req.Name, ErrInvalid, req.Count, have))
		}
		rf := 1
		if len(t.Partitions) > 0 {
			// The group's factor: a moving group has more replicas for a while.
			rf = len(t.Partitions[0].Replicas)
			if g, ok := d.Groups[t.Partitions[0].Group]; ok {
				rf = g.ReplicationFactor
			}
		}
		parts, groups, err := placePartitions(d, c.placeable(d), c.cfg.GroupsPerNode, t.Name, int32(have), int32(req.Count-have), rf)
		if err != nil {
			return responseError(fmt.Errorf("controller: create partitions %q: %w", req.Name, err))
		}
		cmd = &ctrlCommand{Op: opCreatePartitions, Name: req.Name, Partitions: parts, NewGroups: groups}
	case rpcAlterConfigs:
		cmd = &ctrlCommand{Op: opAlterConfigs, Name: req.Name, Configs: req.Configs}
	case rpcAllocPIDs:
		cmd = &ctrlCommand{Op: opAllocPIDs, Count: req.Count}
	default:
		return responseError(fmt.Errorf("controller: unknown request %q: %w", req.Op, ErrInvalid))
	}
	res, index, err := c.apply(cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return responseError(err)
	}
	return rpcResponse{Topic: res.Topic, Value: res.Value, Index: index}
}

func (c *RaftController) prepareCreateTopic(d *ctrlData, spec *TopicSpec) (*ctrlCommand, error) {
	if spec == nil {
		return nil, fmt.Errorf("controller: create topic: %w", ErrInvalid)
	}
	if err := validTopicName(spec.Name); err != nil {
		return nil, fmt.Errorf("controller: create topic: %w", err)
	}
	if _, ok := d.Topics[spec.Name]; ok {
		return nil, fmt.Errorf("controller: create topic %q: %w", spec.Name, ErrTopicExists)
	}
	if spec.Partitions <= 0 {
		return nil, fmt.Errorf("controller: create topic %q: %w: %d partitions", spec.Name, ErrInvalid, spec.Partitions)
	}
	nodes := c.placeable(d)
	rf := int(spec.ReplicationFactor)
	if rf <= 0 {
		if spec.ReplicationFactor != -1 && spec.ReplicationFactor != 0 {
			return nil, fmt.Errorf("controller: create topic %q: %w: replication factor %d", spec.Name, ErrInvalid, rf)
		}
		rf = min(3, len(nodes))
	}
	parts, groups, err := placePartitions(d, nodes, c.cfg.GroupsPerNode, spec.Name, 0, spec.Partitions, rf)
	if err != nil {
		return nil, fmt.Errorf("controller: create topic %q: %w", spec.Name, err)
	}
	t := &Topic{Name: spec.Name, Partitions: parts, Internal: spec.Internal}
	if _, err := rand.Read(t.ID[:]); err != nil {
		return nil, err
	}
	t.ID[6] = t.ID[6]&0x0f | 0x40 // UUID version 4
	t.ID[8] = t.ID[8]&0x3f | 0x80
	if len(spec.Configs) > 0 {
		t.Configs = make(map[string]string, len(spec.Configs))
		for k, v := range spec.Configs {
			t.Configs[k] = v
		}
	}
	return &ctrlCommand{Op: opCreateTopic, Topic: t, NewGroups: groups}, nil
}

// voters returns the IDs of the controller group's voters, sorted: the nodes of the cluster.
func (c *RaftController) voters() []NodeID {
	var ids []NodeID
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				if id := parseServerID(s.ID); id >= 0 {
					ids = append(ids, id)
				}
			}
		}
	}
	if len(ids) == 0 {
		for _, p := range c.cfg.Peers {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// placeable returns the voters new partitions may be placed on: not those being removed.
func (c *RaftController) placeable(d *ctrlData) []NodeID {
	return slices.DeleteFunc(c.voters(), func(id NodeID) bool {
		n, ok := d.Nodes[id]
		return ok && n.Removing
	})
}

// apply commits cmd through the controller group.
func (c *RaftController) apply(cmd *ctrlCommand) (*ctrlResult, uint64, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, 0, err
	}
	f := c.raft.Apply(b, 10*time.Second)
	if err := f.Error(); err != nil {
		return nil, 0, raftErr("controller "+cmd.Op, err)
	}
	res, _ := f.Response().(*ctrlResult)
	if res == nil {
		res = &ctrlResult{}
	}
	return res, f.Index(), nil
}

// raftErr maps hashicorp/raft errors to this package's sentinels. A leader refuses what
// comes during a leadership transfer before appending it (ErrLeadershipTransferInProgress):
// the next leader may take it, as when this node does not lead.
func raftErr(op string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%s: %w", op, ErrNotLeader)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%s: %w: %v", op, ErrOutcomeUnknown, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// heartbeatLoop tells the leader, every second, that this node is alive and where it is.
func (c *RaftController) heartbeatLoop() {
	defer c.wg.Done()
	t := time.NewTicker(time.Second / 2)
	defer t.Stop()
	self := &Node{ID: c.cfg.NodeID, KafkaAddr: c.cfg.KafkaAddr, RaftAddr: c.cfg.selfAddr(), Alive: true}
	for {
		ctx, cancel := context.WithTimeout(c.stopCtx, 2*time.Second)
		req := &rpcRequest{Op: rpcHeartbeat, Node: self}
		if fn := c.diskFn.Load(); fn != nil {
			if d, ok := (*fn)(); ok {
				req.Disk = &d
			}
		}
		if fn := c.leadingFn.Load(); fn != nil {
			req.Leading, req.Running = (*fn)()
			if req.Running == nil {
				req.Running = []string{}
			}
		}
		leader, addr := c.Leader()
		var err error
		var resp *rpcResponse
		switch {
		case c.leaving.Load():
			// Shutting down: the controller stops counting this node alive, so no group
			// hands leadership back to it.
		case leader == c.cfg.NodeID:
			r := c.handle(ctx, req)
			resp, err = &r, r.err()
		case leader >= 0:
			if resp, err = c.rpc.call(ctx, addr, req); err == nil {
				err = resp.err()
			}
		}
		cancel()
		if err == nil && resp != nil { // nil: no leader known
			c.liveMu.Lock()
			c.diskView, c.diskViewAt = resp.Disks, time.Now()
			c.liveMu.Unlock()
		}
		if err != nil {
			c.logger.Debug("controller heartbeat", zap.Error(err))
		}
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

// handleHeartbeat records a node's heartbeat at the leader and registers it if its
// addresses are new.
func (c *RaftController) handleHeartbeat(n *Node, leading map[string]uint64, running []string, disk *DiskStatus) rpcResponse {
	if n == nil {
		return responseError(fmt.Errorf("controller heartbeat: %w", ErrInvalid))
	}
	now := time.Now()
	c.liveMu.Lock()
	c.lastSeen[n.ID] = now
	if running != nil {
		c.running[n.ID] = running
	}
	if disk != nil {
		c.disks[n.ID] = diskReport{at: now, disk: *disk}
	} else {
		delete(c.disks, n.ID) // a node that does not report its disk
	}
	c.liveMu.Unlock()
	d := c.fsm.view()
	var newer map[string]GroupLeader
	for g, term := range leading {
		if old, ok := d.GroupLeaders[g]; !ok || old.Term < term {
			if newer == nil {
				newer = map[string]GroupLeader{}
			}
			newer[g] = GroupLeader{Leader: n.ID, Term: term}
		}
	}
	if newer != nil {
		if _, _, err := c.apply(&ctrlCommand{Op: opGroupLeaders, Leaders: newer}); err != nil {
			return responseError(err)
		}
	}
	old, ok := d.Nodes[n.ID]
	if ok && old.KafkaAddr == n.KafkaAddr && old.RaftAddr == n.RaftAddr {
		return rpcResponse{}
	}
	// A node registers itself only while it is a voter: one that was removed stays out.
	if !ok && !slices.Contains(c.voters(), n.ID) {
		return responseError(fmt.Errorf("controller heartbeat from node %d: %w", n.ID, ErrUnknownNode))
	}
	node := *n
	node.Alive = true
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	res, index, err := c.apply(&ctrlCommand{Op: opNode, Node: &node})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return responseError(err)
	}
	c.logger.Info("node registered", zap.Int32("node", int32(n.ID)), zap.String("kafka", n.KafkaAddr), zap.String("raft", n.RaftAddr))
	return rpcResponse{Index: index}
}

// barrier makes sure that, as leader in term, this node has applied everything committed
// before its term, so that a change is prepared against the current state: it runs a Raft
// barrier once per term. writeMu is held.
func (c *RaftController) barrier(term uint64) error {
	if term == c.barrierTerm {
		return nil
	}
	if err := c.raft.Barrier(10 * time.Second).Error(); err != nil {
		return raftErr("controller barrier", err)
	}
	c.barrierTerm = term
	return nil
}

// leaderLoop, on the leader, sets the cluster ID once and keeps node liveness current.
func (c *RaftController) leaderLoop() {
	defer c.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if c.raft.State() != raft.Leader {
			continue
		}
		term := c.raft.CurrentTerm()
		// Liveness is judged against the state as of this term: a node marked dead
		// by the previous leader must be seen so.
		c.writeMu.Lock()
		err := c.barrier(term)
		c.writeMu.Unlock()
		if err != nil {
			continue
		}
		now := time.Now()
		c.liveMu.Lock()
		if term != c.leaderTerm {
			// A new leader gives every node counted alive a full timeout to reach it,
			// and waits for a fresh report of the groups each runs. A node counted dead
			// stays dead until it is heard from: counting it alive for a timeout would
			// put it back in the ISRs clients see.
			c.leaderTerm = term
			clear(c.running)
			clear(c.lastSeen)
			for id, n := range c.fsm.view().Nodes {
				if n.Alive {
					c.lastSeen[id] = now
				}
			}
		}
		d := c.fsm.view()
		changes := map[NodeID]bool{}
		for id, n := range d.Nodes {
			alive := id == c.cfg.NodeID || now.Sub(c.lastSeen[id]) < c.cfg.LivenessTimeout && !c.gone(id)
			if alive != n.Alive {
				changes[id] = alive
			}
		}
		c.liveMu.Unlock()
		if d.ClusterID == "" {
			var id [16]byte
			_, _ = rand.Read(id[:])
			if _, _, err := c.apply(&ctrlCommand{Op: opInit, ClusterID: raftClusterID(id)}); err != nil {
				c.logger.Debug("controller init", zap.Error(err))
			}
		}
		c.retireNodes()
		if len(changes) > 0 {
			c.writeMu.Lock()
			_, _, err := c.apply(&ctrlCommand{Op: opAlive, Alive: changes})
			c.writeMu.Unlock()
			if err != nil {
				c.logger.Debug("controller liveness", zap.Error(err))
			} else {
				for id, alive := range changes {
					c.logger.Info("node liveness changed", zap.Int32("node", int32(id)), zap.Bool("alive", alive))
				}
			}
		}
	}
}

// raftClusterID renders 16 random bytes as Kafka does: URL-safe base64 without padding.
func raftClusterID(id [16]byte) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// Close stops the controller; the Raft state stays on disk.
func (c *RaftController) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.stop)
		c.stopCancel()
		c.wg.Wait()
		if c.observer != nil {
			c.raft.DeregisterObserver(c.observer)
		}
		if c.peers != nil {
			c.peers.close()
		}
		if c.raft != nil {
			err = c.raft.Shutdown().Error()
		}
		c.trans.Close()
		c.rpc.close()
		if cerr := c.store.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// HandOff prepares a shutdown: this node stops its heartbeats, so the controller soon
// counts it dead and no data group hands leadership back to it, and, if it leads the
// controller group, hands that leadership to another member known alive
// (raft_handoff.go), waiting until ctx ends.
func (c *RaftController) HandOff(ctx context.Context) error {
	c.leaving.Store(true)
	if c.raft.State() != raft.Leader || len(c.voters()) < 2 {
		return nil
	}
	to, err := handOffLeadership(ctx, c.raft, handOffTargets(c.raft, c.cfg.NodeID, c.peers, nodeDead(c.State())))
	if err != nil {
		return fmt.Errorf("hand off the controller's leadership: %w", err)
	}
	c.logger.Info("handed off the controller's leadership", zap.Int32("to", int32(to)))
	return nil
}

// RemoveNode implements NodeRemover.
func (c *RaftController) RemoveNode(ctx context.Context, id NodeID) error {
	_, err := c.call(ctx, &rpcRequest{Op: rpcRemoveNode, Node: &Node{ID: id}})
	return err
}

// Rebalance implements Rebalancer.
func (c *RaftController) Rebalance(ctx context.Context) (map[string][]NodeID, error) {
	resp, err := c.call(ctx, &rpcRequest{Op: rpcRebalance})
	if err != nil {
		return nil, err
	}
	if resp.Moves == nil {
		return map[string][]NodeID{}, nil
	}
	return resp.Moves, nil
}

// standForLeader makes this node stand for the controller's leadership now, if the
// controller's leader is leader, whose process is gone (standForElection).
func (c *RaftController) standForLeader(leader NodeID, down func(NodeID) bool, stop <-chan struct{}) {
	if _, id := c.raft.LeaderWithID(); id == "" || parseServerID(id) != leader {
		return
	}
	standForElection(c.raft, c.store, c.cfg.NodeID, leader, down, c.trans.standNow, c.logger, stop, c.stop)
}
