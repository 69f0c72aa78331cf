package e2e

import (
	"fmt"
	"testing"
	"time"
)

// SIGTERM of a node leading data groups, under load: before it exits, each group it led
// has a new leader (it handed leadership over, as Kafka's controlled shutdown moves
// partition leadership), so no partition waits for an election timeout; the node exits
// cleanly, comes back, and every acknowledged record is there exactly once.
func TestClusterStopHandsOffLeadership(t *testing.T) {
	h := startClusterHarness(t)
	const topic, partitions = "handoff", 6
	h.createTopic(topic, partitions)
	ch := newChecker()
	l := h.startLoad(topic, partitions, 2, 64, ch)
	h.waitAcked(ch, 2000, "acknowledgements before the stop")

	victim := h.leaderOfMost(topic)
	st, err := h.status(victim)
	if err != nil {
		t.Fatal(err)
	}
	var led []string
	for _, g := range st.Groups {
		if g.Local && g.Ready && g.Partitions > 0 {
			led = append(led, g.Name)
		}
	}
	if len(led) == 0 {
		t.Fatalf("%s leads no data group with partitions", victim.Name)
	}
	if err := victim.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// Right after the process is gone, each group it led already has its next leader,
	// which knows it: with the election timeout of 500 ms, a group left leaderless would
	// still have none.
	for _, name := range led {
		var leaders []string
		for _, n := range h.running() {
			st, err := h.status(n)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range st.Groups {
				if g.Name == name && g.Local && int(g.Leader) == n.ID {
					leaders = append(leaders, n.Name)
				}
			}
		}
		if len(leaders) != 1 {
			t.Errorf("group %s, led by %s before its SIGTERM: leaders among the others right after it exited: %v, want one", name, victim.Name, leaders)
		}
	}
	h.waitServing(topic, partitions, 30*time.Second)
	h.waitFor(30*time.Second, "every partition acknowledging after the stop", func() error {
		return ch.ackedSince(stopped, partitions)
	})
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitCaughtUp(victim, 60*time.Second)
	back := time.Now()
	h.waitFor(30*time.Second, "acknowledgements after the return", func() error {
		return ch.ackedSince(back, partitions)
	})
	l.stopLoad()
	h.verify(topic, partitions, ch)
	t.Logf("%s handed off %d groups: %v", victim.Name, len(led), fmt.Sprint(led))
}

// A rolling restart under load, as an upgrade does it: each node in turn gets SIGTERM,
// comes back and catches up before the next one stops. Writes go on through every stop,
// leadership ends spread over the three nodes again, no write fails, and every
// acknowledged record is there exactly once.
func TestClusterRollingRestart(t *testing.T) {
	h := startClusterHarness(t)
	const topic, partitions = "rolling", 6
	h.createTopic(topic, partitions)
	ch := newChecker()
	l := h.startLoad(topic, partitions, 2, 64, ch)
	h.waitAcked(ch, 2000, "acknowledgements before the first stop")
	for _, n := range h.c.Nodes {
		if err := n.Stop(); err != nil {
			t.Fatalf("stop %s: %v", n.Name, err)
		}
		stopped := time.Now()
		h.waitServing(topic, partitions, 30*time.Second)
		h.waitFor(30*time.Second, "every partition acknowledging while "+n.Name+" is stopped", func() error {
			return ch.ackedSince(stopped, partitions)
		})
		if err := n.Start(); err != nil {
			t.Fatalf("start %s: %v", n.Name, err)
		}
		h.waitCaughtUp(n, 60*time.Second)
		back := time.Now()
		h.waitFor(30*time.Second, "every partition acknowledging after "+n.Name+" came back", func() error {
			return ch.ackedSince(back, partitions)
		})
	}
	h.waitFor(60*time.Second, "leadership spread over the three nodes again", func() error {
		if c := h.leaderCounts(topic); len(c) != 3 || c[-1] > 0 {
			return fmt.Errorf("partitions led per node: %v", c)
		}
		return nil
	})
	l.stopLoad()
	h.verify(topic, partitions, ch)
	// A stopping node hands its work over, so no write fails, not even for a retry.
	if failed, firstErr := ch.failures(); failed > 0 {
		t.Fatalf("%d records failed during the rolling restart; the first: %v", failed, firstErr)
	}
}
