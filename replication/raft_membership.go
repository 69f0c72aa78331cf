package replication

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Membership changes.
//
// A node joins a formed cluster with ClusterConfig.Join: it asks a node (which forwards
// to the controller leader) to make it a voter of the controller group, and from then on
// new topics may be placed on it.
//
// A node leaves when an operator removes it (RemoveNode). The controller leader picks,
// for every data group the node is a member of, a node to take its place (one not in the
// group, with the fewest groups), and records the moves in one command: the group's
// Members become the new ones, the new node is Joining, the old one Removing, and the
// group's Generation grows. Partitions list Members and Removing as replicas meanwhile,
// so the node being removed keeps its copy and every new one opens its partitions. Then,
// per group:
//
//  1. Its leader adds each Joining node as a non-voter. The node starts the group
//     without bootstrapping it (Generation > 0), receives a snapshot and copies the
//     partitions' data, or replays the log.
//  2. The new node reports itself caught up once it has applied everything the leader
//     had committed when the move began (caught_up); the controller drops it from
//     Joining.
//  3. With nobody Joining, the leader makes the new members voters, then removes the old
//     ones from the Raft configuration. A leader that is an old member hands leadership
//     to a new one first, and the next leader removes it.
//  4. A leader whose configuration is exactly Members reports the group moved
//     (group_moved): Removing is cleared and the partitions' replicas are Members. The
//     removed node closes the group and deletes its Raft state and its partitions.
//
// Once no group has the node, the controller leader removes it from the controller
// group and forgets it (forget_node). Every step is idempotent and retried from the
// state, so a leader change or a restart in the middle only delays it. A group keeps its
// replication factor of copies throughout: the old member votes until the new one has
// caught up.

// applyMembership applies remove_node, move_groups, caught_up, group_moved and
// forget_node.
func applyMembership(d *ctrlData, cmd *ctrlCommand) (*ctrlData, *ctrlResult) {
	next := *d
	switch cmd.Op {
	case opRemoveNode:
		old, ok := d.Nodes[cmd.NodeID]
		if !ok {
			return nil, &ctrlResult{Err: fmt.Errorf("controller: remove node %d: %w", cmd.NodeID, ErrUnknownNode)}
		}
		for name, members := range cmd.Moves {
			g, ok := d.Groups[name]
			if !ok || !slices.Contains(g.Members, cmd.NodeID) || slices.Contains(members, cmd.NodeID) || len(members) != len(g.Members) {
				return nil, &ctrlResult{Err: fmt.Errorf("controller: remove node %d: %w: move of group %q", cmd.NodeID, ErrInvalid, name)}
			}
		}
		n := *old
		n.Removing = true
		next.Nodes = maps.Clone(d.Nodes)
		next.Nodes[n.ID] = &n
		applyMoves(d, &next, cmd.Moves)
	case opMoveGroups:
		for name, members := range cmd.Moves {
			g, ok := d.Groups[name]
			if !ok || len(g.Joining) > 0 || len(g.Removing) > 0 || len(members) != len(g.Members) ||
				len(union(nil, members)) != len(members) || slices.Equal(members, g.Members) {
				return nil, &ctrlResult{Err: fmt.Errorf("controller: move groups: %w: move of group %q", ErrInvalid, name)}
			}
			for _, m := range members {
				if n, ok := d.Nodes[m]; !ok || n.Removing {
					return nil, &ctrlResult{Err: fmt.Errorf("controller: move groups: %w: group %q to node %d", ErrInvalid, name, m)}
				}
			}
		}
		if len(cmd.Moves) == 0 {
			return nil, &ctrlResult{}
		}
		applyMoves(d, &next, cmd.Moves)
	case opCaughtUp:
		g, ok := d.Groups[cmd.Group]
		if !ok || g.Generation != cmd.Generation || !slices.Contains(g.Joining, cmd.NodeID) {
			return nil, &ctrlResult{}
		}
		ng := *g
		ng.Joining = without(g.Joining, cmd.NodeID)
		next.Groups = maps.Clone(d.Groups)
		next.Groups[ng.Name] = &ng
	case opGroupMoved:
		g, ok := d.Groups[cmd.Group]
		if !ok || g.Generation != cmd.Generation || len(g.Removing) == 0 {
			return nil, &ctrlResult{}
		}
		if len(g.Joining) > 0 {
			return nil, &ctrlResult{Err: fmt.Errorf("controller: group %q moved: %w: members still joining", g.Name, ErrInvalid)}
		}
		ng := *g
		ng.Removing = nil
		next.Groups = maps.Clone(d.Groups)
		next.Groups[ng.Name] = &ng
		next.Topics = withReplicas(d.Topics, next.Groups, []string{ng.Name})
	case opForgetNode:
		n, ok := d.Nodes[cmd.NodeID]
		if !ok || !n.Removing || nodeInGroups(d, cmd.NodeID) {
			return nil, &ctrlResult{}
		}
		next.Nodes = maps.Clone(d.Nodes)
		delete(next.Nodes, cmd.NodeID)
	}
	return &next, &ctrlResult{}
}

