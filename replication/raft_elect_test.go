package replication

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// With automatic hand-back off, a group led by another member stays so until asked:
// ElectPreferred, asked of a node that does not lead the group, has the leader hand it to
// the preferred member, and returns once the asking node sees that member lead. Asked
// again, no election is needed; with the preferred member down, none can be held.
func TestRaftElectPreferred(t *testing.T) {
	// An election timeout longer than the other tests': no election of its own may move
	// leadership while the test looks at it.
	c := newTestCluster(t, 3, func(cfg *ClusterConfig) {
		cfg.NoAutoLeaderRebalance, cfg.ElectionTimeout = true, time.Second
	})
	key := c.createTopic("elect", 1)[0]
	c.produce(key, "first")
	leader := c.leaderOf(key, 10*time.Second)
	g := groupOfKey(leader, key)
	preferred := g.spec.Load().Members[0]

	// awayFrom moves the group's leadership from the preferred member to another one.
	awayFrom := func() *testNode {
		t.Helper()
		l := c.leaderOf(key, 10*time.Second)
		if l.cfg.NodeID == preferred {
			lg := groupOfKey(l, key)
			others := otherVoters(t, lg.raft, l.cfg.NodeID)
			for _, s := range lg.raft.GetConfiguration().Configuration().Servers {
				if parseServerID(s.ID) == others[0] {
					if err := transferTo(context.Background(), lg.raft, s); err != nil {
						t.Fatalf("hand group %s from node %d to %d: %v", lg.name, l.cfg.NodeID, others[0], err)
					}
				}
			}
		}
		var now *testNode
		waitFor(t, 10*time.Second, "a leader other than the preferred member", func() bool {
			now = c.leaderOf(key, 10*time.Second)
			return now.cfg.NodeID != preferred
		})
		return now
	}
	current := awayFrom()
	var asker *testNode // neither the leader nor the preferred member: the request goes over the wire
	for _, n := range c.nodes {
		if n.cfg.NodeID != current.cfg.NodeID && n.cfg.NodeID != preferred {
			asker = n
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := asker.repl.ElectPreferred(ctx, key); err != nil {
		t.Fatalf("node %d electing node %d for group %s (led by %d): %v", asker.cfg.NodeID, preferred, g.name, current.cfg.NodeID, err)
	}
	if l := asker.repl.Leadership(key).Leader; l != preferred {
		t.Fatalf("after the election node %d sees node %d lead, want %d", asker.cfg.NodeID, l, preferred)
	}
	if l := c.leaderOf(key, 10*time.Second); l.cfg.NodeID != preferred {
		t.Fatalf("node %d leads after the election, want %d", l.cfg.NodeID, preferred)
	}
	c.produce(key, "second")
	c.converge(key, []string{"first", "second"})
	if err := current.repl.ElectPreferred(ctx, key); !errors.Is(err, ErrElectionNotNeeded) {
		t.Fatalf("electing the preferred member that leads: %v, want ErrElectionNotNeeded", err)
	}

	// The preferred member down: the leader refuses, and keeps leading.
	current = awayFrom()
	c.nodes[preferred-1].close()
	c.nodes[preferred-1] = nil
	cg := groupOfKey(current, key)
	waitFor(t, 10*time.Second, "the leader's heartbeats to the stopped node fail", func() bool {
		failing, _ := cg.peers.state(serverID(preferred))
		return failing
	})
	if err := current.repl.ElectPreferred(ctx, key); !errors.Is(err, ErrPreferredLeaderNotAvailable) {
		t.Fatalf("electing a stopped preferred member: %v, want ErrPreferredLeaderNotAvailable", err)
	}
	if cg.raft.State() != raft.Leader {
		t.Fatalf("node %d gave up leading group %s over an election it refused", current.cfg.NodeID, cg.name)
	}
	c.produce(key, "third")
}
