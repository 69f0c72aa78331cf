package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testnode"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ack is one acknowledged record: where the server said it put sequence number seq.
type ack struct {
	partition int32
	offset    int64
	seq       int
}

// loadProducer produces numbered records (acks=all, idempotent) until stopped, and keeps
// every acknowledgement.
type loadProducer struct {
	cl     *kgo.Client
	topic  string
	mu     sync.Mutex
	acks   []ack
	failed []error
	stop   chan struct{}
	done   chan struct{}
}

func startLoad(t *testing.T, n *testnode.Node, topic string) *loadProducer {
	t.Helper()
	lp := &loadProducer{
		cl: client(t, n,
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(time.Millisecond),
			kgo.MaxBufferedRecords(2000),
			kgo.RecordDeliveryTimeout(2*time.Minute),
		),
		topic: topic,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go func() {
		defer close(lp.done)
		for seq := 0; ; seq++ {
			select {
			case <-lp.stop:
				return
			default:
			}
			r := &kgo.Record{Topic: topic, Key: []byte("k" + strconv.Itoa(seq%16)), Value: []byte(fmt.Sprintf("%09d", seq))}
			lp.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
				lp.mu.Lock()
				defer lp.mu.Unlock()
				if err != nil {
					lp.failed = append(lp.failed, fmt.Errorf("seq %s: %w", r.Value, err))
					return
				}
				seq, _ := strconv.Atoi(string(r.Value))
				lp.acks = append(lp.acks, ack{r.Partition, r.Offset, seq})
			})
		}
	}()
	return lp
}

func (lp *loadProducer) acked() int {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return len(lp.acks)
}

// finish stops producing, waits for every buffered record's outcome and returns the
// acknowledgements.
func (lp *loadProducer) finish(t *testing.T) []ack {
	t.Helper()
	close(lp.stop)
	<-lp.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := lp.cl.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	for i, err := range lp.failed {
		if i == 5 {
			t.Errorf("... %d failures in all", len(lp.failed))
			break
		}
		t.Errorf("record not acknowledged: %v", err)
	}
	return append([]ack(nil), lp.acks...)
}

// checkReplay checks the log against the acknowledgements: offsets contiguous from the log
// start, every acknowledged record at its offset, no sequence number twice, sequence
// numbers increasing within each partition. It returns the log as (partition -> seqs).
func checkReplay(t *testing.T, n *testnode.Node, topic string, acks []ack) map[int32][]int {
	t.Helper()
	log := readAll(t, n, topic)
	seen := map[int]string{}
	bySlot := map[[2]int64]int{}
	out := map[int32][]int{}
	for p, rs := range log {
		prevSeq := -1
		for i, r := range rs {
			if i > 0 && r.Offset != rs[i-1].Offset+1 {
				t.Fatalf("partition %d: offset %d follows %d", p, r.Offset, rs[i-1].Offset)
			}
			seq, err := strconv.Atoi(string(r.Value))
			if err != nil {
				t.Fatalf("partition %d offset %d: value %q is not a sequence number", p, r.Offset, r.Value)
			}
			where := fmt.Sprintf("partition %d offset %d", p, r.Offset)
			if prev, dup := seen[seq]; dup {
				t.Fatalf("record %d stored twice: at %s and %s", seq, prev, where)
			}
			seen[seq] = where
			if seq <= prevSeq {
				t.Fatalf("partition %d out of order: record %d after %d (%s)", p, seq, prevSeq, where)
			}
			prevSeq = seq
			bySlot[[2]int64{int64(p), r.Offset}] = seq
			out[p] = append(out[p], seq)
		}
	}
	for _, a := range acks {
		got, ok := bySlot[[2]int64{int64(a.partition), a.offset}]
		if !ok {
			t.Fatalf("acknowledged record %d at partition %d offset %d is missing", a.seq, a.partition, a.offset)
		}
		if got != a.seq {
			t.Fatalf("partition %d offset %d holds record %d, but record %d was acknowledged there", a.partition, a.offset, got, a.seq)
		}
	}
	t.Logf("replayed %d records, %d acknowledged, all present once and in order", len(seen), len(acks))
	return out
}

// TestRestartReplaysAcknowledged restarts the server under produce load, cleanly
// (SIGTERM) and with kill -9, then replays the topic: every acknowledged record is there,
// at the offset it was acknowledged with, once, in order. A second, clean restart replays
// the same log.
func TestRestartReplaysAcknowledged(t *testing.T) {
	for _, mode := range []string{"sigterm", "kill9"} {
		t.Run(mode, func(t *testing.T) {
			n := startNode(t)
			const topic = "replay"
			createTopic(t, n, topic, 3)
			lp := startLoad(t, n, topic)
			testnode.WaitFor(t, 60*time.Second, func() bool { return lp.acked() >= 3000 })
			var err error
			if mode == "sigterm" {
				err = n.Restart() // fails unless the server exits 0 on SIGTERM
			} else {
				err = n.KillRestart()
			}
			if err != nil {
				t.Fatalf("%s restart: %v", mode, err)
			}
			before := lp.acked()
			testnode.WaitFor(t, 90*time.Second, func() bool { return lp.acked() >= before+3000 })
			acks := lp.finish(t)
			first := checkReplay(t, n, topic, acks)

			if err := n.Restart(); err != nil {
				t.Fatalf("second restart: %v", err)
			}
			second := checkReplay(t, n, topic, acks)
			for p, seqs := range first {
				if len(second[p]) != len(seqs) {
					t.Fatalf("partition %d: %d records before the second restart, %d after", p, len(seqs), len(second[p]))
				}
			}
		})
	}
}
