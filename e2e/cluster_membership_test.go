package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testnode"
	"github.com/sluicemq/sluice/replication"
)

// A fourth node joins a running three-node cluster (`--join`), `sluice cluster rebalance
// --wait` moves two group memberships to it, then node 3 is removed with `sluice cluster
// remove-node --wait`, under load: every data group moves to node 4,
// node 3 deletes its copy and leaves the metadata, and with nodes 1 and 3 then killed,
// nodes 2 and 4 serve every partition and every acknowledged record reads back exactly
// once.
func TestClusterJoinAndRemoveNode(t *testing.T) { joinAndRemove(t, removeLive) }

// The same with node 3 dead (kill -9) before node 4 joins: replacing a lost machine. Its
// groups move from the two live members.
func TestClusterRemoveDeadNode(t *testing.T) { joinAndRemove(t, removeDead) }

// The same with the controller leader, then node 1, killed (kill -9) and restarted while
// the groups move: the moves go on from the state the controller recorded.
func TestClusterRemoveNodeKills(t *testing.T) { joinAndRemove(t, removeKills) }

type removeMode int

const (
	removeLive  removeMode = iota // node 3 runs while it is removed
	removeDead                    // node 3 is dead first
	removeKills                   // nodes are killed while the groups move
)

func joinAndRemove(t *testing.T, mode removeMode) {
	dead := mode == removeDead
	h := startClusterHarness(t)
	const topic, partitions = "orders", 6
	h.createTopic(topic, partitions)
	ch := newChecker()
	l := h.startLoad(topic, partitions, 2, 32, ch)
	h.waitAcked(ch, 500, "acknowledgements before node 4 joins")

	n1, n2, n3 := h.nodeByID(1), h.nodeByID(2), h.nodeByID(3)
	if dead {
		if err := n3.Kill(); err != nil {
			t.Fatal(err)
		}
		t.Log("node 3 killed")
	}

	n4 := h.joinNode4(n1)

	if mode == removeLive {
		// A rebalance gives the new node two of the nine group memberships.
		p := runProg(t, 3*time.Minute, "", testnode.Binary(t), "cluster", "rebalance", "--admin", n1.AdminAddr, "--wait", "--timeout", "150s")
		if p.code != 0 || !strings.Contains(p.stdout, "rebalanced: 2 data groups moved") {
			t.Fatalf("rebalance: exit %d\nstdout:\n%s\nstderr:\n%s", p.code, p.stdout, p.stderr)
		}
		t.Logf("rebalance:\n%s", p.stdout)
		h.waitFor(30*time.Second, "node 4 in two groups", func() error {
			for _, n := range h.running() {
				st, err := h.status(n)
				if err != nil {
					return err
				}
				in := 0
				for _, g := range st.Groups {
					if len(g.Joining) > 0 || len(g.Removing) > 0 {
						return fmt.Errorf("%s: group %s still moving", n.Name, g.Name)
					}
					if slices.Contains(g.Members, 4) {
						in++
					}
				}
				if in != 2 {
					return fmt.Errorf("%s: node 4 in %d groups", n.Name, in)
				}
			}
			return nil
		})
	}

	start := time.Now()
	if mode == removeKills {
		killDuringMoves(h, n2)
	}
	// Remove node 3 through node 2's admin endpoint and wait for it to be gone.
	p := runProg(t, 3*time.Minute, "", testnode.Binary(t), "cluster", "remove-node", "3", "--admin", n2.AdminAddr, "--wait", "--timeout", "150s")
	// After the kills, the removal may be over before it is asked for again.
	over := mode == removeKills && p.code == 1 && strings.Contains(p.stderr, "not in the cluster")
	if p.code != 0 && !over {
		h.logGoroutines()
		t.Fatalf("remove-node: exit %d\nstdout:\n%s\nstderr:\n%s", p.code, p.stdout, p.stderr)
	}
	t.Logf("node 3 removed in %v:\n%s", time.Since(start).Round(time.Millisecond), p.stdout)

	// Every node that stays agrees: node 3 is gone, every group has node 4 and nobody
	// moving, and every partition's replicas are in the groups' members.
	h.waitFor(30*time.Second, "the cluster without node 3", func() error {
		for _, n := range []*testnode.Node{n1, n2, n4} {
			st, err := h.status(n)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(st.Nodes, func(ns replication.NodeStatus) bool { return ns.ID == 3 }) {
				return fmt.Errorf("%s still lists node 3", n.Name)
			}
			for _, g := range st.Groups {
				if slices.Contains(g.Members, 3) || !slices.Contains(g.Members, 4) || len(g.Joining) > 0 || len(g.Removing) > 0 {
					return fmt.Errorf("%s: group %s members %v joining %v removing %v", n.Name, g.Name, g.Members, g.Joining, g.Removing)
				}
			}
			for _, ps := range st.Partitions {
				if slices.Contains(ps.Replicas, 3) {
					return fmt.Errorf("%s: %s-%d replicas %v", n.Name, ps.Topic, ps.Partition, ps.Replicas)
				}
			}
		}
		return nil
	})
	// Clients see it too: Metadata lists three brokers and no replica on node 3.
	adm := kadm.NewClient(h.client())
	h.waitFor(30*time.Second, "metadata without node 3", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		if len(md.Brokers) != 3 || slices.ContainsFunc(md.Brokers, func(b kadm.BrokerDetail) bool { return b.NodeID == 3 }) {
			return fmt.Errorf("brokers %v", md.Brokers.NodeIDs())
		}
		for _, pd := range md.Topics[topic].Partitions {
			if slices.Contains(pd.Replicas, 3) || !slices.Contains(pd.Replicas, 4) || len(pd.Replicas) != 3 {
				return fmt.Errorf("partition %d replicas %v", pd.Partition, pd.Replicas)
			}
		}
		return nil
	})
	// Node 3 deleted its partitions and its groups' Raft state.
	h.waitFor(30*time.Second, "node 3's copy deleted", func() error {
		if dead {
			return nil
		}
		var left []string
		ents, err := os.ReadDir(n3.DataDir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), topic+"-") {
				left = append(left, e.Name())
			}
		}
		groups, err := os.ReadDir(filepath.Join(n3.DataDir, "raft", "groups"))
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		for _, g := range groups {
			left = append(left, "raft/groups/"+g.Name())
		}
		if len(left) > 0 {
			return fmt.Errorf("still there: %v", left)
		}
		return nil
	})

	// A node removed while it was dead finds out when it is started again: it exits with
	// the reason rather than waiting for ever for a cluster that no longer knows it.
	if dead {
		if err := n3.Start(); err != nil {
			t.Fatal(err)
		}
		err := n3.Wait(60 * time.Second)
		logs := n3.Logs(64 << 10)
		n3.Kill() // exited: marks it meant to be down
		if err == nil || !strings.Contains(logs, "node 3 was removed from the cluster") {
			t.Fatalf("removed node 3 started again: exit %v; log tail:\n%s", err, logs)
		}
		t.Logf("node 3, removed while dead, started again and exited: %v", err)
	}

	// The joined node restarts like any other (same flags; it has Raft state, so it does
	// not join again) and catches up.
	if err := n4.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := n4.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n4.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	h.waitCaughtUp(n4, 60*time.Second)

	// Nodes 3 and 1 die: 2 and 4 are a majority of every group and carry on.
	if n3.Running() {
		if err := n3.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	if err := n1.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	h.waitFor(60*time.Second, "acknowledgements on every partition from nodes 2 and 4", func() error {
		return ch.ackedSince(killed, partitions)
	})
	l.stopLoad()
	h.verify(topic, partitions, ch)
	leaders := h.leaderCounts(topic)
	for id := range leaders {
		if id != 2 && id != 4 {
			t.Fatalf("partition leaders %v: want only nodes 2 and 4", leaders)
		}
	}
	t.Logf("leaders after: %v (node ID: partitions); remove-node output had %d lines", leaders, strings.Count(p.stdout, "\n"))
}

