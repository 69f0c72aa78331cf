package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/testnode"
	"github.com/sluicemq/sluice/replication"
)

// The cluster tests run three real `sluice serve` processes on 127.0.0.1 with their own
// data dirs and ports (internal/testnode), idempotent acks=all franz-go producers, and a
// checker that reads everything back (cluster_harness_test.go).

// kill -9 of the node leading the most partitions under load: new leaders serve within a
// few seconds, and afterwards every acknowledged record is there exactly once.
func TestClusterLeaderKill(t *testing.T) {
	h := startClusterHarness(t)
	const topic, partitions = "orders", 6
	h.createTopic(topic, partitions)
	ch := newChecker()
	l := h.startLoad(topic, partitions, 2, 64, ch)
	h.waitAcked(ch, 2000, "acknowledgements before the kill")
	victim := h.leaderOfMost(topic)
	killed := time.Now()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s", victim.Name)
	h.waitServing(topic, partitions, 30*time.Second)
	serving := time.Since(killed)
	h.waitFor(30*time.Second, "every partition acknowledging again", func() error {
		return ch.ackedSince(killed.Add(serving), partitions)
	})
	t.Logf("new leaders serving %v after the kill, every partition acknowledging %v after it", serving.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	afterKill := ch.ackCount()
	h.waitAcked(ch, afterKill+2000, "load on the new leaders")
	// The killed node comes back, catches up and takes its preferred partitions back.
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitCaughtUp(victim, 60*time.Second)
	h.waitFor(60*time.Second, victim.Name+" leading again", func() error {
		if c := h.leaderCounts(topic); c[victim.ID] == 0 {
			return fmt.Errorf("leaders %v", c)
		}
		return nil
	})
	back := time.Now()
	h.waitFor(30*time.Second, "acknowledgements after the return", func() error {
		return ch.ackedSince(back, partitions)
	})
	l.stopLoad()
	h.verify(topic, partitions, ch)
}

// kill -9 of a follower: writes go on; the follower restarts and catches up, and then
// holds everything: with the old leader killed and the other follower restarted far
// behind, it is the one that leads, and the whole history reads back from it. Snapshots
// are frequent and few entries are kept behind them, so a returning follower gets a
// snapshot and copies the partition data it missed from the leader.
func TestClusterFollowerKill(t *testing.T) {
	followerReturns(t, "events", func(h *clusterHarness, f *testnode.Node, ch *checker, down time.Time) {
		before := ch.ackCount()
		h.waitFor(20*time.Second, "more writes while it is down", func() error {
			if n := ch.ackCount(); n < before+5000 || time.Since(down) < 2*time.Second {
				return fmt.Errorf("%d acknowledged", n)
			}
			return nil
		})
	})
}

// followerReturns is a follower's return under load, as TestClusterFollowerKill and
// TestClusterNodeReplacedEmpty run it: one data group leads the topic's partitions; a
// follower f is killed, whileDown runs (writes go on meanwhile), f restarts and catches
// up; then the other follower is killed and writes need f; then the leader is killed and
// the other follower restarted behind f, so f must lead every partition, and every
// acknowledged record reads back from it exactly once.
func followerReturns(t *testing.T, topic string, whileDown func(h *clusterHarness, f *testnode.Node, ch *checker, down time.Time)) {
	t.Helper()
	h := startClusterHarness(t, "--raft-groups-per-node", "1",
		"--raft-snapshot-threshold", "100", "--raft-snapshot-interval", "200ms", "--raft-trailing-logs", "10")
	const partitions = 4
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
	h.waitAcked(ch, 5000, "acknowledgements")
	if err := f.Kill(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	t.Logf("%s killed at %s", f.Name, down.Format("15:04:05.000"))
	h.waitFor(20*time.Second, "writes continue without the follower", func() error {
		return ch.ackedSince(down, partitions)
	})
	whileDown(h, f, ch, down)
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s restarted at %s", f.Name, time.Now().Format("15:04:05.000"))
	h.waitCaughtUp(f, 90*time.Second)
	// Only the leader and f now: writes need f's acknowledgement.
	if err := other.Kill(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	t.Logf("%s killed at %s", other.Name, stopped.Format("15:04:05.000"))
	h.waitFor(30*time.Second, "writes acknowledged by the leader and the restarted follower", func() error {
		return ch.ackedSince(stopped, partitions)
	})
	l.stopLoad()
	// The old leader goes; the other follower, behind, comes back: f has the longest log
	// and wins the election.
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

// SIGSTOP of a leader for several election timeouts, then SIGCONT: others take over, the
// old leader steps down, nothing acknowledged is lost or stored twice.
func TestClusterLeaderPause(t *testing.T) {
	h := startClusterHarness(t)
	const topic, partitions = "paused", 6
	h.createTopic(topic, partitions)
	ch := newChecker()
	l := h.startLoad(topic, partitions, 2, 64, ch)
	h.waitAcked(ch, 1000, "acknowledgements")
	victim := h.leaderOfMost(topic)
	before, err := h.status(victim)
	if err != nil {
		t.Fatal(err)
	}
	led := map[string]uint64{}
	for _, g := range before.Groups {
		if g.Ready {
			led[g.Name] = g.Term
		}
	}
	if err := victim.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	// While it is stopped the others elect new leaders and acknowledge writes.
	h.waitFor(30*time.Second, "new leaders while the old one is stopped", func() error {
		for _, n := range h.running() {
			if n == victim {
				continue
			}
			st, err := h.status(n)
			if err != nil {
				return err
			}
			for _, p := range st.Partitions {
				if p.Topic == topic && p.Leader == replicationNodeID(victim.ID) {
					return fmt.Errorf("%s still names %s leader of %s-%d", n.Name, victim.Name, topic, p.Partition)
				}
			}
		}
		return nil
	})
	h.waitFor(30*time.Second, "acknowledgements while stopped", func() error {
		return ch.ackedSince(paused.Add(electionTimeout), partitions)
	})
	if time.Since(paused) < 4*electionTimeout {
		time.Sleep(4*electionTimeout - time.Since(paused))
	}
	if err := victim.Resume(); err != nil {
		t.Fatal(err)
	}
	// The old leader steps down in every group it led: a higher term, someone else leads.
	h.waitFor(30*time.Second, victim.Name+" stepping down", func() error {
		st, err := h.status(victim)
		if err != nil {
			return err
		}
		for _, g := range st.Groups {
			if term, ok := led[g.Name]; ok && (g.Term <= term || g.Leader == st.NodeID) {
				return fmt.Errorf("group %s: leader %d term %d (led at term %d)", g.Name, g.Leader, g.Term, term)
			}
		}
		return nil
	})
	resumed := time.Now()
	h.waitFor(30*time.Second, "acknowledgements after the resume", func() error {
		return ch.ackedSince(resumed, partitions)
	})
	l.stopLoad()
	h.verify(topic, partitions, ch)
}

// All three killed and restarted: the whole history replays and a group's committed
// offsets are intact. Snapshots are taken often, so the restart cuts partitions back to a
// snapshot and replays the Raft log from there.
func TestClusterFullRestart(t *testing.T) {
	h := startClusterHarness(t, "--raft-snapshot-threshold", "200", "--raft-snapshot-interval", "500ms", "--raft-trailing-logs", "200")
	const topic, partitions, group = "history", 4, "replayers"
	h.createTopic(topic, partitions)
	ch := newChecker()
	l := h.startLoad(topic, partitions, 2, 64, ch)
	h.waitAcked(ch, 3000, "acknowledgements")
	// Some snapshots were taken and Raft dropped log heads.
	h.waitFor(30*time.Second, "snapshots", func() error {
		n := h.c.Nodes[0]
		for _, dir := range []string{"groups"} {
			matches, _ := filepath.Glob(filepath.Join(n.DataDir, "raft", dir, "*", "snapshots", "*", "meta.json"))
			if len(matches) == 0 {
				return fmt.Errorf("no snapshot under %s", n.DataDir)
			}
		}
		return nil
	})
	l.stopLoad()

	// A consumer group reads part of it and commits.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gcl := h.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	read := 0
	for read < 500 {
		fs := gcl.PollRecords(ctx, 100)
		if ctx.Err() != nil {
			t.Fatalf("group consume: %v", ctx.Err())
		}
		fs.EachError(func(t2 string, p int32, err error) { t.Logf("group fetch %s-%d: %v", t2, p, err) })
		read += fs.NumRecords()
		if err := gcl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	adm := kadm.NewClient(h.client())
	committed, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	gcl.Close()

	var wg sync.WaitGroup
	for _, n := range h.c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Kill(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, n := range h.c.Nodes {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.c.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	h.waitServing(topic, partitions, 60*time.Second)
	h.verify(topic, partitions, ch)
	var after kadm.OffsetResponses
	h.waitFor(60*time.Second, "committed offsets after the restart", func() error {
		var err error
		after, err = adm.FetchOffsets(ctx, group)
		if err == nil {
			err = after.Error()
		}
		return err
	})
	committed.Each(func(o kadm.OffsetResponse) {
		a, ok := after.Lookup(o.Topic, o.Partition)
		if !ok || a.At != o.At {
			t.Errorf("%s-%d: committed %d before the restart, %d after (found %v)", o.Topic, o.Partition, o.At, a.At, ok)
		}
	})
}

// kill -9 of the controller leader while topics are being created from every node: every
// creation that succeeded is there, on every node, with leaders; none is half made.
func TestClusterControllerKill(t *testing.T) {
	h := startClusterHarness(t)
	st, err := h.status(h.c.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	ctrl := h.nodeByID(int(st.Controller.Leader))
	var mu sync.Mutex
	created := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, n := range h.c.Nodes {
		if n == ctrl {
			continue
		}
		adm := kadm.NewClient(h.client(kgo.SeedBrokers(n.Addr), kgo.RequestTimeoutOverhead(20*time.Second)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("t%d-%d", i, k)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				resp, err := adm.CreateTopic(ctx, 3, -1, nil, name)
				cancel()
				if err == nil {
					err = resp.Err
				}
				mu.Lock()
				if err == nil {
					created[name] = true
				}
				mu.Unlock()
			}
		}()
	}
	h.waitFor(30*time.Second, "topics created before the kill", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(created) < 5 {
			return fmt.Errorf("%d created", len(created))
		}
		return nil
	})
	if err := ctrl.Kill(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	atKill := len(created)
	mu.Unlock()
	h.waitFor(60*time.Second, "topics created after the kill", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(created) < atKill+5 {
			return fmt.Errorf("%d created, %d at the kill", len(created), atKill)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if err := ctrl.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ctrl.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Every node, the restarted one too, lists every created topic, whole.
	h.waitFor(60*time.Second, "every node lists the created topics", func() error {
		for _, n := range h.c.Nodes {
			st, err := h.status(n)
			if err != nil {
				return err
			}
			parts := map[string]int{}
			for _, p := range st.Partitions {
				parts[p.Topic]++
			}
			for name := range created {
				if parts[name] != 3 {
					return fmt.Errorf("%s lists %d partitions of %s", n.Name, parts[name], name)
				}
			}
		}
		return nil
	})
	for name := range created {
		h.waitServing(name, 3, 60*time.Second)
	}
	// And they take writes.
	cl := h.client(kgo.RequiredAcks(kgo.AllISRAcks()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for name := range created {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: name, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", name, err)
		}
	}
	t.Logf("%d topics created across the controller kill (%d before it)", len(created), atKill)
}

func replicationNodeID(id int) replication.NodeID { return replication.NodeID(id) }
