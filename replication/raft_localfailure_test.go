package replication

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A replica whose Apply fails for a reason of its own (a full disk) does not go on
// without the entry: its group applies it again until it succeeds, so the replica ends
// with every entry, in order, like the others; on the leader, the submitter gets the
// entry's offset once it applies.
func TestRaftApplyRetriedAfterLocalFailure(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	key := c.createTopic("full", 1)[0]
	var want []string
	write := func(tag string, n int) {
		for i := range n {
			v := fmt.Sprintf("%s-%d", tag, i)
			if off := c.produce(key, v); off != int64(len(want)) {
				t.Fatalf("%s: offset %d, want %d", v, off, len(want))
			}
			want = append(want, v)
		}
	}
	write("before", 3)
	c.converge(key, want)

	leader := c.leaderOf(key, 10*time.Second)
	var follower *testNode
	for _, n := range c.nodes {
		if n != leader {
			follower = n
			break
		}
	}
	setFail := func(n *testNode, k int) {
		sm := n.sm(key)
		sm.mu.Lock()
		sm.failApply = k
		sm.mu.Unlock()
	}
	failsLeft := func(n *testNode) int {
		sm := n.sm(key)
		sm.mu.Lock()
		defer sm.mu.Unlock()
		return sm.failApply
	}

	// A follower fails its next five applies: it still ends with every entry.
	setFail(follower, 5)
	write("follower-fails", 4)
	c.converge(key, want)
	if k := failsLeft(follower); k != 0 {
		t.Fatalf("follower has %d failures left; its applies were not retried", k)
	}

	// The leader fails its next three: the submitter waits, then gets the right offset.
	setFail(leader, 3)
	res, err := leader.repl.Replicate(context.Background(), key, []byte("leader-fails"))
	if err != nil {
		t.Fatalf("replicate while the leader's applies fail: %v", err)
	}
	if off, ok := res.(int64); !ok || off != int64(len(want)) {
		t.Fatalf("replicate while the leader's applies fail: result %#v, want offset %d", res, len(want))
	}
	want = append(want, "leader-fails")
	if k := failsLeft(leader); k != 0 {
		t.Fatalf("leader has %d failures left", k)
	}
	write("after", 2)
	c.converge(key, want)

	// While an entry keeps failing on the leader, its submitter's wait ends with its
	// deadline (outcome unknown), new entries are refused (ErrStorage), and once the
	// failure clears the entry applies and writes go on.
	setFail(leader, 1<<30)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = leader.repl.Replicate(ctx, key, []byte("stuck"))
	cancel()
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("replicate while the leader cannot apply: %v, want ErrOutcomeUnknown", err)
	}
	want = append(want, "stuck")
	g := groupOfKey(leader, key)
	waitFor(t, 10*time.Second, "the leader's group reports its failing apply", func() bool { return g.fsm.applyFailure() != nil })
	groupStatus := func() GroupStatus {
		for _, gs := range Status(leader.cfg.NodeID, leader.ctrl, leader.repl).Groups {
			if gs.Name == g.name {
				return gs
			}
		}
		t.Fatalf("no status for group %s", g.name)
		return GroupStatus{}
	}
	if gs := groupStatus(); !strings.Contains(gs.ApplyFailure, syscall.ENOSPC.Error()) {
		t.Fatalf("group status while an entry cannot apply: apply failure %q, want the failure (%v)", gs.ApplyFailure, syscall.ENOSPC)
	} else if gs.AppliedIndex >= gs.CommitIndex {
		t.Fatalf("group status while an entry cannot apply: applied %d, commit %d; the stuck entry counts as applied", gs.AppliedIndex, gs.CommitIndex)
	}
	if _, err := leader.repl.Replicate(context.Background(), key, []byte("refused")); !errors.Is(err, ErrStorage) {
		t.Fatalf("replicate while an entry cannot apply: %v, want ErrStorage", err)
	}
	// The other nodes learn it from the leader's heartbeats.
	failingAt := func(viewer *testNode) []string {
		for _, ns := range Status(viewer.cfg.NodeID, viewer.ctrl, viewer.repl).Nodes {
			if ns.ID == leader.cfg.NodeID {
				return ns.Disk.ApplyFailing
			}
		}
		return nil
	}
	waitFor(t, 10*time.Second, "another node shows the leader's failing apply", func() bool {
		return slices.Equal(failingAt(follower), []string{g.name})
	})
	setFail(leader, 0)
	waitFor(t, 10*time.Second, "the failure cleared", func() bool { return g.fsm.applyFailure() == nil })
	if gs := groupStatus(); gs.ApplyFailure != "" {
		t.Fatalf("group status once the entry applied: apply failure %q, want none", gs.ApplyFailure)
	}
	waitFor(t, 10*time.Second, "another node shows the failure cleared", func() bool {
		return len(failingAt(follower)) == 0
	})
	write("recovered", 2)
	c.converge(key, want)

	// A leader whose disk is nearly full refuses new entries with ErrStorage, and
	// accepts them again once space is free.
	leader.repl.space = newSpaceGuard(leader.cfg.Dir, 1<<62)
	if _, err := leader.repl.Replicate(context.Background(), key, []byte("refused")); !errors.Is(err, ErrStorage) {
		t.Fatalf("replicate on a full disk: %v, want ErrStorage", err)
	}
	leader.repl.space = newSpaceGuard(leader.cfg.Dir, 1)
	write("freed", 1)
	c.converge(key, want)
}

