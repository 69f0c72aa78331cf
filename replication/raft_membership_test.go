package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// membershipData is a controller state with nodes 1-4 (4 being removed when removing
// is set) and groups of three.
func membershipData(groups map[string][]NodeID) *ctrlData {
	d := emptyCtrlData()
	for id := NodeID(1); id <= 5; id++ {
		d.Nodes[id] = &Node{ID: id, Alive: true}
	}
	for name, members := range groups {
		d.Groups[name] = &DataGroup{Name: name, Members: members, ReplicationFactor: len(members)}
	}
	d.Topics["t"] = &Topic{Name: "t", Partitions: []PartitionAssignment{
		{Partition: 0, Group: "a", Replicas: []NodeID{1, 2, 3}},
		{Partition: 1, Group: "b", Replicas: []NodeID{3, 1, 2}},
		{Partition: 2, Group: "c", Replicas: []NodeID{2, 4, 5}},
	}}
	return d
}

func TestPlanMoves(t *testing.T) {
	d := membershipData(map[string][]NodeID{"a": {1, 2, 3}, "b": {3, 1, 2}, "c": {2, 4, 5}})
	// Node 3 leaves: its place goes to the node with the fewest groups, in its position.
	moves, err := planMoves(d, []NodeID{1, 2, 3, 4, 5}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) != 2 {
		t.Fatalf("moves %v, want groups a and b", moves)
	}
	// Nodes 4 and 5 carry one group each: a (planned first) gets 4, b then gets 5.
	if !slices.Equal(moves["a"], []NodeID{1, 2, 4}) || !slices.Equal(moves["b"], []NodeID{5, 1, 2}) {
		t.Fatalf("moves %v", moves)
	}
	// A dead node is taken only when no live one fits.
	d.Nodes[4] = &Node{ID: 4, Alive: false}
	moves, err = planMoves(d, []NodeID{1, 2, 3, 4, 5}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(moves["a"], []NodeID{1, 2, 5}) || !slices.Equal(moves["b"], []NodeID{5, 1, 2}) {
		t.Fatalf("moves with node 4 dead %v", moves)
	}
	// Nobody to move to: three nodes, groups of three.
	if _, err := planMoves(d, []NodeID{1, 2, 3}, 3); !errors.Is(err, ErrNotEnoughNodes) {
		t.Fatalf("three nodes: %v, want ErrNotEnoughNodes", err)
	}
	// A node being removed is no destination.
	d.Nodes[5] = &Node{ID: 5, Alive: true, Removing: true}
	d.Nodes[4] = &Node{ID: 4, Alive: true}
	moves, err = planMoves(d, []NodeID{1, 2, 3, 4, 5}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(moves["a"], []NodeID{1, 2, 4}) || !slices.Equal(moves["b"], []NodeID{4, 1, 2}) {
		t.Fatalf("moves with node 5 being removed %v", moves)
	}
}

func TestApplyMembership(t *testing.T) {
	d := membershipData(map[string][]NodeID{"a": {1, 2, 3}, "b": {3, 1, 2}, "c": {2, 4, 5}})
	step := func(cmd *ctrlCommand) {
		t.Helper()
		next, res := applyCtrl(d, cmd)
		if res.Err != nil {
			t.Fatalf("%s: %v", cmd.Op, res.Err)
		}
		if next != nil {
			d = next
		}
	}
	replicas := func(p int) []NodeID { return d.Topics["t"].Partitions[p].Replicas }

	if _, res := applyCtrl(d, &ctrlCommand{Op: opRemoveNode, NodeID: 9}); !errors.Is(res.Err, ErrUnknownNode) {
		t.Fatalf("unknown node: %v", res.Err)
	}
	if _, res := applyCtrl(d, &ctrlCommand{Op: opRemoveNode, NodeID: 3, Moves: map[string][]NodeID{"c": {2, 3, 5}}}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("move of a group without the node: %v", res.Err)
	}
	before := d
	step(&ctrlCommand{Op: opRemoveNode, NodeID: 3, Moves: map[string][]NodeID{"a": {1, 2, 4}, "b": {5, 1, 2}}})
	if before.Groups["a"].Generation != 0 || !slices.Equal(before.Topics["t"].Partitions[0].Replicas, []NodeID{1, 2, 3}) {
		t.Fatal("apply modified the previous state")
	}
	a := d.Groups["a"]
	if !d.Nodes[3].Removing || a.Generation != 1 || !slices.Equal(a.Members, []NodeID{1, 2, 4}) ||
		!slices.Equal(a.Joining, []NodeID{4}) || !slices.Equal(a.Removing, []NodeID{3}) {
		t.Fatalf("after remove_node: node %+v, group a %+v", d.Nodes[3], a)
	}
	// Both copies are replicas while the group moves; group c is untouched.
	if !slices.Equal(replicas(0), []NodeID{1, 2, 4, 3}) || !slices.Equal(replicas(1), []NodeID{5, 1, 2, 3}) || !slices.Equal(replicas(2), []NodeID{2, 4, 5}) {
		t.Fatalf("replicas while moving: %v %v %v", replicas(0), replicas(1), replicas(2))
	}
	// The move cannot finish while a member is joining; a stale generation is ignored.
	if _, res := applyCtrl(d, &ctrlCommand{Op: opGroupMoved, Group: "a", Generation: 1}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("moved while joining: %v", res.Err)
	}
	if next, _ := applyCtrl(d, &ctrlCommand{Op: opCaughtUp, Group: "a", Generation: 0, NodeID: 4}); next != nil {
		t.Fatal("caught_up of an older generation changed the state")
	}
	step(&ctrlCommand{Op: opCaughtUp, Group: "a", Generation: 1, NodeID: 4})
	step(&ctrlCommand{Op: opGroupMoved, Group: "a", Generation: 1})
	if a := d.Groups["a"]; len(a.Joining) != 0 || len(a.Removing) != 0 || !slices.Equal(replicas(0), []NodeID{1, 2, 4}) {
		t.Fatalf("after the move: group %+v, replicas %v", a, replicas(0))
	}
	// Node 3 is still in group b: it is not forgotten yet.
	if next, _ := applyCtrl(d, &ctrlCommand{Op: opForgetNode, NodeID: 3}); next != nil {
		t.Fatal("a node still in a group was forgotten")
	}
	step(&ctrlCommand{Op: opCaughtUp, Group: "b", Generation: 1, NodeID: 5})
	step(&ctrlCommand{Op: opGroupMoved, Group: "b", Generation: 1})
	step(&ctrlCommand{Op: opForgetNode, NodeID: 3})
	if _, ok := d.Nodes[3]; ok {
		t.Fatal("node 3 is still in the metadata")
	}
	// A group that is still moving moves again: node 1 is joining group c in place of
	// node 2 when node 5 is removed; node 1 is still joining afterwards, node 3 joins too,
	// and both 2 and 5 are on their way out.
	d.Nodes[1] = &Node{ID: 1, Alive: true}
	step(&ctrlCommand{Op: opMoveGroups, Moves: map[string][]NodeID{"c": {1, 4, 5}}})
	step(&ctrlCommand{Op: opRemoveNode, NodeID: 5, Moves: map[string][]NodeID{"c": {1, 4, 3}}})
	if c := d.Groups["c"]; !slices.Equal(c.Members, []NodeID{1, 4, 3}) || !slices.Equal(c.Joining, []NodeID{1, 3}) ||
		!slices.Equal(c.Removing, []NodeID{2, 5}) || c.Generation != 2 {
		t.Fatalf("group c moved while moving: %+v", c)
	}
	if !slices.Equal(replicas(2), []NodeID{1, 4, 3, 2, 5}) {
		t.Fatalf("replicas of a group moved twice: %v", replicas(2))
	}

	// Registering a node again does not clear Removing.
	d.Nodes[4] = &Node{ID: 4, Alive: true, Removing: true}
	step(&ctrlCommand{Op: opNode, Node: &Node{ID: 4, KafkaAddr: "x:1", Alive: true}})
	if !d.Nodes[4].Removing {
		t.Fatal("a heartbeat cleared Removing")
	}
}

// TestRaftClusterJoinAndRemove grows a three-node cluster by a fourth node joining it,
// then removes node 3: every group it had moves to node 4 with all its entries, node 3
// deletes its copy and leaves the cluster, and the groups go on without it. The groups
// snapshot first, so node 4 copies the data that is no longer in the Raft log.
func TestRaftClusterJoinAndRemove(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *ClusterConfig) { cfg.TrailingLogs = 2 })
	keys := c.createTopic("orders", 6)
	want := map[string][]string{}
	produce := func(n int) { c.produceRound(keys, want, n) }
	produce(60)
	for _, n := range c.nodes {
		n.repl.mu.Lock()
		for _, g := range n.repl.groups {
			if err := g.raft.Snapshot().Error(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		}
		n.repl.mu.Unlock()
	}

	n4 := c.join(4)
	cfg := n4.cfg
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Joining twice is harmless; another node's address under ID 4 is refused.
	resp := c.nodes[0].ctrl.serveCtl(ctx, &rpcRequest{Op: rpcJoin, Node: &Node{ID: 4, RaftAddr: cfg.RaftListen}})
	if err := resp.err(); err != nil {
		t.Fatalf("second join: %v", err)
	}
	if _, err := c.nodes[1].ctrl.call(ctx, &rpcRequest{Op: rpcJoin, Node: &Node{ID: 4, RaftAddr: "127.0.0.1:1"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("join of ID 4 at another address: %v", err)
	}

	// Node 3 leads every group when it is removed: a leader leaves last.
	for name := range c.nodes[0].ctrl.Groups() {
		waitFor(t, 20*time.Second, "node 3 leads "+name, func() bool {
			if c.nodes[2].group(name).raft.State() == raft.Leader {
				return true
			}
			for _, n := range c.nodes {
				if g := n.group(name); g != nil && g.raft.State() == raft.Leader {
					g.raft.LeadershipTransferToServer(serverID(3), raft.ServerAddress(c.cfgs[2].Peers[2].RaftAddr))
				}
			}
			return false
		})
	}
	// Removing node 3 moves its groups (all of them: three nodes, factor 3) to node 4.
	if err := c.nodes[1].ctrl.RemoveNode(ctx, 3); err != nil {
		t.Fatal(err)
	}
	produce(30) // while the groups move
	waitFor(t, 60*time.Second, "node 3 gone from the cluster", func() bool {
		st := c.nodes[0].ctrl.State()
		known, _ := nodeAlive(st, 3)
		if known {
			return false
		}
		for _, g := range c.nodes[0].ctrl.Groups() {
			if slices.Contains(g.Members, 3) || len(g.Removing) > 0 || len(g.Joining) > 0 {
				return false
			}
		}
		return !slices.Contains(c.nodes[0].ctrl.voters(), 3)
	})
	for _, g := range c.nodes[0].ctrl.Groups() {
		if !slices.Equal(slices.Sorted(slices.Values(g.Members)), []NodeID{1, 2, 4}) || g.Generation != 1 {
			t.Fatalf("group %+v: want members 1 2 4 at generation 1", g)
		}
	}
	c.settled(10 * time.Second)
	// Node 3 deleted its copy of every group.
	waitFor(t, 10*time.Second, "node 3 deletes its groups", func() bool {
		ents, err := os.ReadDir(filepath.Join(c.cfgs[2].Dir, "groups"))
		return err == nil && len(ents) == 0
	})
	// Node 3 goes; so does node 1: nodes 2 and 4 are a majority of every group and hold
	// every entry.
	c.nodes[2].close()
	c.nodes[2] = nil
	c.nodes[0].close()
	c.nodes[0] = nil
	produce(12)
	copied := 0
	for _, key := range keys {
		c.converge(key, want[key])
		copied += n4.sm(key).caughtUp
	}
	if copied == 0 {
		t.Fatal("node 4 converged without copying data: the test did not exercise a snapshot install")
	}
}

// produceRound writes n values round-robin over keys, each at the offset that follows
// the values want already has for its key, and records them in want.
func (c *testCluster) produceRound(keys []string, want map[string][]string, n int) {
	c.t.Helper()
	for i := range n {
		key := keys[i%len(keys)]
		v := fmt.Sprintf("v%d", len(want[key]))
		if off := c.produce(key, v); off != int64(len(want[key])) {
			c.t.Fatalf("%s: offset %d, want %d", key, off, len(want[key]))
		}
		want[key] = append(want[key], v)
	}
}

// convergeReplicas waits until every replica the metadata lists for each partition of
// topic holds exactly what want has for its key (nodes are c.nodes by ID).
func (c *testCluster) convergeReplicas(topic string, want map[string][]string) {
	c.t.Helper()
	t := c.any().ctrl.State().Topics[topic]
	for _, p := range t.Partitions {
		key := partitionKey(t.ID, p.Partition)
		var holders []*testNode
		for _, r := range p.Replicas {
			holders = append(holders, c.nodes[r-1])
		}
		(&testCluster{t: c.t, nodes: holders}).converge(key, want[key])
	}
}

// group returns the node's running group name, or nil.
func (n *testNode) group(name string) *dataGroup {
	n.repl.mu.Lock()
	defer n.repl.mu.Unlock()
	return n.repl.groups[name]
}

// join starts node id, joining the cluster through node 1, and waits until it is a voter.
func (c *testCluster) join(id NodeID) *testNode {
	c.t.Helper()
	cfg := c.cfgs[0]
	cfg.NodeID = id
	cfg.Peers = nil
	cfg.RaftListen = freeAddrs(c.t, 1)[0]
	cfg.Join = []string{c.cfgs[0].Peers[0].RaftAddr}
	cfg.KafkaAddr = fmt.Sprintf("127.0.0.1:%d", 9000+id)
	cfg.Dir = filepath.Join(c.t.TempDir(), fmt.Sprintf("node%d", id))
	n := startTestNode(c.t, cfg)
	c.nodes = append(c.nodes, n)
	c.cfgs = append(c.cfgs, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.ctrl.WaitReady(ctx); err != nil {
		c.t.Fatal(err)
	}
	waitFor(c.t, 10*time.Second, fmt.Sprintf("node %d is a controller voter and registered", id), func() bool {
		known, alive := nodeAlive(c.nodes[0].ctrl.State(), id)
		return known && alive && slices.Contains(c.nodes[0].ctrl.voters(), id)
	})
	return n
}

// settled waits until no group is moving and every group's Raft voters are its members.
func (c *testCluster) settled(timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, "every group settled", func() bool {
		for _, g := range c.any().ctrl.Groups() {
			if len(g.Joining) > 0 || len(g.Removing) > 0 {
				return false
			}
		}
		return true
	})
	for _, g := range c.any().ctrl.Groups() {
		lead := c.leaderOf(keysOf(c, g.Name)[0], 10*time.Second)
		conf := lead.repl.groups[g.Name].raft.GetConfiguration()
		if err := conf.Error(); err != nil {
			c.t.Fatal(err)
		}
		var voters []NodeID
		for _, s := range conf.Configuration().Servers {
			if s.Suffrage != raft.Voter {
				c.t.Fatalf("group %s keeps a non-voter: %+v", g.Name, s)
			}
			voters = append(voters, parseServerID(s.ID))
		}
		slices.Sort(voters)
		if want := slices.Sorted(slices.Values(g.Members)); !slices.Equal(voters, want) {
			c.t.Fatalf("group %s Raft voters %v, want %v", g.Name, voters, want)
		}
	}
}

// keysOf returns the partition keys of group name.
func keysOf(c *testCluster, name string) []string {
	var out []string
	for _, t := range c.any().ctrl.State().Topics {
		for _, p := range t.Partitions {
			if p.Group == name {
				out = append(out, partitionKey(t.ID, p.Partition))
			}
		}
	}
	return out
}

func TestPlanRebalance(t *testing.T) {
	d := membershipData(map[string][]NodeID{"a": {1, 2, 3}, "b": {2, 3, 1}, "c": {3, 1, 2}})
	delete(d.Nodes, 5)
	moves := planRebalance(d, []NodeID{1, 2, 3, 4})
	// Nine memberships over four nodes: node 4 takes two, one of them as preferred leader
	// (of a group whose preferred leader led one), and node 1, 2 or 3 keeps three.
	if len(moves) != 2 {
		t.Fatalf("moves %v, want two", moves)
	}
	count := map[NodeID]int{}
	lead := map[NodeID]int{}
	for name, g := range d.Groups {
		members := g.Members
		if m, ok := moves[name]; ok {
			members = m
			if len(without(m, g.Members...)) != 1 || without(m, g.Members...)[0] != 4 {
				t.Fatalf("move of %s to %v: want one member replaced by node 4", name, m)
			}
		}
		for i, m := range members {
			count[m]++
			if i == 0 {
				lead[m]++
			}
		}
	}
	if count[4] != 2 || lead[4] != 1 {
		t.Fatalf("after the moves node 4 is in %d groups and leads %d (%v)", count[4], lead[4], moves)
	}
	for id := NodeID(1); id <= 3; id++ {
		if count[id] < 2 || count[id] > 3 || lead[id] > 1 {
			t.Fatalf("node %d in %d groups, leading %d (%v)", id, count[id], lead[id], moves)
		}
	}
	// Balanced already: nothing moves; a moving group stays as it is.
	next, res := applyCtrl(d, &ctrlCommand{Op: opMoveGroups, Moves: moves})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if m := planRebalance(next, []NodeID{1, 2, 3, 4}); len(m) != 0 {
		t.Fatalf("after the moves: %v, want none", m)
	}
	for name := range moves {
		again := map[string][]NodeID{name: d.Groups[name].Members}
		if _, res := applyCtrl(next, &ctrlCommand{Op: opMoveGroups, Moves: again}); !errors.Is(res.Err, ErrInvalid) {
			t.Fatalf("a second move of moving group %s: %v, want ErrInvalid", name, res.Err)
		}
	}
	// Invalid moves: duplicate members, an unknown node, a node being removed.
	for _, m := range [][]NodeID{{1, 1, 4}, {1, 2, 9}} {
		if _, res := applyCtrl(d, &ctrlCommand{Op: opMoveGroups, Moves: map[string][]NodeID{"a": m}}); !errors.Is(res.Err, ErrInvalid) {
			t.Fatalf("move of a to %v: %v, want ErrInvalid", m, res.Err)
		}
	}
	// A dead node gets nothing.
	d.Nodes[4] = &Node{ID: 4}
	if m := planRebalance(d, []NodeID{1, 2, 3, 4}); len(m) != 0 {
		t.Fatalf("node 4 dead: %v, want no move", m)
	}
	// One node: nothing to balance.
	if m := planRebalance(d, []NodeID{1}); len(m) != 0 {
		t.Fatalf("one node: %v", m)
	}
}

// TestRaftClusterRebalance: after a fourth node joins, a rebalance moves two group
// memberships to it; every group then runs with its new members and every replica holds
// every entry.
func TestRaftClusterRebalance(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	keys := c.createTopic("spread", 6)
	want := map[string][]string{}
	produce := func(n int) { c.produceRound(keys, want, n) }
	produce(30)
	c.join(4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	moves, err := c.any().ctrl.Rebalance(ctx) // any() then shows the moves at once
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) != 2 {
		t.Fatalf("moves %v, want two", moves)
	}
	produce(30)
	c.settled(60 * time.Second)
	in := 0
	for _, g := range c.any().ctrl.Groups() {
		if slices.Contains(g.Members, 4) {
			in++
		}
	}
	if in != 2 {
		t.Fatalf("node 4 is in %d groups, want 2", in)
	}
	if again, err := c.nodes[0].ctrl.Rebalance(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second rebalance: %v %v, want nothing to move", again, err)
	}
	produce(12)
	c.convergeReplicas("spread", want)
}

// TestRaftClusterRemoveJoiningNode: the node a rebalance moves groups to dies before it
// has caught up; removing it moves those groups, still moving, on to another node that
// joined, and they settle with every entry.
func TestRaftClusterRemoveJoiningNode(t *testing.T) { removeJoiningNode(t, true) }

// TestRaftClusterRemoveJoiningNodeBack: the same with no other node: the groups move back
// to the nodes they were leaving, one of which still leads its group (it reports itself
// caught up as leader).
func TestRaftClusterRemoveJoiningNodeBack(t *testing.T) { removeJoiningNode(t, false) }

func removeJoiningNode(t *testing.T, another bool) {
	c := newTestCluster(t, 3, nil)
	keys := c.createTopic("stuck", 6)
	want := map[string][]string{}
	c.produceRound(keys, want, 30)
	n4 := c.join(4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	moves, err := c.any().ctrl.Rebalance(ctx)
	if err != nil || len(moves) != 2 {
		t.Fatalf("rebalance: %v %v", moves, err)
	}
	n4.close()
	c.nodes[3] = nil
	if another {
		c.join(5)
	}
	joining := 0
	for _, g := range c.any().ctrl.Groups() {
		if slices.Contains(g.Joining, 4) {
			joining++
		}
	}
	if joining == 0 {
		t.Fatal("node 4 caught up before it died: the test did not exercise a move of a moving group")
	}
	if err := c.any().ctrl.RemoveNode(ctx, 4); err != nil {
		t.Fatal(err)
	}
	c.settled(60 * time.Second)
	for _, g := range c.any().ctrl.Groups() {
		if slices.Contains(g.Members, 4) {
			t.Fatalf("group %+v still has node 4", g)
		}
	}
	waitFor(t, 20*time.Second, "node 4 forgotten", func() bool {
		known, _ := nodeAlive(c.any().ctrl.State(), 4)
		return !known
	})
	c.convergeReplicas("stuck", want)
}

// A partition placed on a group that is moving has the group's old members as replicas
// too, so they open it and apply its entries until the move is done.
func TestPlaceOnMovingGroup(t *testing.T) {
	d := emptyCtrlData()
	d.Groups["g1-2-4"] = &DataGroup{Name: "g1-2-4", Members: []NodeID{1, 2, 4}, ReplicationFactor: 3,
		Generation: 1, Joining: []NodeID{4}, Removing: []NodeID{3}}
	parts, added, err := placePartitions(d, []NodeID{1, 2, 4}, 1, "t", 0, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 0 || len(parts) != 2 {
		t.Fatalf("placed %+v, new groups %+v", parts, added)
	}
	for _, p := range parts {
		if p.Group != "g1-2-4" || !slices.Equal(p.Replicas, []NodeID{1, 2, 4, 3}) {
			t.Fatalf("partition %+v: want group g1-2-4 with replicas 1 2 4 3", p)
		}
	}
}

// A node that joins under the ID of a member at another address is refused: WaitReady
// says why instead of waiting for ever.
func TestRaftClusterJoinRefused(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	cfg := c.cfgs[0]
	cfg.NodeID = 2
	cfg.Peers = nil
	cfg.RaftListen = freeAddrs(t, 1)[0]
	cfg.Join = []string{c.cfgs[0].Peers[0].RaftAddr}
	cfg.Dir = filepath.Join(t.TempDir(), "impostor")
	cn := startCtrlNode(t, cfg)
	defer cn.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := cn.ctrl.WaitReady(ctx)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "is a member at "+c.cfgs[1].Peers[1].RaftAddr) {
		t.Fatalf("WaitReady: %v, want the refusal naming node 2's address", err)
	}
	if v := c.nodes[0].ctrl.voters(); !slices.Equal(v, []NodeID{1, 2, 3}) {
		t.Fatalf("voters changed: %v", v)
	}
}

// A node removed while it was down hears of its removal from no one: restarted, it asks
// the nodes it knows whether it is still a member, and WaitReady fails with the reason
// instead of waiting for ever.
func TestRaftClusterRemovedNodeRestarts(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	keys := c.createTopic("orders", 3)
	want := map[string][]string{}
	c.produceRound(keys, want, 9)
	c.join(4)
	c.nodes[2].close()
	c.nodes[2] = nil
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.nodes[0].ctrl.RemoveNode(ctx, 3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "node 3 gone from the cluster", func() bool {
		known, _ := nodeAlive(c.nodes[0].ctrl.State(), 3)
		return !known && !slices.Contains(c.nodes[0].ctrl.voters(), 3)
	})

	cn := startCtrlNode(t, c.cfgs[2])
	defer cn.stop()
	// Restarted while a leader still sends it the entries up to its removal, the node
	// catches up first and is ready; it finds out once they stop.
	if err := cn.ctrl.WaitReady(ctx); err != nil {
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "node 3 was removed from the cluster") {
			t.Fatalf("WaitReady of the removed node: %v, want its removal", err)
		}
	}
	select {
	case <-cn.ctrl.Refused():
	case <-ctx.Done():
		t.Fatal("the removed node did not find out")
	}
	if err := cn.ctrl.RefusedErr(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "node 3 was removed from the cluster") {
		t.Fatalf("RefusedErr: %v, want the removal", err)
	}
	// The members go on.
	c.produceRound(keys, want, 6)
	for _, key := range keys {
		c.converge(key, want[key])
	}
}

// A restarted node that knows no controller leader asks its peers whether it is still a
// member. Close ends a question in flight instead of waiting for its timeout: here a peer
// takes the question and never answers, and the question's timeout is an hour, so Close
// returning at all shows it did not wait for it.
func TestRaftControllerCloseDuringMemberCheck(t *testing.T) {
	cfg := testClusterConfigs(t, 1)[0]
	// Node 2 is a shared port whose controller service reads questions and answers none
	// (and which has no controller group, so no leader is ever elected).
	peer, err := NewMux("127.0.0.1:0", "", cfg.Logger)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	asked := make(chan struct{}, 1)
	if err := peer.HandleService(ctlService, func(conn net.Conn) {
		var b [1]byte
		if _, err := conn.Read(b[:]); err != nil {
			return
		}
		select {
		case asked <- struct{}{}:
		default:
		}
		_, _ = io.Copy(io.Discard, conn) // until the mux closes it
	}); err != nil {
		t.Fatal(err)
	}
	cfg.Peers = append(cfg.Peers, Peer{ID: 2, RaftAddr: peer.Addr().String()})

	// The first start bootstraps the controller group; the second starts from that state
	// and so checks its membership.
	startCtrlNode(t, cfg).stop()
	old := memberAskTimeout
	memberAskTimeout = time.Hour
	defer func() { memberAskTimeout = old }()
	cn := startCtrlNode(t, cfg)
	defer cn.mux.Close()

	select {
	case <-asked:
	case <-time.After(30 * time.Second):
		cn.stop()
		t.Fatal("the restarted node never asked its peer whether it is a member")
	}
	closed := make(chan error, 1)
	go func() { closed <- cn.ctrl.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(time.Minute):
		// Far below the question's timeout: Close is waiting for the question.
		t.Fatalf("Close did not return while a membership question (timeout %v) was in flight", memberAskTimeout)
	}
}
