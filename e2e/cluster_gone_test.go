package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A leader whose process dies (kill -9) is replaced at once: the other nodes see its Raft
// port refuse connections and stand for election without waiting out the election
// timeout (3 s here), and Metadata answers name no dead leader, waiting a moment for the
// new one instead. So a client with franz-go's defaults, which asks for metadata at most
// every 5 s, finds the new leader with its first request after the kill: records sent
// around the kill are acknowledged well within the election timeout, each exactly once.
func TestClusterLeaderProcessGone(t *testing.T) {
	const electionTimeout = 3 * time.Second
	h := startClusterHarness(t, "--raft-election-timeout", electionTimeout.String())
	const topic = "gone"
	h.createTopic(topic, 1)
	h.waitServing(topic, 1, 60*time.Second)

	type record struct{ sent, acked time.Time }
	var (
		mu      sync.Mutex
		records []record
	)
	ch := newChecker()
	cl := h.client(kgo.DefaultProduceTopic(topic)) // idempotent, acks=all, metadata every 5 s at most
	started := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var pending sync.WaitGroup
		defer pending.Wait()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			v := fmt.Sprintf("g-%d", seq)
			ch.mu.Lock()
			ch.attempted[v] = true
			ch.mu.Unlock()
			mu.Lock()
			records = append(records, record{sent: time.Now()})
			mu.Unlock()
			pending.Add(1)
			cl.Produce(context.Background(), &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer pending.Done()
				now := time.Now()
				mu.Lock()
				records[seq].acked = now
				mu.Unlock()
				ch.mu.Lock()
				defer ch.mu.Unlock()
				if err != nil {
					ch.failed++
					if ch.firstErr == nil {
						ch.firstErr, ch.firstErrAt = err, now
					}
					return
				}
				ch.acks = append(ch.acks, acked{r.Partition, r.Offset, v})
				ch.lastAck[r.Partition] = now
			})
		}
	}()
	// The client's last metadata is older than its 5 s minimum age, as in a client that
	// has been running for a while: a failure lets it ask again at once.
	h.waitFor(30*time.Second, "the producer running for 6 s", func() error {
		if n := ch.ackCount(); n < 100 || time.Since(started) < 6*time.Second {
			return fmt.Errorf("%d acknowledged after %v", n, time.Since(started).Round(time.Millisecond))
		}
		return nil
	})
	leader, epoch, err := h.leaderOf(topic)
	if err != nil {
		t.Fatal(err)
	}
	victim := h.nodeByID(int(leader))
	killed := time.Now()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s, the leader at epoch %d", victim.Name, epoch)
	h.waitFor(30*time.Second, "acknowledgements after the kill", func() error {
		return ch.ackedSince(killed.Add(time.Second), 1)
	})
	close(stop)
	wg.Wait()

	// The longest any record sent from a second before the kill to a second after it
	// waited for its acknowledgement.
	var longest time.Duration
	mu.Lock()
	for _, r := range records {
		if r.sent.Before(killed.Add(-time.Second)) || r.sent.After(killed.Add(time.Second)) {
			continue
		}
		longest = max(longest, r.acked.Sub(r.sent))
	}
	mu.Unlock()
	t.Logf("records sent around the kill waited at most %v", longest.Round(time.Millisecond))
	if longest > electionTimeout*2/3 {
		t.Errorf("a record sent around the kill waited %v for its acknowledgement; the election timeout is %v", longest, electionTimeout)
	}
	if n, err := ch.failures(); n > 0 {
		t.Errorf("%d records failed, the first with %v", n, err)
	}
	newLeader, newEpoch, err := h.leaderOf(topic)
	if err != nil {
		t.Fatal(err)
	}
	if newLeader == leader || newEpoch <= epoch {
		t.Errorf("leader %d at epoch %d after the kill, was %d at epoch %d", newLeader, newEpoch, leader, epoch)
	}
	if line := h.logLine(func(l string) bool {
		return strings.Contains(l, "standing for election: the leader's process is gone")
	}); line == "" {
		t.Error("no node logged that it stood for election because the leader's process was gone")
	}
	h.verify(topic, 1, ch)
}