// killDuringMoves starts removing node 3 through via, then kills the controller leader
// (node 1 if that is node 3) and restarts it once the others lead without it, then does
// the same to node 1 or 2 (which every group has).
func killDuringMoves(h *clusterHarness, via *testnode.Node) {
	t := h.t
	p := runProg(t, time.Minute, "", testnode.Binary(t), "cluster", "remove-node", "3", "--admin", via.AdminAddr)
	if p.code != 0 {
		t.Fatalf("remove-node: exit %d\nstdout:\n%s\nstderr:\n%s", p.code, p.stdout, p.stderr)
	}
	var leader int
	h.waitFor(10*time.Second, "a controller leader", func() error {
		st, err := h.status(via)
		if err != nil {
			return err
		}
		if st.Controller.Leader < 0 {
			return fmt.Errorf("none")
		}
		leader = int(st.Controller.Leader)
		return nil
	})
	// Node 3 itself is not killed: a node that is dead when its removal ends is dropped
	// from the cluster without hearing of it, and keeps its copy (TestClusterRemoveDeadNode
	// covers a dead node).
	var kill []int
	for _, id := range []int{leader, 1, 2} {
		if id != 3 && !slices.Contains(kill, id) && len(kill) < 2 {
			kill = append(kill, id)
		}
	}
	for _, id := range kill {
		n := h.nodeByID(id)
		if err := n.Kill(); err != nil {
			t.Fatal(err)
		}
		t.Logf("node %d killed while the groups move", id)
		other := h.nodeByID(4)
		h.waitFor(30*time.Second, fmt.Sprintf("the controller and the groups led without node %d", id), func() error {
			st, err := h.status(other)
			if err != nil {
				return err
			}
			if st.Controller.Leader < 0 || int(st.Controller.Leader) == id {
				return fmt.Errorf("controller leader %d", st.Controller.Leader)
			}
			for _, g := range st.Groups {
				if g.Leader < 0 || int(g.Leader) == id {
					return fmt.Errorf("group %s leader %d", g.Name, g.Leader)
				}
			}
			return nil
		})
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		if err := n.WaitReady(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		h.waitCaughtUp(n, 60*time.Second)
	}
}

// logGoroutines logs every running node's goroutines (from its admin endpoint), to see
// what a node that does not move on is waiting for.
func (h *clusterHarness) logGoroutines() {
	for _, n := range h.running() {
		resp, err := http.Get("http://" + n.AdminAddr + "/debug/pprof/goroutine?debug=2")
		if err != nil {
			h.t.Logf("%s goroutines: %v", n.Name, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h.t.Logf("=== goroutines of %s:\n%s", n.Name, b)
	}
}

// joinNode4 starts a fourth node that joins the cluster through n1 (`--join`), and waits
// until every running node sees it alive.
func (h *clusterHarness) joinNode4(n1 *testnode.Node) *testnode.Node {
	t := h.t
	t.Helper()
	raftAddr, adminAddr := testnode.FreeAddr(t), testnode.FreeAddr(t)
	n4 := testnode.New(t, testnode.Config{Name: "node4", Args: []string{
		"--node-id", "4", "--raft-listen", raftAddr, "--join", n1.RaftAddr,
		"--admin-listen", adminAddr, "--raft-election-timeout", electionTimeout.String(),
	}})
	n4.ID, n4.RaftAddr, n4.AdminAddr = 4, raftAddr, adminAddr
	if err := n4.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n4.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	h.c.Nodes = append(h.c.Nodes, n4)
	h.waitFor(30*time.Second, "node 4 alive in every node's view", func() error {
		for _, n := range h.running() {
			st, err := h.status(n)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(st.Nodes, func(ns replication.NodeStatus) bool { return ns.ID == 4 && ns.Alive }) {
				return fmt.Errorf("%s does not see node 4 alive", n.Name)
			}
		}
		return nil
	})
	return n4
}

// Partitions move with their data group, and Kafka's reassignment APIs say so. While a
// rebalance moves two groups to a node that joined (held up by a SIGSTOP of that node),
// ListPartitionReassignments lists exactly the partitions of the moving groups, the new
// node adding and the old member removing; once the moves are done, none.
// AlterPartitionReassignments accepts a partition's own replicas, refuses others with a
// message naming the partition's group, and finds no reassignment to cancel.
func TestClusterPartitionReassignments(t *testing.T) {
	h := startClusterHarness(t)
	const topic, partitions = "reassigned", 6
	h.createTopic(topic, partitions)
	n1 := h.nodeByID(1)
	n4 := h.joinNode4(n1)
	if err := n4.Pause(); err != nil {
		t.Fatal(err)
	}
	p := runProg(t, time.Minute, "", testnode.Binary(t), "cluster", "rebalance", "--admin", n1.AdminAddr)
	if p.code != 0 {
		t.Fatalf("rebalance: exit %d\nstdout:\n%s\nstderr:\n%s", p.code, p.stdout, p.stderr)
	}
	st, err := h.status(n1)
	if err != nil {
		t.Fatal(err)
	}
	moving := map[string]replication.GroupStatus{}
	for _, g := range st.Groups {
		if len(g.Joining) > 0 || len(g.Removing) > 0 {
			moving[g.Name] = g
		}
	}
	if len(moving) != 2 {
		t.Fatalf("groups moving after the rebalance: %v, want 2 (rebalance said:\n%s)", moving, p.stdout)
	}

	adm := kadm.NewClient(h.client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := kadm.TopicsSet{}
	for i := range int32(partitions) {
		all.Add(topic, i)
	}
	listed, err := adm.ListPartitionReassignments(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, ps := range st.Partitions {
		if ps.Topic != topic {
			continue
		}
		g, ok := moving[ps.Group]
		r, listedOK := listed[topic][ps.Partition]
		if !ok {
			if listedOK {
				t.Errorf("%s-%d (group %s, not moving) listed as reassigned: %+v", topic, ps.Partition, ps.Group, r)
			}
			continue
		}
		want++
		wantReplicas := append(slices.Clone(g.Members), g.Removing...)
		if !listedOK || !slices.Equal(r.Replicas, ids32(wantReplicas)) || !slices.Equal(r.AddingReplicas, ids32(g.Joining)) || !slices.Equal(r.RemovingReplicas, ids32(g.Removing)) {
			t.Errorf("%s-%d (group %s: members %v, joining %v, removing %v) listed %v as %+v", topic, ps.Partition, ps.Group, g.Members, g.Joining, g.Removing, listedOK, r)
		}
		if !slices.Contains(r.AddingReplicas, 4) {
			t.Errorf("%s-%d: node 4 not among the replicas being added: %+v", topic, ps.Partition, r)
		}
	}
	if want == 0 || len(listed[topic]) != want {
		t.Fatalf("%d partitions of %s listed as reassigned, want %d (those of groups %v): %+v", len(listed[topic]), topic, want, slices.Sorted(maps.Keys(moving)), listed)
	}
	t.Logf("while groups %v move: %d of %s's partitions listed as reassigned", slices.Sorted(maps.Keys(moving)), want, topic)

	if err := n4.Resume(); err != nil {
		t.Fatal(err)
	}
	h.waitFor(60*time.Second, "the moves done", func() error {
		st, err := h.status(n1)
		if err != nil {
			return err
		}
		for _, g := range st.Groups {
			if len(g.Joining) > 0 || len(g.Removing) > 0 {
				return fmt.Errorf("group %s still moving", g.Name)
			}
		}
		return nil
	})
	// Every partition of every topic: none being reassigned.
	req := kmsg.NewPtrListPartitionReassignmentsRequest()
	resp, err := req.RequestWith(ctx, h.client())
	if err != nil || resp.ErrorCode != 0 || len(resp.Topics) != 0 {
		t.Fatalf("reassignments listed after the moves: %+v, %v; want none", resp, err)
	}

	st, err = h.status(n1)
	if err != nil {
		t.Fatal(err)
	}
	replicas, groups := map[int32][]int32{}, map[int32]string{}
	for _, ps := range st.Partitions {
		if ps.Topic == topic {
			replicas[ps.Partition], groups[ps.Partition] = ids32(ps.Replicas), ps.Group
		}
	}
	own := replicas[0]
	other := slices.Clone(replicas[1])
	other[0], other[1] = other[1], other[0]
	var alter kadm.AlterPartitionAssignmentsReq
	alter.Assign(topic, 0, own)
	alter.Assign(topic, 1, other)
	alter.Assign(topic, 2, nil)
	alter.Assign(topic, 9, own)
	res, err := adm.AlterPartitionAssignments(ctx, alter)
	if err != nil {
		t.Fatal(err)
	}
	r0, r1, r2, r9 := res[topic][0], res[topic][1], res[topic][2], res[topic][9]
	if r0.Err != nil {
		t.Errorf("reassigning %s-0 to its own replicas %v: %v (%s)", topic, own, r0.Err, r0.ErrMessage)
	}
	if !errors.Is(r1.Err, kerr.InvalidReplicaAssignment) || !strings.Contains(r1.ErrMessage, groups[1]) || !strings.Contains(r1.ErrMessage, "sluice cluster rebalance") {
		t.Errorf("reassigning %s-1 to %v: %v (%s), want INVALID_REPLICA_ASSIGNMENT naming its group %s and the rebalance", topic, other, r1.Err, r1.ErrMessage, groups[1])
	}
	if !errors.Is(r2.Err, kerr.NoReassignmentInProgress) {
		t.Errorf("cancelling %s-2's reassignment: %v, want NO_REASSIGNMENT_IN_PROGRESS", topic, r2.Err)
	}
	if !errors.Is(r9.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("reassigning %s-9: %v, want UNKNOWN_TOPIC_OR_PARTITION", topic, r9.Err)
	}
	t.Logf("reassigning %s-1 to %v: %s", topic, other, r1.ErrMessage)
}

// ids32 converts node IDs to Kafka broker IDs.
func ids32(ids []replication.NodeID) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}
