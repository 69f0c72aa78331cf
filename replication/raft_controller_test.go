package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// freeAddrs reserves n loopback addresses (listen, note the port, close).
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// ctrlNode is one in-process node running a mux and a controller.
type ctrlNode struct {
	cfg  ClusterConfig
	mux  *Mux
	ctrl *RaftController
}

func startCtrlNode(t testing.TB, cfg ClusterConfig) *ctrlNode {
	t.Helper()
	var mux *Mux
	var err error
	addr := cfg.RaftListen
	if addr == "" {
		addr = cfg.Peers[cfg.NodeID-1].RaftAddr
	}
	// The port may be briefly in use by the previous incarnation's connections.
	waitFor(t, 5*time.Second, "listen on "+addr, func() bool {
		mux, err = NewMux(addr, "", cfg.Logger)
		return err == nil
	})
	ctrl, err := NewRaftController(cfg, mux)
	if err != nil {
		mux.Close()
		t.Fatal(err)
	}
	return &ctrlNode{cfg: cfg, mux: mux, ctrl: ctrl}
}

func (n *ctrlNode) stop() {
	n.ctrl.Close()
	n.mux.Close()
}

// startCtrlCluster starts n controller nodes forming one cluster, stops them when the
// test ends (a test that stops one sets its slot to nil), and waits until each is ready.
func startCtrlCluster(t *testing.T, n int) []*ctrlNode {
	t.Helper()
	nodes := make([]*ctrlNode, n)
	for i, cfg := range testClusterConfigs(t, n) {
		nodes[i] = startCtrlNode(t, cfg)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				n.stop()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.ctrl.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func testClusterConfigs(t testing.TB, n int) []ClusterConfig {
	addrs := freeAddrs(t, n)
	var peers []Peer
	for i, a := range addrs {
		peers = append(peers, Peer{ID: NodeID(i + 1), RaftAddr: a})
	}
	root := t.TempDir()
	var cfgs []ClusterConfig
	for i := range n {
		cfgs = append(cfgs, ClusterConfig{
			NodeID:          NodeID(i + 1),
			Peers:           peers,
			KafkaAddr:       fmt.Sprintf("127.0.0.1:%d", 9000+i),
			Dir:             filepath.Join(root, fmt.Sprintf("node%d", i+1)),
			ElectionTimeout: 300 * time.Millisecond,
			LivenessTimeout: 1500 * time.Millisecond,
			Logger:          zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).With(zap.Int("node", i+1)),
		})
	}
	return cfgs
}

func nodeAlive(st *ClusterState, id NodeID) (known, alive bool) {
	for _, n := range st.Nodes {
		if n.ID == id {
			return true, n.Alive
		}
	}
	return false, false
}

func TestRaftControllerCluster(t *testing.T) {
	nodes := startCtrlCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Every node learns every node's Kafka address.
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "all nodes registered and alive", func() bool {
			st := n.ctrl.State()
			for i := range nodes {
				known, alive := nodeAlive(st, NodeID(i+1))
				if !known || !alive {
					return false
				}
			}
			return len(st.Nodes) == 3 && st.Nodes[1].KafkaAddr == "127.0.0.1:9001" && st.ClusterID != "" && st.ControllerID > 0
		})
	}

	// Create a topic from a follower: forwarded to the leader, visible here on return.
	leaderID, _ := nodes[0].ctrl.Leader()
	follower := nodes[int(leaderID)%3]
	topic, err := follower.ctrl.CreateTopic(ctx, TopicSpec{Name: "orders", Partitions: 6, ReplicationFactor: -1, Configs: map[string]string{"retention.ms": "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	st := follower.ctrl.State()
	got := st.Topics["orders"]
	if got == nil || got.ID != topic.ID || got.ID == [16]byte{} || len(got.Partitions) != 6 || got.Configs["retention.ms"] != "1000" {
		t.Fatalf("topic after create: %+v", got)
	}
	leaders := map[NodeID]int{}
	for _, p := range got.Partitions {
		if len(p.Replicas) != 3 || p.Group == "" {
			t.Fatalf("partition %d: %+v, want 3 replicas and a group", p.Partition, p)
		}
		leaders[p.Replicas[0]]++
	}
	if len(leaders) != 3 {
		t.Fatalf("preferred leaders %v, want spread over 3 nodes", leaders)
	}
	if _, err := follower.ctrl.CreateTopic(ctx, TopicSpec{Name: "orders", Partitions: 1, ReplicationFactor: -1}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create: %v, want ErrTopicExists", err)
	}
	if _, err := follower.ctrl.CreateTopic(ctx, TopicSpec{Name: "bad/name", Partitions: 1, ReplicationFactor: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad name: %v, want ErrInvalid", err)
	}
	if _, err := follower.ctrl.CreateTopic(ctx, TopicSpec{Name: "wide", Partitions: 1, ReplicationFactor: 4}); !errors.Is(err, ErrNotEnoughNodes) {
		t.Fatalf("rf 4 on 3 nodes: %v, want ErrNotEnoughNodes", err)
	}
	if err := follower.ctrl.CreatePartitions(ctx, "orders", 8); err != nil {
		t.Fatal(err)
	}
	if err := follower.ctrl.CreatePartitions(ctx, "orders", 8); !errors.Is(err, ErrInvalid) {
		t.Fatalf("shrinking create partitions: %v, want ErrInvalid", err)
	}
	v := "2000"
	if err := follower.ctrl.AlterConfigs(ctx, "orders", map[string]*string{"retention.ms": &v, "segment.ms": nil}); err != nil {
		t.Fatal(err)
	}
	if err := follower.ctrl.AlterConfigs(ctx, "nope", map[string]*string{"retention.ms": &v}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("alter unknown: %v", err)
	}
	got = follower.ctrl.State().Topics["orders"]
	if len(got.Partitions) != 8 || got.Configs["retention.ms"] != "2000" || got.Partitions[7].Partition != 7 {
		t.Fatalf("after grow/alter: %+v", got)
	}
	// Producer ID blocks never overlap, whichever node asks.
	seen := map[int64]bool{}
	for i := range 6 {
		first, err := nodes[i%3].ctrl.AllocateProducerIDs(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		for id := first; id < first+10; id++ {
			if seen[id] {
				t.Fatalf("producer ID %d allocated twice", id)
			}
			seen[id] = true
		}
	}
	if _, err := follower.ctrl.CreateTopic(ctx, TopicSpec{Name: "single", Partitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if err := follower.ctrl.DeleteTopic(ctx, "single"); err != nil {
		t.Fatal(err)
	}
	if err := follower.ctrl.DeleteTopic(ctx, "single"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("delete twice: %v", err)
	}
	// Every node converges on the same metadata.
	want := follower.ctrl.State()
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "metadata replicated", func() bool {
			st := n.ctrl.State()
			return st.Version >= want.Version && st.Topics["single"] == nil && len(st.Topics["orders"].Partitions) == 8
		})
	}

	// Stop a follower: it is marked dead; restarted with its directory it rejoins and is
	// alive again, with the metadata.
	victim := nodes[int(leaderID)%3]
	vid := victim.cfg.NodeID
	victim.stop()
	nodes[vid-1] = nil
	var other *ctrlNode
	for _, n := range nodes {
		if n != nil {
			other = n
		}
	}
	waitFor(t, 10*time.Second, "stopped node marked dead", func() bool {
		known, alive := nodeAlive(other.ctrl.State(), vid)
		return known && !alive
	})
	// Changes still go through with two of three.
	if _, err := other.ctrl.CreateTopic(ctx, TopicSpec{Name: "while-down", Partitions: 2, ReplicationFactor: -1}); err != nil {
		t.Fatal(err)
	}
	nodes[vid-1] = startCtrlNode(t, victim.cfg)
	if err := nodes[vid-1].ctrl.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	st = nodes[vid-1].ctrl.State()
	if st.Topics["while-down"] == nil || len(st.Topics["orders"].Partitions) != 8 {
		t.Fatalf("restarted node's metadata: %v", st.Topics)
	}
	waitFor(t, 10*time.Second, "restarted node alive", func() bool {
		_, alive := nodeAlive(other.ctrl.State(), vid)
		return alive
	})
}

func TestRaftControllerLeaderFailover(t *testing.T) {
	nodes := startCtrlCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leaderID, _ := nodes[0].ctrl.Leader()
	nodes[leaderID-1].stop()
	nodes[leaderID-1] = nil
	survivor := nodes[int(leaderID)%3]
	// Creation from a survivor succeeds once a new leader is elected.
	for i := range 5 {
		if _, err := survivor.ctrl.CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("t%d", i), Partitions: 3, ReplicationFactor: -1}); err != nil {
			t.Fatalf("create t%d after leader loss: %v", i, err)
		}
	}
	newLeader, _ := survivor.ctrl.Leader()
	if newLeader == leaderID || newLeader < 0 {
		t.Fatalf("leader after failover: %d (was %d)", newLeader, leaderID)
	}
	if got := len(survivor.ctrl.State().Topics); got != 5 {
		t.Fatalf("%d topics, want 5", got)
	}
}

func TestPlanGroups(t *testing.T) {
	nodes := []NodeID{1, 2, 3}
	cases := []struct {
		name    string
		nodes   []NodeID
		rf, per int
		want    []string
	}{
		{"3 nodes rf3", nodes, 3, 3, []string{"g1-2-3", "g2-3-1", "g3-1-2"}},
		{"3 nodes rf3 one per node", nodes, 3, 1, []string{"g1-2-3"}},
		{"3 nodes rf1", nodes, 1, 2, []string{"g1", "g2", "g3", "g1", "g2", "g3"}[:3]},
		{"5 nodes rf3", []NodeID{1, 2, 3, 4, 5}, 3, 3, []string{"g1-2-3", "g2-3-4", "g3-4-5", "g4-5-1", "g5-1-2"}},
		{"1 node", []NodeID{7}, 1, 3, []string{"g7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			groups := planGroups(tc.nodes, tc.rf, tc.per)
			var names []string
			for _, g := range groups {
				names = append(names, g.Name)
			}
			if fmt.Sprint(names) != fmt.Sprint(tc.want) {
				t.Fatalf("groups %v, want %v", names, tc.want)
			}
		})
	}
}

// A node the controller counts dead stays dead when the controller's leadership moves:
// the new leader gives the live nodes a full liveness timeout to reach it, but does not
// bring a dead one back to life for that long (clients would see it in ISRs again).
func TestRaftControllerLeaderChangeKeepsDeadNodeDead(t *testing.T) {
	nodes := startCtrlCluster(t, 3)
	var leader *ctrlNode
	waitFor(t, 10*time.Second, "a controller leader that counts every node alive", func() bool {
		for _, n := range nodes {
			if n.ctrl.raft.State() != raft.Leader {
				continue
			}
			for _, m := range nodes {
				if _, alive := nodeAlive(n.ctrl.State(), m.cfg.NodeID); !alive {
					return false
				}
			}
			leader = n
			return true
		}
		return false
	})
	var dead, other *ctrlNode
	for _, n := range nodes {
		if n != leader {
			if dead == nil {
				dead = n
			} else {
				other = n
			}
		}
	}
	did := dead.cfg.NodeID
	dead.stop()
	nodes[did-1] = nil
	waitFor(t, 10*time.Second, "the stopped node counted dead by both others", func() bool {
		for _, n := range []*ctrlNode{leader, other} {
			if known, alive := nodeAlive(n.ctrl.State(), did); !known || alive {
				return false
			}
		}
		return true
	})
	if err := leader.ctrl.raft.LeadershipTransferToServer(serverID(other.cfg.NodeID), raft.ServerAddress(other.cfg.selfAddr())).Error(); err != nil {
		t.Fatalf("controller leadership transfer: %v", err)
	}
	// For twice the liveness timeout after the move, no node's view shows it alive.
	until := time.Now().Add(2 * other.cfg.LivenessTimeout)
	for time.Now().Before(until) {
		for _, n := range []*ctrlNode{leader, other} {
			if _, alive := nodeAlive(n.ctrl.State(), did); alive {
				t.Fatalf("node %d, stopped, shown alive by node %d after the controller's leadership moved", did, n.cfg.NodeID)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if other.ctrl.raft.State() != raft.Leader {
		t.Fatalf("node %d does not lead the controller after the transfer", other.cfg.NodeID)
	}
}
