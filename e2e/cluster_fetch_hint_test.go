package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/sluicemq/sluice/internal/testnode"
)

// A fetch (v16, topics by ID) sent to a node that does not lead the partition is answered
// NOT_LEADER_OR_FOLLOWER with the current leader, its epoch and its endpoint (KIP-951), so
// that a consumer moves at once instead of at its next metadata refresh; a fetch at the
// leader with an old epoch gets FENCED_LEADER_EPOCH with the same hint. v15 has no
// NodeEndpoints and the hint is not given.
func TestClusterFetchLeaderHint(t *testing.T) {
	h := startClusterHarness(t)
	const topic = "fetch-hints"
	h.createTopic(topic, 1)
	cl := h.client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := range 5 {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("v-%d", i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil || topics[topic].Err != nil {
		t.Fatalf("list topics: %v %v", err, topics[topic].Err)
	}
	id := [16]byte(topics[topic].ID)
	if id == ([16]byte{}) {
		t.Fatalf("%s has no topic ID", topic)
	}

	// Leadership may move to the preferred leader meanwhile: a check counts only when the
	// leader is the same before and after it.
	h.waitFor(60*time.Second, "fetch answers naming the leader", func() error {
		leader, epoch, err := h.leaderOf(topic)
		if err != nil {
			return err
		}
		if epoch < 1 {
			return fmt.Errorf("leader epoch %d: no older epoch to fence", epoch)
		}
		ln := h.nodeByID(int(leader))
		other := h.nodeByID(1 + int(leader)%3)
		atOther, err := fetchAt(other, 16, id, -1)
		if err != nil {
			return err
		}
		oldAtOther, err := fetchAt(other, 15, id, -1)
		if err != nil {
			return err
		}
		fenced, err := fetchAt(ln, 16, id, epoch-1)
		if err != nil {
			return err
		}
		served, err := fetchAt(ln, 16, id, epoch)
		if err != nil {
			return err
		}
		if l2, e2, err := h.leaderOf(topic); err != nil || l2 != leader || e2 != epoch {
			return fmt.Errorf("leadership moved during the check (%d@%d, then %d@%d, %v)", leader, epoch, l2, e2, err)
		}

		host, portStr, _ := net.SplitHostPort(ln.Addr)
		port, _ := strconv.Atoi(portStr)
		checkHint := func(what string, resp *kmsg.FetchResponse, code int16) {
			t.Helper()
			if len(resp.Topics) != 1 || resp.Topics[0].TopicID != id || len(resp.Topics[0].Partitions) != 1 {
				t.Fatalf("%s: answered topics %+v", what, resp.Topics)
			}
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != code {
				t.Fatalf("%s (leader %d): error %d, want %d", what, leader, p.ErrorCode, code)
			}
			if p.CurrentLeader.LeaderID != leader || p.CurrentLeader.LeaderEpoch != epoch {
				t.Fatalf("%s: current leader %d epoch %d, want %d epoch %d",
					what, p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch, leader, epoch)
			}
			if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != leader || resp.Brokers[0].Host != host ||
				int(resp.Brokers[0].Port) != port || resp.Brokers[0].Rack != nil {
				t.Fatalf("%s: node endpoints %+v, want node %d at %s", what, resp.Brokers, leader, ln.Addr)
			}
		}
		checkHint(fmt.Sprintf("v16 fetch at node %d", other.ID), atOther, kerr.NotLeaderForPartition.Code)
		checkHint(fmt.Sprintf("v16 fetch at the leader with epoch %d", epoch-1), fenced, kerr.FencedLeaderEpoch.Code)

		// v15 has no NodeEndpoints; the error alone is answered.
		op := oldAtOther.Topics[0].Partitions[0]
		if op.ErrorCode != kerr.NotLeaderForPartition.Code || op.CurrentLeader.LeaderID != -1 || len(oldAtOther.Brokers) != 0 {
			t.Fatalf("v15 answer: error %d leader %d endpoints %v", op.ErrorCode, op.CurrentLeader.LeaderID, oldAtOther.Brokers)
		}
		// The leader serves the records by topic ID, with no hint.
		sp := served.Topics[0].Partitions[0]
		if sp.ErrorCode != 0 || sp.HighWatermark != 5 || len(sp.RecordBatches) == 0 ||
			sp.CurrentLeader.LeaderID != -1 || len(served.Brokers) != 0 {
			t.Fatalf("v16 fetch at the leader: error %d, high watermark %d, %d record bytes, leader %d, endpoints %v",
				sp.ErrorCode, sp.HighWatermark, len(sp.RecordBatches), sp.CurrentLeader.LeaderID, served.Brokers)
		}
		return nil
	})
}

// fetchAt sends node n a Fetch at version v for partition 0 of topic id from offset 0,
// checking the leader epoch epoch (-1: none), and returns its answer.
func fetchAt(n *testnode.Node, v int16, id [16]byte, epoch int32) (*kmsg.FetchResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(kmsg.Fetch.Int16(), v)
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.Addr), kgo.RequestRetries(0), kgo.MaxVersions(vs))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrFetchRequest()
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.TopicID = id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.CurrentLeaderEpoch = epoch
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return nil, err
	}
	fr := resp.(*kmsg.FetchResponse)
	if fr.Version != v {
		return nil, fmt.Errorf("answered at v%d, want v%d", fr.Version, v)
	}
	return fr, nil
}
