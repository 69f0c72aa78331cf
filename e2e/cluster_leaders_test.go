package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/sluicemq/sluice/replication"
	"github.com/sluicemq/sluice/segment/segmenttest"
)

// A produce sent to a node that does not lead the partition is answered
// NOT_LEADER_OR_FOLLOWER with the current leader, its epoch and its endpoint (KIP-951),
// so that a client moves at once instead of at its next metadata refresh; the record is
// not written. Before v10 the response has no room for them.
func TestClusterNotLeaderHint(t *testing.T) {
	h := startClusterHarness(t)
	const topic = "hints"
	h.createTopic(topic, 1)
	h.waitServing(topic, 1, 30*time.Second)

	type hint struct {
		code          int16
		leader, epoch int32
		brokers       []kmsg.ProduceResponseBroker
	}
	produceTo := func(node int, version int16) (hint, error) {
		n := h.nodeByID(node)
		cl, err := kgo.NewClient(kgo.SeedBrokers(n.Addr), kgo.MaxVersions(produceCap(version)))
		if err != nil {
			return hint{}, err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = segmenttest.Batch(1, 10, time.Now().UnixMilli(), time.Now().UnixMilli(), 'x')
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		kresp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return hint{}, err
		}
		if kresp.Version != version {
			return hint{}, fmt.Errorf("answered at v%d, want v%d", kresp.Version, version)
		}
		p := kresp.Topics[0].Partitions[0]
		return hint{p.ErrorCode, p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch, kresp.Brokers}, nil
	}
	// Leadership may move to the preferred leader meanwhile: a check counts only when the
	// leader is the same before and after it.
	h.waitFor(60*time.Second, "a NOT_LEADER_OR_FOLLOWER answer naming the leader", func() error {
		leader, epoch, err := h.leaderOf(topic)
		if err != nil {
			return err
		}
		other := 1 + int(leader)%3
		got, err := produceTo(other, 10)
		if err != nil {
			return err
		}
		if l2, e2, err := h.leaderOf(topic); err != nil || l2 != leader || e2 != epoch {
			return fmt.Errorf("leadership moved during the check (%d@%d, then %d@%d, %v)", leader, epoch, l2, e2, err)
		}
		if got.code != kerr.NotLeaderForPartition.Code {
			t.Fatalf("produce to node %d (leader %d): error %d, want NOT_LEADER_OR_FOLLOWER", other, leader, got.code)
		}
		if got.leader != leader || got.epoch != epoch {
			t.Fatalf("current leader %d epoch %d, want %d epoch %d", got.leader, got.epoch, leader, epoch)
		}
		ln := h.nodeByID(int(leader))
		host, port, _ := net.SplitHostPort(ln.Addr)
		if len(got.brokers) != 1 || got.brokers[0].NodeID != leader || got.brokers[0].Host != host ||
			strconv.Itoa(int(got.brokers[0].Port)) != port {
			t.Fatalf("node endpoints %+v, want node %d at %s", got.brokers, leader, ln.Addr)
		}
		// v9 has no fields for the hint; the error alone is answered.
		old, err := produceTo(other, 9)
		if err != nil {
			return err
		}
		if old.code != kerr.NotLeaderForPartition.Code || old.leader != -1 || len(old.brokers) != 0 {
			t.Fatalf("v9 answer: error %d leader %d endpoints %v", old.code, old.leader, old.brokers)
		}
		return nil
	})

	// Nothing was written by the refused produces.
	if end := h.endOffset(topic); end != 0 {
		t.Fatalf("%s-0 ends at %d (-1: no answer) after refused produces only", topic, end)
	}
}

// produceCap is every version franz-go knows, with Produce capped at v.
func produceCap(v int16) *kversion.Versions {
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(kmsg.Produce.Int16(), v)
	return vs
}

// A new cluster's data groups are first led by their preferred leaders, so leadership
// starts spread over the nodes and is not handed over a few seconds later, under load.
func TestClusterFirstLeadersPreferred(t *testing.T) {
	h := startClusterHarness(t)
	var groups []replication.GroupStatus
	h.waitFor(30*time.Second, "a leader in every data group", func() error {
		st, err := h.status(h.running()[0])
		if err != nil {
			return err
		}
		if len(st.Groups) == 0 {
			return fmt.Errorf("no data groups")
		}
		for _, g := range st.Groups {
			if g.Leader < 0 {
				return fmt.Errorf("group %s has no leader", g.Name)
			}
		}
		groups = st.Groups
		return nil
	})
	for _, g := range groups {
		if g.Leader != g.Members[0] {
			t.Errorf("group %s (members %v) first led by node %d", g.Name, g.Members, g.Leader)
		}
	}
	for _, n := range h.c.Nodes {
		b, err := os.ReadFile(n.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("handing leadership to the preferred leader")) {
			t.Errorf("%s handed leadership over", n.Name)
		}
	}
}

