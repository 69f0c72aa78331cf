package replication

import (
	"context"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// A node learns within milliseconds that another node's process is gone, instead of
// after an election timeout: it keeps one idle connection open to every other node's
// Raft port (pingService). When a process dies its kernel closes that connection; the
// watcher dials again at once, and a refused dial means nothing listens there any more:
// the node is down. A process that is alive but stalled (SIGSTOP, a long pause) still
// has its connections and accepts new ones, so only Raft's timeouts notice it; so does a
// machine that vanished without closing its connections (the dial then times out, after
// the election timeout has done its work).
//
// What a down node costs is then bounded by how fast the others react: the groups it led,
// and the controller group if it led that, stand for election at once (standForElection),
// and clients are not sent to it as a leader (RaftReplicator.Leadership).

// pingService is the mux service whose connections only tell that their ends are alive.
const pingService = "_ping"

// pingRetryMax bounds the pause between dials to a node that is down.
const pingRetryMax = time.Second

// servePing holds a ping connection open until the other end closes it (or the mux
// closes it as this node stops), and echoes what it reads: a probe (peerWatch.probe)
// asking whether this process is there.
func servePing(conn net.Conn) {
	defer conn.Close()
	var b [64]byte
	for {
		n, err := conn.Read(b[:])
		if err != nil {
			return
		}
		if _, err := conn.Write(b[:n]); err != nil {
			return
		}
	}
}

// peerWatch watches the other nodes' Raft ports.
type peerWatch struct {
	logger  *zap.Logger
	timeout time.Duration // per dial
	onDown  func(NodeID)  // called (on the watcher's goroutine) when a node that was up goes down
	onFlip  func()        // called after any node goes down or comes back
	// dial opens a ping connection to addr (dialContext; tests replace it).
	dial func(ctx context.Context, addr string) (net.Conn, error)

	mu      sync.Mutex
	watched map[NodeID]*watchedPeer
	closed  bool
	wg      sync.WaitGroup
}

type watchedPeer struct {
	addr   string
	cancel context.CancelFunc
	// Guarded by peerWatch.mu: the state, the open ping connection while up, and when
	// its other end was first seen closing: by connClosing before its reader noticed, or
	// by the reader, until a new dial succeeds.
	state     peerState
	downSince time.Time // while state is peerDown
	conn      net.Conn
	closing   time.Time
	// Probes on conn: bytes sent and echoed, since when the oldest unechoed one waits,
	// and a channel closed (and replaced) whenever an echo comes or conn changes.
	sent, echoed uint64
	pending      time.Time
	event        chan struct{}
}

// notify wakes the probes waiting on p; the caller holds peerWatch.mu.
func (p *watchedPeer) notify() {
	close(p.event)
	p.event = make(chan struct{})
}

type peerState uint8

const (
	peerUnknown peerState = iota // never dialed yet
	peerUp
	peerDown
)

func newPeerWatch(logger *zap.Logger, timeout time.Duration, onDown func(NodeID), onFlip func()) *peerWatch {
	w := &peerWatch{
		logger:  logger,
		timeout: timeout,
		onDown:  onDown,
		onFlip:  onFlip,
		watched: map[NodeID]*watchedPeer{},
	}
	w.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		return dialContext(ctx, addr, pingService, w.timeout)
	}
	return w
}

