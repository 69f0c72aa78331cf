package e2e

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testnode"
	"github.com/twmb/franz-go/pkg/kadm"
)

// TestClusterKcatIdempotentLeaderKill runs librdkafka's idempotent producer (kcat) through
// a kill -9 of the partition's leader: librdkafka retries what was in flight at the new
// leader, where the producer state the state machine replicated must recognise each batch
// it already holds. Every line kcat read must end up in the partition exactly once, in
// the order kcat sent them, and kcat must report no failed delivery.
func TestClusterKcatIdempotentLeaderKill(t *testing.T) {
	kcat := requireKcat(t)
	h := startClusterHarness(t)
	const topic, total = "kc-idem", 30000
	h.createTopic(topic, 1)
	h.waitServing(topic, 1, 30*time.Second)

	prod, stdin := startBackgroundInput(t, true, kcat, "-P", "-b", strings.Join(h.c.Brokers(), ","), "-t", topic, "-p", "0",
		"-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=5",
		"-X", "message.timeout.ms=90000", "-X", "topic.metadata.refresh.interval.ms=1000",
		"-X", "retry.backoff.ms=100")

	// Lines go in at about 5,000 a second; the leader is killed once a third of them
	// were written and some were stored.
	w := bufio.NewWriter(stdin)
	send := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			fmt.Fprintf(w, "idem-%06d\n", i)
			if i%50 == 49 {
				if err := w.Flush(); err != nil {
					t.Fatalf("writing to kcat: %v\n%s", err, prod.stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("writing to kcat: %v\n%s", err, prod.stderr.String())
		}
	}
	send(0, total/3)
	victim, leader, epoch, _ := h.killLeaderOnceStored(topic, total/10, "kcat", func() {})
	send(total/3, total)
	stdin.Close()
	select {
	case <-prod.done:
		if prod.err != nil {
			t.Fatalf("kcat: %v\n%s", prod.err, prod.stderr.String())
		}
	case <-time.After(120 * time.Second):
		t.Fatalf("kcat did not finish within 120 s of its last line\n%s", prod.stderr.String())
	}
	// kcat also prints the connection errors librdkafka reports while the leader is
	// down, which it rides out.
	if out := prod.stderr.String(); strings.Contains(out, "Delivery failed") {
		t.Fatalf("kcat reported failed deliveries:\n%s", out)
	}
	if l, e, err := h.leaderOf(topic); err != nil || l == leader || e <= epoch {
		t.Fatalf("after the kill: leader %d epoch %d (%v); want a new leader past epoch %d", l, e, err, epoch)
	}

	recs := h.readAll(topic, 1)[0]
	if len(recs) != total {
		t.Errorf("the partition holds %d records, kcat sent %d", len(recs), total)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("idem-%06d", i); r.value != want {
			t.Fatalf("offset %d holds %q, want %q (records stored twice, lost or out of order)", r.offset, r.value, want)
		}
	}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitCaughtUp(victim, 60*time.Second)
}

// killLeaderOnceStored waits until partition 0 of topic holds n records from producer
// (running check, which fails the test if the producer is gone, while it waits), then
// kills its leader with kill -9. It returns the node killed, the leader and epoch it
// had, and the end offset just before the kill.
func (h *clusterHarness) killLeaderOnceStored(topic string, n int64, producer string, check func()) (victim *testnode.Node, leader, epoch int32, end int64) {
	h.t.Helper()
	h.waitFor(60*time.Second, producer+"'s first records stored", func() error {
		check()
		if end := h.endOffset(topic); end < n {
			return fmt.Errorf("end offset %d", end)
		}
		return nil
	})
	leader, epoch, err := h.leaderOf(topic)
	if err != nil {
		h.t.Fatal(err)
	}
	victim = h.nodeByID(int(leader))
	end = h.endOffset(topic)
	if err := victim.Kill(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Logf("killed %s, the leader at epoch %d, at end offset %d or later", victim.Name, epoch, end)
	return victim, leader, epoch, end
}

// TestClusterKafkaPythonLeaderKill runs kafka-python's producer (acks=all, retries, no
// idempotence in Debian's 2.0.2) through a kill -9 of the partition's leader: it must
// find the new leader and get every record acknowledged, and every acknowledged record
// must be at the offset its acknowledgement gave. A retry of a batch that was stored
// before the kill may store it twice; without idempotence Kafka allows that.
func TestClusterKafkaPythonLeaderKill(t *testing.T) {
	requirePythonKafka(t)
	h := startClusterHarness(t)
	const topic, total = "py-kill", 20000
	h.createTopic(topic, 1)
	h.waitServing(topic, 1, 30*time.Second)
	prod := startBackground(t, python, "testdata/kafka_python_client.py", "produce-acked",
		strings.Join(h.c.Brokers(), ","), topic, fmt.Sprint(total))
	victim, _, _, end := h.killLeaderOnceStored(topic, total/10, "kafka-python", func() {
		if prod.exited() {
			t.Fatalf("kafka-python exited early: %v\n%s\n%s", prod.err, prod.stdout.String(), prod.stderr.String())
		}
	})
	select {
	case <-prod.done:
	case <-time.After(180 * time.Second):
		t.Fatal("kafka-python did not finish within 180 s of the kill")
	}
	if out := prod.stdout.String(); prod.err != nil || !strings.Contains(out, "PASS") {
		t.Fatalf("kafka-python: %v\n%s\n%s", prod.err, lastLines(out, 20), prod.stderr.String())
	}
	ackedAt := map[int64]string{}
	afterKill := 0
	for _, line := range strings.Split(prod.stdout.String(), "\n") {
		var value string
		var offset int64
		if _, err := fmt.Sscanf(line, "ACKED %s %d", &value, &offset); err != nil {
			continue
		}
		if prev, dup := ackedAt[offset]; dup {
			t.Fatalf("offset %d acknowledged for %q and %q", offset, prev, value)
		}
		ackedAt[offset] = value
		if offset >= end {
			afterKill++
		}
	}
	if len(ackedAt) != total {
		t.Fatalf("%d acknowledgements, want %d", len(ackedAt), total)
	}
	recs := h.readAll(topic, 1)[0]
	stored := map[int64]string{}
	copies := map[string]int{}
	for _, r := range recs {
		stored[r.offset] = r.value
		copies[r.value]++
	}
	for offset, value := range ackedAt {
		if stored[offset] != value {
			t.Fatalf("acknowledged %q at offset %d, the partition has %q there", value, offset, stored[offset])
		}
	}
	twice := 0
	for i := range total {
		switch c := copies[fmt.Sprintf("py-%06d", i)]; {
		case c == 0:
			t.Fatalf("py-%06d is not in the partition", i)
		case c > 1:
			twice++
		}
	}
	t.Logf("%d records acknowledged (%d at offsets past the kill), %d stored, %d stored more than once", len(ackedAt), afterKill, len(recs), twice)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitCaughtUp(victim, 60*time.Second)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// DescribeLogDirs in a cluster (as kafka-log-dirs and Kafka UIs ask, through kadm): every
// node lists its replicas of a replication-factor-3 topic, and once the followers have
// applied everything, each partition has the same size on every node.
func TestClusterDescribeLogDirs(t *testing.T) {
	h := startClusterHarness(t)
	const topic, partitions = "dirs", 3
	h.createTopic(topic, partitions)
	ch := newChecker()
	l := h.startLoad(topic, partitions, 1, 16, ch)
	h.waitAcked(ch, 3000, "records to describe")
	l.stopLoad()
	adm := kadm.NewClient(h.client())
	h.waitFor(60*time.Second, "every node's replicas the same size", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		all, err := adm.DescribeAllLogDirs(ctx, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
		if err != nil {
			return err
		}
		if len(all) != 3 {
			return fmt.Errorf("%d nodes described", len(all))
		}
		sizes := map[int32]map[int32]int64{} // partition -> node -> size
		for node, dirs := range all {
			if len(dirs) != 1 {
				return fmt.Errorf("node %d: %d directories", node, len(dirs))
			}
			for _, d := range dirs {
				if d.Err != nil || d.TotalBytes <= 0 {
					return fmt.Errorf("node %d dir %s: %v, total %d", node, d.Dir, d.Err, d.TotalBytes)
				}
				d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
					if sizes[p.Partition] == nil {
						sizes[p.Partition] = map[int32]int64{}
					}
					sizes[p.Partition][node] = p.Size
				})
			}
		}
		for p := range int32(partitions) {
			if len(sizes[p]) != 3 {
				return fmt.Errorf("partition %d on nodes %v, want all three", p, sizes[p])
			}
			for _, size := range sizes[p] {
				if size == 0 || size != sizes[p][1] {
					return fmt.Errorf("partition %d sizes per node %v", p, sizes[p])
				}
			}
		}
		return nil
	})
}

// TestClusterKcatConsumerLeaderKill runs librdkafka's consumer (kcat, assigned partition 0,
// no group) from the beginning while records are written and the partition's leader is
// killed: librdkafka follows the new leader and checks its position against the new
// leader epoch (OffsetForLeaderEpoch). It must read every stored record exactly once, in
// offset order: no gap, no record twice, no reset to the start or the end.
func TestClusterKcatConsumerLeaderKill(t *testing.T) {
	kcat := requireKcat(t)
	h := startClusterHarness(t)
	const topic = "kc-read"
	h.createTopic(topic, 1)
	h.waitServing(topic, 1, 30*time.Second)
	reader := startBackground(t, kcat, "-C", "-b", strings.Join(h.c.Brokers(), ","), "-t", topic, "-p", "0",
		"-o", "beginning", "-q", "-u", "-f", `%p %o %s\n`, "-X", "topic.metadata.refresh.interval.ms=1000")
	ch := newChecker()
	l := h.startLoad(topic, 1, 1, 16, ch)
	h.waitAcked(ch, 3000, "records before the kill")
	victim, _, _, _ := h.killLeaderOnceStored(topic, 3000, "the load", func() {})
	h.waitAcked(ch, ch.ackCount()+3000, "records after the kill")
	l.stopLoad()
	end := h.endOffset(topic)
	h.waitFor(60*time.Second, "kcat reading to the end", func() error {
		if reader.exited() {
			t.Fatalf("kcat exited: %v\n%s", reader.err, reader.stderr.String())
		}
		ls := parseKcat(t, reader.stdout.String())
		if n := int64(len(ls)); n < end {
			return fmt.Errorf("kcat read %d of %d records", n, end)
		}
		return nil
	})
	stored := h.readAll(topic, 1)[0]
	ls := parseKcat(t, reader.stdout.String())
	if len(ls) != len(stored) {
		t.Fatalf("kcat read %d records, the partition holds %d", len(ls), len(stored))
	}
	for i, l := range ls {
		if l.offset != stored[i].offset || l.value != stored[i].value {
			t.Fatalf("kcat's record %d: offset %d %q; the partition has offset %d %q there", i, l.offset, l.value, stored[i].offset, stored[i].value)
		}
	}
	t.Logf("kcat read %d records once each, in order, through the kill of %s", len(ls), victim.Name)
}