// With --auto-leader-rebalance=false, a node back from a restart takes no leadership by
// itself; `sluice cluster elect-leaders`, asked of another node under load, hands each
// partition whose preferred replica (its first) is that node back to it, and no write
// fails. Asked again through kadm's ElectLeaders (as kafka-leader-election), every
// partition answers ELECTION_NOT_NEEDED. The node stops with SIGTERM, handing its
// leadership over, and the election timeout is 2 s: no election of Raft's own moves
// leadership while the test looks at it.
func TestClusterElectLeaders(t *testing.T) {
	h := startClusterHarness(t, "--auto-leader-rebalance=false", "--raft-election-timeout", "2s")
	const topic, partitions = "elect", 6
	h.createTopic(topic, partitions)
	ch := newChecker()
	l := h.startLoad(topic, partitions, 2, 64, ch)
	h.waitAcked(ch, 2000, "acknowledgements before the stop")

	victim := h.leaderOfMost(topic)
	if err := victim.Stop(); err != nil {
		t.Fatal(err)
	}
	h.waitServing(topic, partitions, 30*time.Second)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitCaughtUp(victim, 60*time.Second)
	// With the hand-back on, the victim would lead again once it has been back for 5 s.
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c := h.leaderCounts(topic); c[victim.ID] != 0 {
			t.Fatalf("%s leads %d partitions after its restart, with automatic hand-back off (an election timed out: %q)", victim.Name, c[victim.ID], h.logLine(electionTimedOut))
		}
	}

	adm := kadm.NewClient(h.client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	preferred := func() map[int32]int32 { // partition -> its first replica
		td, err := adm.ListTopics(ctx, topic)
		if err != nil || td[topic].Err != nil {
			t.Fatalf("list %s: %v %v", topic, err, td[topic].Err)
		}
		out := map[int32]int32{}
		for p, pd := range td[topic].Partitions {
			out[p] = pd.Replicas[0]
		}
		return out
	}
	mine := 0
	for _, r := range preferred() {
		if int(r) == victim.ID {
			mine++
		}
	}
	if mine == 0 {
		t.Fatalf("%s is the preferred leader of no partition of %s", victim.Name, topic)
	}
	asked := h.nodeByID(1 + victim.ID%3)
	out := mustSluice(t, asked, "", "cluster", "elect-leaders", topic)
	want := fmt.Sprintf("%d partitions now led by their preferred replica, %d led by it already, 0 failed", mine, partitions-mine)
	if !strings.Contains(out, want) || strings.Count(out, " elected") != mine {
		t.Fatalf("sluice cluster elect-leaders %s through %s:\n%s\nwant %d partitions elected and the line %q", topic, asked.Name, out, mine, want)
	}
	t.Logf("sluice cluster elect-leaders %s through %s:\n%s", topic, asked.Name, out)
	// The answer comes once the node asked sees the new leaders; every node soon does.
	h.waitFor(10*time.Second, "every partition led by its preferred replica", func() error {
		st, err := h.status(victim)
		if err != nil {
			return err
		}
		pref := preferred()
		for _, p := range st.Partitions {
			if p.Topic == topic && int32(p.Leader) != pref[p.Partition] {
				return fmt.Errorf("%s-%d led by %d, preferred %d", topic, p.Partition, p.Leader, pref[p.Partition])
			}
		}
		return nil
	})

	all, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all[topic]) != partitions {
		t.Fatalf("electing every partition answered for %d of %s's %d partitions: %+v", len(all[topic]), topic, partitions, all)
	}
	for name, ps := range all {
		for p, r := range ps {
			if !errors.Is(r.Err, kerr.ElectionNotNeeded) {
				t.Errorf("election of %s-%d after elect-leaders: %v (%s), want ELECTION_NOT_NEEDED", name, p, r.Err, r.ErrMessage)
			}
		}
	}

	l.stopLoad()
	h.verify(topic, partitions, ch)
	if failed, firstErr := ch.failures(); failed > 0 {
		t.Fatalf("%d records failed; the first: %v", failed, firstErr)
	}
}
