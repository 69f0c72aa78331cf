package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/pagecache"
	"github.com/sluicemq/sluice/internal/testnode"
)

// residentShare returns the share of the pages of a partition's segment files on node n
// that are in the page cache.
func residentShare(n *testnode.Node, topic string, partition int32) (float64, error) {
	files, err := filepath.Glob(filepath.Join(n.DataDir, fmt.Sprintf("%s-%d", topic, partition), "*.log"))
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("%s: no segment files of %s-%d (%v)", n.Name, topic, partition, err)
	}
	in, all := 0, 0
	for _, f := range files {
		pages, err := pagecache.Resident(f)
		if err != nil {
			return 0, err
		}
		in += pagecache.Count(pages, 0, len(pages))
		all += len(pages)
	}
	return float64(in) / float64(max(all, 1)), nil
}

// coldRecords is what the page cache tests produce: 24 MiB of incompressible values.
const coldRecords = 3072

func coldValue() []byte {
	v := make([]byte, 8<<10)
	rand.NewChaCha8([32]byte{1}).Read(v)
	return v
}

// produceCold produces coldRecords uncompressed records of coldValue to partition 0 of
// topic with acks=all.
func produceCold(t *testing.T, cl *kgo.Client, topic string) {
	t.Helper()
	value := coldValue()
	for i := 0; i < coldRecords; i += 256 {
		rs := make([]*kgo.Record, 256)
		for j := range rs {
			rs[j] = &kgo.Record{Topic: topic, Value: value}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := cl.ProduceSync(ctx, rs...).FirstErr()
		cancel()
		if err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

// readCold reads topic from the start with cl and checks every record of produceCold.
func readCold(t *testing.T, cl *kgo.Client) {
	t.Helper()
	value := coldValue()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := 0
	for got < coldRecords {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("consume after %d records: %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !bytes.Equal(r.Value, value) || r.Offset != int64(got) {
				t.Fatalf("record at offset %d (want %d) holds %d bytes", r.Offset, got, len(r.Value))
			}
			got++
		})
	}
}

// produceOpts are the producer options of the page cache tests: acks=all, no
// compression (so the bytes stored are the bytes sent).
func produceOpts() []kgo.Opt {
	return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.NoCompression())}
}

// TestClusterFollowerUncache: followers write their replica of a partition back and drop
// it from the page cache as they apply it, since only the leader serves reads; the
// leader keeps what it wrote cached for its consumers, and reads return every record.
func TestClusterFollowerUncache(t *testing.T) {
	h := startClusterHarness(t)
	if ok, err := pagecache.DropWorks(h.c.Nodes[0].DataDir); err != nil || !ok {
		t.Skipf("the data directory's file system keeps pages fadvise asks to drop (%v)", err)
	}
	const topic = "cold"
	h.createTopic(topic, 1)
	produceCold(t, h.client(produceOpts()...), topic)
	st, err := h.status(h.c.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	leaderID := -1
	for _, p := range st.Partitions {
		if p.Topic == topic {
			leaderID = int(p.Leader)
		}
	}
	var leader *testnode.Node
	for _, n := range h.c.Nodes {
		if n.ID == leaderID {
			leader = n
			continue
		}
		h.waitFor(30*time.Second, n.Name+" (a follower) drops its replica from the page cache", func() error {
			share, err := residentShare(n, topic, 0)
			if err != nil {
				return err
			}
			if share > 0.5 {
				return fmt.Errorf("%.0f%% of its pages cached", 100*share)
			}
			t.Logf("%s (a follower) keeps %.0f%% of its replica's pages cached", n.Name, 100*share)
			return nil
		})
	}
	if leader == nil {
		t.Fatalf("no node is the leader %d", leaderID)
	}
	share, err := residentShare(leader, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (the leader) keeps %.0f%% of its pages cached", leader.Name, 100*share)
	if share < 0.9 {
		t.Errorf("the leader keeps %.0f%% of its pages cached, want them all", 100*share)
	}
	readCold(t, h.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())))
}

// TestSingleNodeKeepsCache: a single node leads every partition, so what it writes stays
// in the page cache for its consumers.
func TestSingleNodeKeepsCache(t *testing.T) {
	n := startNode(t)
	if ok, err := pagecache.DropWorks(n.DataDir); err != nil || !ok {
		t.Skipf("the data directory's file system keeps pages fadvise asks to drop (%v)", err)
	}
	const topic = "warm"
	createTopic(t, n, topic, 1)
	produceCold(t, client(t, n, produceOpts()...), topic)
	share, err := residentShare(n, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if share < 0.9 {
		t.Errorf("the node keeps %.0f%% of its pages cached, want them all", 100*share)
	}
	readCold(t, client(t, n, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())))
}