// applyMoves sets next's groups to their new members (moves) and their partitions'
// replicas; d is not modified.
func applyMoves(d, next *ctrlData, moves map[string][]NodeID) {
	next.Groups = maps.Clone(d.Groups)
	for name, members := range moves {
		g := *d.Groups[name]
		// Still joining: who was and stays a member, and every new member.
		g.Joining = union(without(g.Joining, without(g.Joining, members...)...), without(members, g.Members...))
		g.Removing = without(union(g.Removing, g.Members), members...)
		g.Members = slices.Clone(members)
		g.Generation++
		next.Groups[name] = &g
	}
	next.Topics = withReplicas(d.Topics, next.Groups, slices.Collect(maps.Keys(moves)))
}

// groupReplicas are the nodes holding a group's partitions: its members, then the nodes
// it is moving off.
func groupReplicas(g *DataGroup) []NodeID {
	return union(g.Members, g.Removing)
}

// withReplicas returns topics with the replicas of the partitions of the named groups
// set from groups; topics not concerned are shared.
func withReplicas(topics map[string]*Topic, groups map[string]*DataGroup, names []string) map[string]*Topic {
	out := maps.Clone(topics)
	for name, t := range topics {
		var parts []PartitionAssignment
		for i, p := range t.Partitions {
			if !slices.Contains(names, p.Group) {
				continue
			}
			if parts == nil {
				parts = slices.Clone(t.Partitions)
			}
			parts[i].Replicas = groupReplicas(groups[p.Group])
		}
		if parts != nil {
			nt := *t
			nt.Partitions = parts
			out[name] = &nt
		}
	}
	return out
}

// nodeInGroups says whether any group has id as a member, joining or removing.
func nodeInGroups(d *ctrlData, id NodeID) bool {
	for _, g := range d.Groups {
		if slices.Contains(g.Members, id) || slices.Contains(g.Removing, id) {
			return true
		}
	}
	return false
}

