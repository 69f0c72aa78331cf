package replication

import (
	"fmt"
	"testing"
	"time"
)

// A group whose last entries are a new leader's no-op and barrier, which never reach the
// state machine, shows every member applied up to its commit index: it is not behind.
func TestStatusIdleGroupApplied(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	key := c.createTopic("idle", 1)[0]
	c.produce(key, "one")
	c.converge(key, []string{"one"})
	leader := c.leaderOf(key, 10*time.Second)
	g := groupOfKey(leader, key)
	// A new leader commits a no-op and a barrier and nothing else.
	if err := g.raft.LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	var next *testNode
	waitFor(t, 10*time.Second, "a new leader ready", func() bool {
		next = c.leaderOf(key, 10*time.Second)
		return next != leader
	})
	waitFor(t, 10*time.Second, "every member applied to the commit index", func() bool {
		for _, n := range c.nodes {
			if err := idleApplied(n, g.name); err != nil {
				t.Log(err)
				return false
			}
		}
		return true
	})
	// The entries past the last one the state machine saw are Raft's own.
	ng := groupOfKey(next, key)
	if f, commit := ng.fsm.applied.Load(), ng.raft.CommitIndex(); f >= commit {
		t.Fatalf("the state machine applied %d, commit %d: the new leader committed no entry of its own", f, commit)
	}
}

// groupOfKey returns the group n runs for key.
func groupOfKey(n *testNode, key string) *dataGroup {
	n.repl.mu.Lock()
	defer n.repl.mu.Unlock()
	return n.repl.keys[key]
}

func idleApplied(n *testNode, group string) error {
	for _, gs := range Status(n.cfg.NodeID, n.ctrl, n.repl).Groups {
		if gs.Name != group {
			continue
		}
		if gs.CommitIndex == 0 || gs.AppliedIndex != gs.CommitIndex {
			return fmt.Errorf("node %d: group %s commit %d applied %d", n.cfg.NodeID, group, gs.CommitIndex, gs.AppliedIndex)
		}
		return nil
	}
	return fmt.Errorf("node %d: no status for group %s", n.cfg.NodeID, group)
}