func TestSpaceGuard(t *testing.T) {
	dir := t.TempDir()
	if err := newSpaceGuard(dir, 1).check(); err != nil {
		t.Fatalf("1 byte kept free: %v", err)
	}
	if err := newSpaceGuard(dir, -1).check(); err != nil {
		t.Fatalf("check disabled: %v", err)
	}
	g := newSpaceGuard(dir, 1<<62)
	err := g.check()
	if !errors.Is(err, ErrStorage) {
		t.Fatalf("4 EiB kept free: %v, want ErrStorage", err)
	}
	// A look is trusted for spaceCheckEvery, then made again.
	now := time.Now()
	g.now = func() time.Time { return now }
	g.look(now)
	g.free.Store(1 << 20)
	g.min = 1 << 10
	if err := g.check(); err != nil {
		t.Fatalf("within the last look's lifetime: %v", err)
	}
	g.free.Store(0)
	if err := g.check(); !errors.Is(err, ErrStorage) {
		t.Fatalf("0 bytes at the last look: %v, want ErrStorage", err)
	}
	now = now.Add(spaceCheckEvery)
	if err := g.check(); err != nil {
		t.Fatalf("after a new look: %v", err)
	}
	// A directory that cannot be looked at keeps the last answer.
	g.dir = dir + "/missing"
	g.free.Store(0)
	now = now.Add(spaceCheckEvery)
	if err := g.check(); !errors.Is(err, ErrStorage) {
		t.Fatalf("failed look: %v, want the last answer (ErrStorage)", err)
	}
	if _, err := os.Stat(g.dir); err == nil {
		t.Fatal("the missing directory exists")
	}
}

// HandOff moves the leadership of every group this node leads to another member, and
// the controller's when it leads that; writes then go on at the new leader.
func TestRaftHandOff(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	key := c.createTopic("handoff", 1)[0]
	c.produce(key, "before")
	leader := c.leaderOf(key, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := leader.repl.HandOff(ctx); err != nil || n != 1 {
		t.Fatalf("hand off: %d groups, %v; want 1", n, err)
	}
	if l := leader.repl.Leadership(key); l.Leader == leader.cfg.NodeID || l.Local {
		t.Fatalf("after HandOff node %d still leads %s: %+v", leader.cfg.NodeID, key, l)
	}
	if next := c.leaderOf(key, 10*time.Second); next == leader {
		t.Fatalf("node %d leads %s again", leader.cfg.NodeID, key)
	}
	c.produce(key, "after")
	c.converge(key, []string{"before", "after"})

	var ctrlLeader *testNode
	for _, n := range c.nodes {
		if id, _ := n.ctrl.Leader(); id == n.cfg.NodeID {
			ctrlLeader = n
		}
	}
	if ctrlLeader == nil {
		t.Fatal("no controller leader")
	}
	if err := ctrlLeader.ctrl.HandOff(ctx); err != nil {
		t.Fatal(err)
	}
	if id, _ := ctrlLeader.ctrl.Leader(); id == ctrlLeader.cfg.NodeID {
		t.Fatalf("after HandOff node %d still leads the controller", id)
	}
}
