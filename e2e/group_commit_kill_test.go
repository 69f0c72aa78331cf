package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/testnode"
)

// Offsets a group committed are acknowledged only once durable: after a kill -9 of the
// server they are all there, and the group's consumer resumes right after them.
func TestGroupCommitsSurviveKill9(t *testing.T) {
	n := testnode.Start(t, testnode.Config{Name: "groups"})
	const topic, group, records = "orders", "billing", 400
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	admCl, err := kgo.NewClient(kgo.SeedBrokers(n.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopic(ctx, 4, -1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	produceValues(ctx, t, n.Addr, topic, 0, records)

	// Consume everything, committing each poll synchronously.
	consumed := consumeGroup(ctx, t, n.Addr, group, topic, records)
	if consumed[0] != 0 || len(consumed) != records {
		t.Fatalf("consumed %d records starting at v-%d", len(consumed), consumed[0])
	}
	before, err := adm.FetchOffsets(ctx, group)
	if err != nil || before.Error() != nil {
		t.Fatalf("fetch offsets: %v %v", err, before.Error())
	}

	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	var after kadm.OffsetResponses
	testnode.WaitFor(t, 30*time.Second, func() bool {
		after, err = adm.FetchOffsets(ctx, group)
		return err == nil && after.Error() == nil && len(after) > 0
	})
	sum := int64(0)
	for p := int32(0); p < 4; p++ {
		b, _ := before.Lookup(topic, p)
		a, ok := after.Lookup(topic, p)
		if !ok || a.At != b.At {
			t.Fatalf("partition %d: committed %d before kill -9, %d after", p, b.At, a.At)
		}
		sum += a.At
	}
	if sum != records {
		t.Fatalf("committed offsets add up to %d, want %d", sum, records)
	}

	// The group resumes after its commits: only the new records.
	produceValues(ctx, t, n.Addr, topic, records, 40)
	again := consumeGroup(ctx, t, n.Addr, group, topic, 40)
	for _, v := range again {
		if v < records {
			t.Fatalf("record v-%d read again after the restart", v)
		}
	}
}

func produceValues(ctx context.Context, t *testing.T, addr, topic string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprintf("v-%d", i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consumeGroup reads n records as a member of group, committing after every poll, and
// returns their numbers, sorted.
func consumeGroup(ctx context.Context, t *testing.T, addr, group, topic string, n int) []int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := make(map[int]bool)
	for len(seen) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(seen), n, ctx.Err())
		}
		recs := fs.Records()
		for _, r := range recs {
			var i int
			fmt.Sscanf(string(r.Value), "v-%d", &i)
			if seen[i] {
				t.Fatalf("record v-%d read twice", i)
			}
			seen[i] = true
		}
		if err := cl.CommitRecords(ctx, recs...); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	out := make([]int, 0, len(seen))
	for i := range seen {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}
