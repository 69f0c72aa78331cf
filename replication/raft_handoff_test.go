package replication

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// otherVoters lists the voters of r's configuration other than self, in configuration
// order: hashicorp's LeadershipTransfer takes the first of those with the highest next
// index.
func otherVoters(t *testing.T, r *raft.Raft, self NodeID) []NodeID {
	t.Helper()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	var ids []NodeID
	for _, s := range f.Configuration().Servers {
		if id := parseServerID(s.ID); id != self && s.Suffrage == raft.Voter {
			ids = append(ids, id)
		}
	}
	return ids
}

// A leader handing off a data group while one follower is down hands it to the live
// one, even when the dead one would win hashicorp's own pick: it stopped caught up, ties
// with the live one (no entry is written after it stops) and comes first in the
// configuration. Writes then go on at the live one.
func TestRaftHandOffSkipsDeadMember(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	key := c.createTopic("handoff-dead", 1)[0]
	c.produce(key, "before")
	c.converge(key, []string{"before"})
	leader := c.leaderOf(key, 10*time.Second)
	g := groupOfKey(leader, key)
	followers := otherVoters(t, g.raft, leader.cfg.NodeID)
	if len(followers) != 2 {
		t.Fatalf("group %s voters other than the leader: %v, want 2", g.name, followers)
	}
	deadID, liveID := followers[0], followers[1]
	waitFor(t, 10*time.Second, "both followers hold the leader's last entry", func() bool {
		last := g.raft.LastIndex()
		for _, id := range followers {
			fg := c.nodes[id-1].group(g.name)
			if fg == nil || fg.raft.LastIndex() != last {
				return false
			}
		}
		return true
	})

	c.nodes[deadID-1].close()
	c.nodes[deadID-1] = nil
	waitFor(t, 10*time.Second, "the leader's heartbeats to the stopped node fail", func() bool {
		failing, _ := g.peers.state(serverID(deadID))
		return failing
	})
	if g.raft.State() != raft.Leader {
		t.Fatalf("node %d no longer leads %s", leader.cfg.NodeID, g.name)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := leader.repl.HandOff(ctx); err != nil || n != 1 {
		t.Fatalf("hand off with node %d down: %d groups, %v; want 1", deadID, n, err)
	}
	if next := c.leaderOf(key, 10*time.Second); next.cfg.NodeID != liveID {
		t.Fatalf("after HandOff node %d leads %s, want the live follower %d", next.cfg.NodeID, key, liveID)
	}
	c.produce(key, "after")
	c.converge(key, []string{"before", "after"})
	if l := c.leaderOf(key, 10*time.Second); l.cfg.NodeID != liveID {
		t.Fatalf("node %d leads %s after the write, want %d", l.cfg.NodeID, key, liveID)
	}

	// A target whose transfer fails (here the stopped node, as if not yet noticed) is
	// followed by the next one.
	next := c.nodes[liveID-1]
	ng := next.group(g.name)
	servers := map[NodeID]raft.Server{}
	for _, s := range ng.raft.GetConfiguration().Configuration().Servers {
		servers[parseServerID(s.ID)] = s
	}
	to, err := handOffLeadership(ctx, ng.raft, []raft.Server{servers[deadID], servers[leader.cfg.NodeID]})
	if err != nil || to != leader.cfg.NodeID {
		t.Fatalf("hand off to node %d (down), then %d: went to %d, %v", deadID, leader.cfg.NodeID, to, err)
	}
	if l := c.leaderOf(key, 10*time.Second); l != leader {
		t.Fatalf("node %d leads %s, want %d", l.cfg.NodeID, key, leader.cfg.NodeID)
	}
	c.produce(key, "back")
	c.converge(key, []string{"before", "after", "back"})
}

// The controller's leader, handing off while one member is down, hands its leadership
// to the live member, even when the dead one would win hashicorp's own pick; the
// controller then takes changes again.
func TestRaftControllerHandOffSkipsDeadMember(t *testing.T) {
	nodes := startCtrlCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var leader *ctrlNode
	waitFor(t, 10*time.Second, "a controller leader that registered every node", func() bool {
		for _, n := range nodes {
			st := n.ctrl.State()
			if n.ctrl.raft.State() != raft.Leader || len(st.Nodes) != 3 {
				continue
			}
			for _, m := range st.Nodes {
				if !m.Alive {
					return false
				}
			}
			leader = n
			return true
		}
		return false
	})
	followers := otherVoters(t, leader.ctrl.raft, leader.cfg.NodeID)
	if len(followers) != 2 {
		t.Fatalf("controller voters other than the leader: %v, want 2", followers)
	}
	deadID, liveID := followers[0], followers[1]
	waitFor(t, 10*time.Second, "both followers hold the leader's last entry", func() bool {
		last := leader.ctrl.raft.LastIndex()
		for _, id := range followers {
			if nodes[id-1].ctrl.raft.LastIndex() != last {
				return false
			}
		}
		return true
	})

	nodes[deadID-1].stop()
	nodes[deadID-1] = nil
	waitFor(t, 10*time.Second, "the leader's heartbeats to the stopped node fail", func() bool {
		failing, _ := leader.ctrl.peers.state(serverID(deadID))
		return failing
	})
	if err := leader.ctrl.HandOff(ctx); err != nil {
		t.Fatalf("hand off with node %d down: %v", deadID, err)
	}
	live := nodes[liveID-1]
	waitFor(t, 10*time.Second, "the live follower leads the controller", func() bool {
		id, _ := live.ctrl.Leader()
		return id == liveID && live.ctrl.raft.State() == raft.Leader
	})
	if _, err := live.ctrl.AllocateProducerIDs(ctx, 10); err != nil {
		t.Fatalf("a change after the hand-off: %v", err)
	}
}