// union returns a followed by the elements of b not in a.
func union(a, b []NodeID) []NodeID {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// without returns a without the elements of drop.
func without(a []NodeID, drop ...NodeID) []NodeID {
	var out []NodeID
	for _, x := range a {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

// planMoves picks, for every group id is a member of, the node to take its place: a
// node of the cluster not being removed and not in the group, alive if possible, with the
// fewest groups. The new node takes id's place in the members' order.
func planMoves(d *ctrlData, voters []NodeID, id NodeID) (map[string][]NodeID, error) {
	load := map[NodeID]int{}
	var candidates []NodeID
	for _, v := range voters {
		if n, ok := d.Nodes[v]; ok && !n.Removing && v != id {
			candidates = append(candidates, v)
			load[v] = 0
		}
	}
	for _, g := range d.Groups {
		for _, m := range union(g.Members, g.Joining) {
			if _, ok := load[m]; ok {
				load[m]++
			}
		}
	}
	names := slices.Sorted(maps.Keys(d.Groups))
	moves := map[string][]NodeID{}
	for _, name := range names {
		g := d.Groups[name]
		i := slices.Index(g.Members, id)
		if i < 0 {
			continue
		}
		best := NodeID(-1)
		for _, c := range candidates {
			if slices.Contains(g.Members, c) {
				continue
			}
			if best < 0 || better(d, load, c, best) {
				best = c
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("group %s (members %v) has no node to move to: %w", name, g.Members, ErrNotEnoughNodes)
		}
		members := slices.Clone(g.Members)
		members[i] = best
		moves[name] = members
		load[best]++
	}
	return moves, nil
}

// planRebalance moves group memberships, one at a time, from the node in the most groups
// to the node in the fewest, until the counts differ by at most one. Only nodes that may
// take partitions count (nodes), and only live ones receive; groups already moving stay as
// they are, and a group moves at most once per plan. The node moved onto takes the other's place in the members'
// order, so also its turn as preferred leader; among the groups that could move, one where
// that evens out preferred leadership is taken first.
func planRebalance(d *ctrlData, nodes []NodeID) map[string][]NodeID {
	count := map[NodeID]int{}
	lead := map[NodeID]int{}
	for _, id := range nodes {
		if n, ok := d.Nodes[id]; ok && !n.Removing {
			count[id] = 0
		}
	}
	if len(count) < 2 {
		return map[string][]NodeID{}
	}
	for _, g := range d.Groups {
		for i, m := range union(g.Members, g.Joining) {
			if _, ok := count[m]; ok {
				count[m]++
				if i == 0 {
					lead[m]++
				}
			}
		}
	}
	ids := slices.Sorted(maps.Keys(count))
	names := slices.Sorted(maps.Keys(d.Groups))
	moves := map[string][]NodeID{}
	for {
		hi, lo := ids[0], NodeID(-1)
		for _, id := range ids {
			if count[id] > count[hi] {
				hi = id
			}
			// Only a live node can copy a group.
			if d.Nodes[id].Alive && (lo < 0 || count[id] < count[lo]) {
				lo = id
			}
		}
		if lo < 0 || count[hi]-count[lo] <= 1 {
			return moves
		}
		best, bestScore := "", -1
		for _, name := range names {
			g := d.Groups[name]
			_, moved := moves[name]
			if moved || len(g.Joining) > 0 || len(g.Removing) > 0 || !slices.Contains(g.Members, hi) || slices.Contains(g.Members, lo) {
				continue
			}
			// Taking hi's place as preferred leader is good when hi leads more groups.
			score := 1
			if (g.Members[0] == hi) != (lead[hi] > lead[lo]) {
				score = 0
			}
			if score > bestScore {
				best, bestScore = name, score
			}
		}
		if best == "" {
			return moves
		}
		g := d.Groups[best]
		members := slices.Clone(g.Members)
		i := slices.Index(members, hi)
		members[i] = lo
		moves[best] = members
		count[hi]--
		count[lo]++
		if i == 0 {
			lead[hi]--
			lead[lo]++
		}
	}
}

// better says whether a is a better node than b to move a group to.
func better(d *ctrlData, load map[NodeID]int, a, b NodeID) bool {
	if aa, ab := d.Nodes[a].Alive, d.Nodes[b].Alive; aa != ab {
		return aa
	}
	if load[a] != load[b] {
		return load[a] < load[b]
	}
	return a < b
}

// handleJoin, on the controller leader, registers a joining node and makes it a voter of
// the controller group. Joining again is harmless.
func (c *RaftController) handleJoin(d *ctrlData, n *Node) rpcResponse {
	if n == nil || n.ID < 0 || n.RaftAddr == "" {
		return responseError(fmt.Errorf("controller: join: %w", ErrInvalid))
	}
	if old, ok := d.Nodes[n.ID]; ok && old.Removing {
		return responseError(fmt.Errorf("controller: join of node %d: %w: it is being removed", n.ID, ErrInvalid))
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return responseError(raftErr("controller join", err))
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == serverID(n.ID) && string(s.Address) != n.RaftAddr {
			return responseError(fmt.Errorf("controller: join of node %d at %s: %w: the node is a member at %s", n.ID, n.RaftAddr, ErrInvalid, s.Address))
		}
		if s.ID != serverID(n.ID) && string(s.Address) == n.RaftAddr {
			return responseError(fmt.Errorf("controller: join of node %d at %s: %w: node %s has that address", n.ID, n.RaftAddr, ErrInvalid, s.ID))
		}
	}
	node := *n
	node.Alive = true
	if res, _, err := c.apply(&ctrlCommand{Op: opNode, Node: &node}); err != nil || res.Err != nil {
		if err == nil {
			err = res.Err
		}
		return responseError(err)
	}
	c.liveMu.Lock()
	c.lastSeen[n.ID] = time.Now()
	c.liveMu.Unlock()
	af := c.raft.AddVoter(serverID(n.ID), raft.ServerAddress(n.RaftAddr), 0, 10*time.Second)
	if err := af.Error(); err != nil {
		return responseError(raftErr("controller add voter", err))
	}
	c.logger.Info("node joined the cluster", zap.Int32("node", int32(n.ID)), zap.String("raft", n.RaftAddr), zap.String("kafka", n.KafkaAddr))
	return rpcResponse{Index: af.Index()}
}

// prepareRemoveNode plans the moves off node id.
func (c *RaftController) prepareRemoveNode(d *ctrlData, id NodeID) (*ctrlCommand, error) {
	if _, ok := d.Nodes[id]; !ok {
		return nil, fmt.Errorf("controller: remove node %d: %w", id, ErrUnknownNode)
	}
	moves, err := planMoves(d, c.voters(), id)
	if err != nil {
		return nil, fmt.Errorf("controller: remove node %d: %w", id, err)
	}
	return &ctrlCommand{Op: opRemoveNode, NodeID: id, Moves: moves}, nil
}

// retireNodes, on the leader, drops the nodes being removed that no group has any more:
// out of the controller group, then out of the metadata. A live node goes once it says it
// runs no group: it has then seen the last move and deleted its copy, which it could miss
// once out of the controller group.
func (c *RaftController) retireNodes() {
	d := c.fsm.view()
	for id, n := range d.Nodes {
		if !n.Removing || nodeInGroups(d, id) {
			continue
		}
		c.liveMu.Lock()
		running, reported := c.running[id]
		c.liveMu.Unlock()
		if n.Alive && (!reported || len(running) > 0) {
			continue
		}
		if slices.Contains(c.voters(), id) {
			if id == c.cfg.NodeID {
				// As in a data group, a leader does not remove itself: the next one
				// removes and forgets this node.
				c.logger.Info("handing controller leadership over before leaving the cluster")
				if err := waitFuture(c.raft.LeadershipTransfer(), c.stop); err != nil {
					c.logger.Info("controller leadership transfer failed", zap.Error(err))
				}
				return
			}
			if err := waitFuture(c.raft.RemoveServer(serverID(id), 0, 10*time.Second), c.stop); err != nil {
				c.logger.Info("removing a node from the controller group failed", zap.Int32("node", int32(id)), zap.Error(err))
				return
			}
			c.logger.Info("node removed from the controller group", zap.Int32("node", int32(id)))
		}
		c.writeMu.Lock()
		_, _, err := c.apply(&ctrlCommand{Op: opForgetNode, NodeID: id})
		c.writeMu.Unlock()
		if err != nil {
			c.logger.Info("forgetting a removed node failed", zap.Int32("node", int32(id)), zap.Error(err))
			return
		}
		c.logger.Info("node removed from the cluster", zap.Int32("node", int32(id)))
	}
}

// joinLoop asks the nodes in cfg.Join, in turn, to add this node to the cluster, until
// one of them answers that it is done, or that the cluster refuses it.
func (c *RaftController) joinLoop() {
	defer c.wg.Done()
	self := &Node{ID: c.cfg.NodeID, KafkaAddr: c.cfg.KafkaAddr, RaftAddr: c.cfg.selfAddr()}
	backoff := 100 * time.Millisecond
	for {
		for _, addr := range c.cfg.Join {
			refused, err := c.ask(addr, &rpcRequest{Op: rpcJoin, Node: self}, 15*time.Second)
			if err == nil {
				c.logger.Info("joined the cluster", zap.String("through", addr))
				return
			}
			if refused {
				// The ID or the address is another node's: asking again changes nothing.
				c.refuse(fmt.Errorf("join the cluster through %s: %w", addr, err))
				return
			}
			c.logger.Info("joining the cluster", zap.String("through", addr), zap.Error(err))
			select {
			case <-c.stop:
				return
			default:
			}
		}
		select {
		case <-c.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// memberCheckEvery is how often a restarted node that knows no controller leader asks
// whether it is still a member.
const memberCheckEvery = 2 * time.Second

// memberAskTimeout bounds one membership question to one node (a variable for tests).
var memberAskTimeout = 5 * time.Second

// memberCheckLoop runs on a node that started from Raft state it already had. Whenever
// it knows no controller leader, it asks the nodes of its last known configuration
// whether it is still a member. A node removed while it was down hears of it from no one
// (the leader no longer replicates to it, or stops once it has sent the removal) and
// would wait for ever; told by the controller leader that it is not a member, it closes
// Refused, and WaitReady returns the reason. An answer from no leader, or none at all,
// proves nothing: it asks again.
func (c *RaftController) memberCheckLoop() {
	defer c.wg.Done()
	self := &Node{ID: c.cfg.NodeID, KafkaAddr: c.cfg.KafkaAddr, RaftAddr: c.cfg.selfAddr()}
	t := time.NewTicker(memberCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if leader, _ := c.Leader(); leader >= 0 {
			continue
		}
		for _, addr := range c.peerAddrs() {
			refused, err := c.ask(addr, &rpcRequest{Op: rpcMember, Node: self}, memberAskTimeout)
			if err == nil {
				break // a member: the leader will be heard from
			}
			if refused {
				c.refuse(fmt.Errorf("node %d was removed from the cluster (its data groups are on other nodes; asked through %s): "+
					"to add it again, start it with an empty data directory and --join: %w", c.cfg.NodeID, addr, err))
				return
			}
			c.logger.Debug("asking whether this node is a member", zap.String("through", addr), zap.Error(err))
		}
	}
}

// ask sends req to the node at addr, which forwards it to the controller leader, and
// returns the answer's error; refused says that error is the controller's final refusal
// of this node (ErrInvalid), not a failure to reach a leader. Close ends a call in flight.
func (c *RaftController) ask(addr string, req *rpcRequest, timeout time.Duration) (refused bool, err error) {
	ctx, cancel := context.WithTimeout(c.stopCtx, timeout)
	defer cancel()
	resp, err := c.rpc.call(ctx, addr, req)
	if err == nil {
		err = resp.err()
	}
	var re *rpcError
	return errors.As(err, &re) && errors.Is(err, ErrInvalid), err
}

// refuse records why the cluster refused this node for good and closes Refused: WaitReady
// returns err.
func (c *RaftController) refuse(err error) {
	c.joinErr = err
	close(c.joinFailed)
	c.logger.Error("the cluster refused this node", zap.Error(err))
}

// Refused is closed when the cluster refused this node for good: a join refused (its ID
// or address is another node's), or this node found removed from the cluster. RefusedErr
// then says why.
func (c *RaftController) Refused() <-chan struct{} { return c.joinFailed }

// RefusedErr is why the cluster refused this node, once Refused is closed.
func (c *RaftController) RefusedErr() error {
	select {
	case <-c.joinFailed:
		return c.joinErr
	default:
		return nil
	}
}

// peerAddrs lists the Raft addresses of the other nodes this node knows: those of the
// controller's Raft configuration, then its configured peers and join addresses.
func (c *RaftController) peerAddrs() []string {
	self := c.cfg.selfAddr()
	var addrs []string
	add := func(a string) {
		if a != "" && a != self && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			add(string(s.Address))
		}
	}
	for _, p := range c.cfg.Peers {
		add(p.RaftAddr)
	}
	for _, a := range c.cfg.Join {
		add(a)
	}
	return addrs
}

// serveCtl answers the controller RPC: a join or a membership question that reaches a
// follower is forwarded to the leader, since the asking node does not know which node
// leads. An election request is for a data group's leader, and answered here.
func (c *RaftController) serveCtl(ctx context.Context, req *rpcRequest) rpcResponse {
	if req.Op == rpcElectPreferred { // for the data group's leader, whichever node that is
		fn := c.electFn.Load()
		if fn == nil {
			return responseError(fmt.Errorf("group %s: node %d runs no data groups: %w", req.Group, c.cfg.NodeID, ErrNotLeader))
		}
		return responseError((*fn)(ctx, req.Group))
	}
	if (req.Op == rpcJoin || req.Op == rpcMember) && c.raft.State() != raft.Leader {
		resp, err := c.call(ctx, req)
		if err != nil {
			return responseError(err)
		}
		return *resp
	}
	return c.handle(ctx, req)
}

// moveDone, for a data group, tells the controller that node caught up with generation
// gen of group (caughtUp) or that the group's Raft configuration is its members (moved).
func (c *RaftController) moveDone(ctx context.Context, op, group string, gen int, node NodeID) error {
	_, err := c.call(ctx, &rpcRequest{Op: op, Group: group, Count: int64(gen), Node: &Node{ID: node}})
	return err
}

// reconcileMembers, on the group's leader, moves its Raft configuration toward the
// controller's members (steps 1, 3 and 4 of a move).
func (d *dataGroup) reconcileMembers() {
	dg := d.spec.Load()
	if dg.Generation == 0 || !d.ready() || !d.viewReady() {
		return
	}
	conf := d.configuration()
	if conf == nil {
		return
	}
	for _, m := range dg.Members {
		if _, ok := conf[m]; !ok {
			d.logger.Info("adding a member as non-voter", zap.Int32("node", int32(m)), zap.Int("generation", dg.Generation))
			if err := waitFuture(d.raft.AddNonvoter(serverID(m), raft.ServerAddress(d.hooks.addr(m)), 0, 5*time.Second), d.stop); err != nil {
				d.logger.Info("adding a member failed", zap.Int32("node", int32(m)), zap.Error(err))
			}
			return
		}
	}
	if len(dg.Joining) > 0 {
		return
	}
	for _, m := range dg.Members {
		if conf[m] != raft.Voter {
			d.logger.Info("making a caught-up member a voter", zap.Int32("node", int32(m)))
			if err := waitFuture(d.raft.AddVoter(serverID(m), raft.ServerAddress(d.hooks.addr(m)), 0, 5*time.Second), d.stop); err != nil {
				d.logger.Info("making a member a voter failed", zap.Int32("node", int32(m)), zap.Error(err))
			}
			return
		}
	}
	leaving := false
	for _, id := range slices.Sorted(maps.Keys(conf)) {
		if slices.Contains(dg.Members, id) {
			continue
		}
		if id == d.self {
			leaving = true // last: the others go first
			continue
		}
		d.logger.Info("removing a former member", zap.Int32("node", int32(id)))
		if err := waitFuture(d.raft.RemoveServer(serverID(id), 0, 5*time.Second), d.stop); err != nil {
			d.logger.Info("removing a former member failed", zap.Int32("node", int32(id)), zap.Error(err))
		}
		return
	}
	if leaving {
		d.handOverToLeave(dg)
		return
	}
	if len(dg.Removing) > 0 && d.hooks.moveDone != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.hooks.moveDone(ctx, rpcGroupMoved, d.name, dg.Generation, d.self); err != nil {
			d.logger.Info("reporting the group moved failed", zap.Error(err))
			return
		}
		d.logger.Info("group moved", zap.Any("members", dg.Members), zap.Int("generation", dg.Generation))
	}
}

// leaveRetry is how long a leader leaving its group waits before it tries again to hand
// leadership over (a transfer in progress refuses writes, so it must not be retried at
// once).
const leaveRetry = 2 * time.Second

// handOverToLeave hands leadership to a member, the leader being no longer one. A leader
// that removes itself shuts its raft down before the change's future is answered
// (hashicorp/raft leaves it waiting for ever); the next leader removes this node. The
// member is the first that has been alive a while, else the one raft finds most caught
// up.
func (d *dataGroup) handOverToLeave(dg *DataGroup) {
	if time.Since(d.lastLeave) < leaveRetry {
		return
	}
	d.lastLeave = time.Now()
	var fut raft.Future
	to := NodeID(-1)
	for _, m := range dg.Members {
		if d.hooks.preferredReady != nil && d.hooks.preferredReady(m) {
			to = m
			break
		}
	}
	if to >= 0 {
		fut = d.raft.LeadershipTransferToServer(serverID(to), raft.ServerAddress(d.hooks.addr(to)))
	} else {
		fut = d.raft.LeadershipTransfer()
	}
	d.logger.Info("handing leadership over before leaving the group", zap.Int32("to", int32(to)))
	if err := waitFuture(fut, d.stop); err != nil {
		d.logger.Info("leadership transfer failed", zap.Int32("to", int32(to)), zap.Error(err))
	}
}

// errGroupClosing is returned by waitFuture when stop is closed first.
var errGroupClosing = errors.New("replication: data group closing")

// waitFuture waits for a Raft configuration change or leadership transfer, or until
// stop is closed: hashicorp/raft may never answer such a future when it shuts down (a
// leader removed from its own group does), and the group's goroutine must not hang on it.
func waitFuture(f raft.Future, stop <-chan struct{}) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-stop:
		return errGroupClosing
	}
}

// reportCaughtUp, on a joining member, tells the controller once it has applied every
// entry the leader had committed after it began to catch up (step 2 of a move). The
// leader's commit index comes from its AppendEntries: raft's own CommitIndex on a
// follower stops at the follower's last entry, so it says nothing about how far behind it
// is. A joining member that leads the group (moved back into a group it leads) is caught
// up once it ran its barrier.
func (d *dataGroup) reportCaughtUp() {
	dg := d.spec.Load()
	if !slices.Contains(dg.Joining, d.self) || d.hooks.moveDone == nil || !d.viewReady() {
		return
	}
	if d.catchGen != dg.Generation {
		d.catchGen, d.catchSince, d.catchTarget = dg.Generation, time.Now(), 0
	}
	if !d.ready() {
		if d.raft.State() != raft.Follower {
			return
		}
		if d.catchTarget == 0 {
			commit, at := d.trans.lastLeaderCommit()
			if commit == 0 || !at.After(d.catchSince) {
				return // no word from the leader since this move began
			}
			d.catchTarget = commit
		}
		if d.appliedIndex() < d.catchTarget {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.hooks.moveDone(ctx, rpcMemberCaughtUp, d.name, dg.Generation, d.self); err != nil {
		d.logger.Info("reporting caught up failed", zap.Error(err))
		return
	}
	d.logger.Info("caught up with the group", zap.Uint64("applied", d.appliedIndex()), zap.Uint64("leader_commit", d.catchTarget))
}

// dropGroups closes and deletes the groups this node runs that no longer have it (after
// a move off this node).
func (r *RaftReplicator) dropGroups(groups map[string]*DataGroup) {
	// startMu keeps ensureGroup from starting a group again in the directory being
	// deleted.
	r.startMu.Lock()
	defer r.startMu.Unlock()
	r.mu.Lock()
	var drop []*dataGroup
	for name, g := range r.groups {
		// A group the metadata does not know is kept (groups are never deleted).
		if dg, ok := groups[name]; !ok || slices.Contains(groupReplicas(dg), r.cfg.NodeID) {
			continue
		}
		drop = append(drop, g)
		delete(r.groups, name)
		for key, kg := range r.keys {
			if kg == g {
				delete(r.keys, key)
			}
		}
	}
	r.mu.Unlock()
	sort.Slice(drop, func(i, j int) bool { return drop[i].name < drop[j].name })
	for _, g := range drop {
		if err := g.close(); err != nil {
			r.logger.Warn("closing a group this node left", zap.String("group", g.name), zap.Error(err))
		}
		if err := os.RemoveAll(filepath.Join(r.cfg.Dir, "groups", g.name)); err != nil {
			r.logger.Warn("deleting a group this node left", zap.String("group", g.name), zap.Error(err))
		}
		r.logger.Info("left data group", zap.String("group", g.name))
	}
}