// sync watches exactly the nodes of peers (ID -> Raft address), starting and stopping
// watchers as nodes come, go or change address.
func (w *peerWatch) sync(peers map[NodeID]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	for id, p := range w.watched {
		if addr, ok := peers[id]; !ok || addr != p.addr {
			p.cancel()
			delete(w.watched, id)
		}
	}
	for id, addr := range peers {
		if _, ok := w.watched[id]; ok || addr == "" {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		w.watched[id] = &watchedPeer{addr: addr, cancel: cancel, event: make(chan struct{})}
		w.wg.Add(1)
		go w.watch(ctx, id, addr)
	}
}

// isDown says whether node's last dial failed, or its ping connection is closing or
// broke and no new one is open yet, and since when. The kernel closes a dead process's
// connections at once, and a client that saw its own connection reset may ask this node
// about it within a millisecond: before the watcher has read the end of the ping
// connection (so the socket's own state is looked at too), or while it dials again.
func (w *peerWatch) isDown(node NodeID) (bool, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.isDownLocked(node)
}

func (w *peerWatch) isDownLocked(node NodeID) (bool, time.Time) {
	p, ok := w.watched[node]
	if !ok {
		return false, time.Time{}
	}
	if p.state == peerDown {
		return true, p.downSince
	}
	if p.closing.IsZero() && p.conn != nil && connClosing(p.conn) {
		p.closing = time.Now()
	}
	return !p.closing.IsZero(), p.closing
}

// probeWait bounds how long a probe waits for a node's echo. A process killed a moment
// ago may not have had all its connections closed yet (its exit closes them one by one,
// and a loaded machine can take milliseconds over it); a live one echoes within a round
// trip. A node that does not echo in time is stalled (paused, overloaded, cut off): Raft's
// timeouts deal with it, and later probes return at once until it echoes again.
const probeWait = 500 * time.Millisecond

// probe says whether node's process is gone, asking it now rather than trusting what was
// last seen: it sends a byte on the ping connection, which a live process echoes, and
// waits (up to probeWait) for the echo or for the connection to break. A node that is
// not watched, not reached yet, or stalled counts as there.
func (w *peerWatch) probe(ctx context.Context, node NodeID) bool {
	w.mu.Lock()
	p, ok := w.watched[node]
	if !ok {
		w.mu.Unlock()
		return false
	}
	if down, _ := w.isDownLocked(node); down {
		w.mu.Unlock()
		return true
	}
	conn := p.conn
	if conn == nil || !p.pending.IsZero() && time.Since(p.pending) > probeWait {
		w.mu.Unlock()
		return false
	}
	if p.sent == p.echoed {
		p.pending = time.Now()
	}
	p.sent++
	want := p.sent
	w.mu.Unlock()

	if _, err := conn.Write([]byte{0}); err != nil {
		// The connection broke or closed; the watcher's reader tells which.
		w.logger.Debug("ping probe not sent", zap.Int32("node", int32(node)), zap.Error(err))
	}
	timer := time.NewTimer(probeWait)
	defer timer.Stop()
	for {
		w.mu.Lock()
		if w.watched[node] != p {
			w.mu.Unlock()
			return false // no longer watched
		}
		down, _ := w.isDownLocked(node)
		if down || p.conn != conn || p.echoed >= want {
			w.mu.Unlock()
			return down
		}
		event := p.event
		w.mu.Unlock()
		select {
		case <-event:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// echoed records n bytes echoed on node's ping connection conn.
func (w *peerWatch) echoed(node NodeID, conn net.Conn, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.watched[node]
	if !ok || p.conn != conn {
		return
	}
	p.echoed += uint64(n)
	if p.echoed >= p.sent {
		p.echoed, p.pending = p.sent, time.Time{}
	}
	p.notify()
}

func (w *peerWatch) close() {
	w.mu.Lock()
	w.closed = true
	for id, p := range w.watched {
		p.cancel()
		delete(w.watched, id)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// watch keeps a ping connection open to node, redialing as soon as one breaks.
func (w *peerWatch) watch(ctx context.Context, node NodeID, addr string) {
	defer w.wg.Done()
	var pause time.Duration
	for ctx.Err() == nil {
		conn, err := w.dial(ctx, addr)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.set(ctx, node, false, err)
			pause = min(max(2*pause, 50*time.Millisecond), pingRetryMax)
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			continue
		}
		pause = 0
		w.set(ctx, node, true, nil)
		w.setConn(node, conn)
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		var b [64]byte
		for {
			n, err := conn.Read(b[:])
			if err != nil {
				break
			}
			w.echoed(node, conn, n)
		}
		stop()
		w.setConn(node, nil)
		conn.Close()
	}
}

// setConn records node's open ping connection, or (nil) that it broke: the node counts
// as down from then until a new connection opens, as the dial that tells is not made
// at once.
func (w *peerWatch) setConn(node NodeID, conn net.Conn) {
	w.mu.Lock()
	p, ok := w.watched[node]
	if !ok {
		w.mu.Unlock()
		return
	}
	p.conn = conn
	p.sent, p.echoed, p.pending = 0, 0, time.Time{}
	p.notify()
	back := false
	switch {
	case conn != nil:
		back = !p.closing.IsZero()
		p.closing = time.Time{}
	case p.closing.IsZero():
		p.closing = time.Now()
	}
	w.mu.Unlock()
	if back && w.onFlip != nil {
		w.onFlip()
	}
}

// set records whether node is up. A node that goes down after it was up (not one never
// reached yet) is reported to onDown.
func (w *peerWatch) set(ctx context.Context, node NodeID, up bool, err error) {
	w.mu.Lock()
	p, ok := w.watched[node]
	if ctx.Err() != nil || !ok {
		w.mu.Unlock()
		return
	}
	prev := p.state
	next := peerDown
	if up {
		next = peerUp
	}
	if prev == next {
		w.mu.Unlock()
		return
	}
	p.state = next
	p.notify()
	switch {
	case up:
	case !p.closing.IsZero():
		p.downSince = p.closing // seen going down before its reader noticed
	default:
		p.downSince = time.Now()
	}
	w.mu.Unlock()
	switch {
	case up && prev == peerDown:
		w.logger.Info("node reachable again", zap.Int32("node", int32(node)))
	case !up && prev == peerUp:
		w.logger.Info("node down: its Raft port takes no connection", zap.Int32("node", int32(node)), zap.Error(err))
		if w.onDown != nil {
			w.onDown(node)
		}
	case !up:
		w.logger.Debug("node not reachable yet", zap.Int32("node", int32(node)), zap.Error(err))
	}
	if (up && prev == peerDown || !up) && w.onFlip != nil {
		w.onFlip()
	}
}

// standAfter is how long each voter waits after the one before it, in node ID order,
// before it stands for election when the leader's process is gone: the first stands at
// once, and the next only if no leader emerged meanwhile (the first's log may be behind
// and its vote refused).
const standAfter = 250 * time.Millisecond

// standForElection makes self, a member of r's group, stand for election now that the
// process of leader, the group's leader, is gone (down says which nodes are down),
// instead of waiting for an election timeout: standNow hands raft a TimeoutNow. The live
// voters take turns (standAfter); a voter gives up once a leader other than the dead one
// is known, when too few voters are live to elect one, or once it voted in its current
// term for a member other than the dead leader (a voter before it, whose election is then
// under way). It returns early when stop or done closes.
func standForElection(r *raft.Raft, stable raft.StableStore, self, leader NodeID, down func(NodeID) bool,
	standNow func(raft.ServerID, raft.ServerAddress) bool, logger *zap.Logger, stop, done <-chan struct{}) {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	var voters int
	var live []NodeID
	var leaderAddr raft.ServerAddress
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		id := parseServerID(s.ID)
		if id == leader {
			leaderAddr = s.Address
			continue
		}
		if id == self || !down(id) {
			live = append(live, id)
		}
	}
	rank := slices.Index(slices.Sorted(slices.Values(live)), self)
	if rank < 0 || len(live) <= voters/2 {
		return
	}
	timer := time.NewTimer(time.Duration(rank) * standAfter)
	defer timer.Stop()
	select {
	case <-stop:
		return
	case <-done:
		return
	case <-timer.C:
	}
	if _, id := r.LeaderWithID(); id != "" && parseServerID(id) != leader {
		return
	}
	if r.State() != raft.Follower || !down(leader) || votedOtherThan(r, stable, leaderAddr) {
		return
	}
	logger.Info("standing for election: the leader's process is gone",
		zap.Int32("leader", int32(leader)), zap.Uint64("term", r.CurrentTerm()))
	standNow(serverID(leader), leaderAddr)
}

// votedOtherThan says whether r's member voted in its current term for a candidate other
// than the one at addr, from the vote raft keeps in its stable store (the term, and the
// candidate's address).
func votedOtherThan(r *raft.Raft, stable raft.StableStore, addr raft.ServerAddress) bool {
	term, err := stable.GetUint64([]byte("LastVoteTerm"))
	if err != nil || term != r.CurrentTerm() {
		return false
	}
	cand, err := stable.Get([]byte("LastVoteCand"))
	return err == nil && string(cand) != string(addr)
}

// handTimeoutNow hands the raft reading consume a TimeoutNow as if from leader, so that it
// stands for election at once, as the target of a leadership transfer does: its vote
// requests are granted by members that still know a leader. It gives up after timeout,
// or when stop closes, if raft does not take it.
func handTimeoutNow(consume chan<- raft.RPC, stop <-chan struct{}, timeout time.Duration, leader raft.ServerID, addr raft.ServerAddress) bool {
	rpc := raft.RPC{
		Command: &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
			ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(leader), Addr: []byte(addr),
		}},
		RespChan: make(chan raft.RPCResponse, 1),
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case consume <- rpc:
		return true
	case <-stop:
	case <-timer.C:
	}
	return false
}

// standingTransport is the controller group's NetworkTransport, through which this node
// can also hand its own raft a TimeoutNow (standNow), as a data group's transport can.
type standingTransport struct {
	*raft.NetworkTransport
	consume   chan raft.RPC
	stop      chan struct{}
	closeOnce sync.Once
}

func newStandingTransport(t *raft.NetworkTransport) *standingTransport {
	s := &standingTransport{NetworkTransport: t, consume: make(chan raft.RPC), stop: make(chan struct{})}
	go s.forward()
	return s
}

// forward passes the RPCs the network brings on to raft.
func (s *standingTransport) forward() {
	in := s.NetworkTransport.Consumer()
	for {
		select {
		case <-s.stop:
			return
		case rpc := <-in:
			select {
			case s.consume <- rpc:
			case <-s.stop:
				return
			}
		}
	}
}

func (s *standingTransport) Consumer() <-chan raft.RPC { return s.consume }

func (s *standingTransport) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	return s.NetworkTransport.Close()
}

func (s *standingTransport) standNow(leader raft.ServerID, addr raft.ServerAddress) bool {
	return handTimeoutNow(s.consume, s.stop, time.Second, leader, addr)
}
