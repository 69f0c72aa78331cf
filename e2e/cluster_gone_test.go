package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testnode"
)

// A leader whose process dies (kill -9) is replaced at once: the other nodes see its Raft
// port refuse connections and stand for election without waiting out the election
// timeout (3 s here), and Metadata answers name no dead leader, waiting a moment for the
// new one instead. So a client with franz-go's defaults, which asks for metadata at most
// every 5 s, finds the new leader with its first request after the kill: records sent
// around the kill are acknowledged well within the election timeout, each exactly once.
// The node killed leads the controller group too (an idempotent producer may need it
// again, for a new producer ID).
func TestClusterLeaderProcessGone(t *testing.T) {
	const electionTimeout = 3 * time.Second
	h := startClusterHarness(t, "--raft-election-timeout", electionTimeout.String())
	const topic, partitions = "gone", 6
	h.createTopic(topic, partitions)
	h.waitServing(topic, partitions, 60*time.Second)
	// Leadership spreads over the nodes (each group's preferred leader takes it back);
	// write to a partition that the controller's leader leads.
	var victim *testnode.Node
	var part, epoch int32
	h.waitFor(60*time.Second, "the controller's leader leading a partition", func() error {
		st, err := h.status(h.c.Nodes[0])
		if err != nil {
			return err
		}
		for _, p := range st.Partitions {
			if p.Topic == topic && p.Leader == st.Controller.Leader && p.Leader >= 0 {
				victim, part, epoch = h.nodeByID(int(p.Leader)), p.Partition, p.LeaderEpoch
				return nil
			}
		}
		return fmt.Errorf("controller leader %d leads none of %s's partitions", st.Controller.Leader, topic)
	})

	type record struct{ sent, acked time.Time }
	var (
		mu      sync.Mutex
		records []record
	)
	ch := newChecker()
	// Idempotent, acks=all, metadata every 5 s at most.
	metaRead := &metadataReads{}
	clog := &clientLog{}
	cl := h.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.WithHooks(metaRead), kgo.WithLogger(clog))
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
			cl.Produce(context.Background(), &kgo.Record{Partition: part, Value: []byte(v)}, func(r *kgo.Record, err error) {
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
	// has been running for a while: a failure lets it ask again at once. (franz-go asks
	// twice when it starts producing to a topic, the second time 5 s after the first.)
	h.waitFor(30*time.Second, "the producer's metadata older than 5.5 s", func() error {
		if n, last := ch.ackCount(), metaRead.last(); n < 100 || time.Since(last) < 5500*time.Millisecond {
			return fmt.Errorf("%d acknowledged, metadata read %v ago", n, time.Since(last).Round(time.Millisecond))
		}
		return nil
	})
	killed := time.Now()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s, the controller's leader and partition %d's at epoch %d", victim.Name, part, epoch)
	h.waitFor(30*time.Second, "acknowledgements after the kill", func() error {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		if !ch.lastAck[part].After(killed.Add(time.Second)) {
			return fmt.Errorf("no acknowledgement since a second after the kill")
		}
		return nil
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
		t.Logf("the producer's log from the kill on:\n%s", clog.since(killed.Add(-100*time.Millisecond)))
	}
	if n, err := ch.failures(); n > 0 {
		t.Errorf("%d records failed, the first with %v", n, err)
	}
	st, err := h.status(h.running()[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Controller.Leader < 0 || int(st.Controller.Leader) == victim.ID {
		t.Errorf("controller leader %d after the kill of %s", st.Controller.Leader, victim.Name)
	}
	for _, p := range st.Partitions {
		if p.Topic == topic && p.Partition == part && (int(p.Leader) == victim.ID || p.LeaderEpoch <= epoch) {
			t.Errorf("partition %d led by %d at epoch %d after the kill, was %s at epoch %d", part, p.Leader, p.LeaderEpoch, victim.Name, epoch)
		}
	}
	if line := h.logLine(func(l string) bool {
		return strings.Contains(l, "standing for election: the leader's process is gone")
	}); line == "" {
		t.Error("no node logged that it stood for election because the leader's process was gone")
	}
	h.verify(topic, partitions, ch)
}

// metadataReads is a franz-go hook that records when the client last read a Metadata
// response.
type metadataReads struct {
	mu sync.Mutex
	at time.Time
}

func (m *metadataReads) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == kmsg.Metadata.Int16() && err == nil {
		m.mu.Lock()
		m.at = time.Now()
		m.mu.Unlock()
	}
}

func (m *metadataReads) last() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.at
}

// clientLog keeps a franz-go client's log lines, to show what the client saw when a test
// fails.
type clientLog struct {
	mu    sync.Mutex
	lines []clientLogLine
}

type clientLogLine struct {
	at   time.Time
	text string
}

func (l *clientLog) Level() kgo.LogLevel { return kgo.LogLevelDebug }

func (l *clientLog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", level, msg)
	for i := 0; i+1 < len(keyvals); i += 2 {
		fmt.Fprintf(&b, " %v=%v", keyvals[i], keyvals[i+1])
	}
	l.mu.Lock()
	l.lines = append(l.lines, clientLogLine{time.Now(), b.String()})
	l.mu.Unlock()
}

// since returns the lines logged from t on, each with its time.
func (l *clientLog) since(t time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range l.lines {
		if !line.at.Before(t) {
			fmt.Fprintf(&b, "%s %s\n", line.at.Format("15:04:05.000000"), line.text)
		}
	}
	return b.String()
}
