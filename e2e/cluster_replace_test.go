package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testnode"
)

// A node whose disk is lost is replaced by starting the same node ID with an empty data
// directory: it gets the controller's metadata and each group's snapshot, copies the
// partitions' data from the leader, and then holds everything: with the leader killed and
// the other follower restarted behind it, it leads, and the whole history reads back.
func TestClusterNodeReplacedEmpty(t *testing.T) {
	h := startClusterHarness(t, "--raft-groups-per-node", "1",
		"--raft-snapshot-threshold", "100", "--raft-snapshot-interval", "200ms", "--raft-trailing-logs", "10")
	const topic, partitions = "replaced", 4
	h.createTopic(topic, partitions)
	counts := h.leaderCounts(topic)
	if len(counts) != 1 {
		t.Fatalf("one data group should lead every partition: %v", counts)
	}
	var leaderID int
	for id := range counts {
		leaderID = id
	}
	var followers []*testnode.Node
	for _, n := range h.c.Nodes {
		if n.ID != leaderID {
			followers = append(followers, n)
		}
	}
	f, other := followers[0], followers[1]
	ch := newChecker()
	l := h.startLoad(topic, partitions, 2, 64, ch)
	h.waitFor(30*time.Second, "acknowledgements", func() error {
		if n := ch.ackCount(); n < 5000 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	if err := f.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(f.DataDir); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	t.Logf("%s killed and its data directory removed at %s", f.Name, down.Format("15:04:05.000"))
	h.waitFor(20*time.Second, "writes continue without it", func() error {
		return ch.ackedSince(down, partitions)
	})
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s started empty at %s", f.Name, time.Now().Format("15:04:05.000"))
	h.waitCaughtUp(f, 90*time.Second)
	// Only the leader and f now: writes need f's acknowledgement.
	if err := other.Kill(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	h.waitFor(30*time.Second, "writes acknowledged by the leader and the replaced node", func() error {
		return ch.ackedSince(stopped, partitions)
	})
	l.stopLoad()
	if err := h.nodeByID(leaderID).Kill(); err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitServing(topic, partitions, 60*time.Second)
	if counts := h.leaderCounts(topic); counts[f.ID] != partitions {
		t.Fatalf("leaders after the failover %v, want %s leading all", counts, f.Name)
	}
	h.verify(topic, partitions, ch)
}
