package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/testnode"
	"github.com/sluicemq/sluice/replication"
)

// clusterHarness is three `sluice serve` processes forming a Raft cluster on 127.0.0.1,
// with admin endpoints, and the helpers the cluster tests share.
type clusterHarness struct {
	t *testing.T
	c *testnode.Cluster
}

// electionTimeout is the Raft election timeout the cluster tests run with.
const electionTimeout = 500 * time.Millisecond

func startClusterHarness(t *testing.T, args ...string) *clusterHarness {
	t.Helper()
	return startClusterHarnessConfig(t, testnode.ClusterConfig{Args: args})
}

// startClusterHarnessConfig is startClusterHarness with node arguments of cfg (Nodes, the
// admin flag and the election timeout are the harness's).
func startClusterHarnessConfig(t *testing.T, cfg testnode.ClusterConfig) *clusterHarness {
	t.Helper()
	cfg.Nodes, cfg.AdminFlag = 3, "--admin-listen"
	cfg.Args = append([]string{"--raft-election-timeout", electionTimeout.String()}, cfg.Args...)
	c := testnode.StartCluster(t, cfg)
	h := &clusterHarness{t: t, c: c}
	// Every node knows every node, and one controller leads.
	h.waitFor(60*time.Second, "every node registered and alive", func() error {
		for _, n := range c.Nodes {
			st, err := h.status(n)
			if err != nil {
				return err
			}
			if st.Controller.Leader < 0 {
				return fmt.Errorf("%s: no controller leader", n.Name)
			}
			alive := 0
			for _, ns := range st.Nodes {
				if ns.Alive {
					alive++
				}
			}
			if alive != 3 {
				return fmt.Errorf("%s sees %d of 3 nodes alive", n.Name, alive)
			}
		}
		return nil
	})
	return h
}

func (h *clusterHarness) waitFor(timeout time.Duration, what string, fn func() error) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// status is a node's view of the cluster from its admin endpoint.
func (h *clusterHarness) status(n *testnode.Node) (*replication.ClusterStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.AdminAddr+"/v1/cluster", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /v1/cluster: %s", n.Name, resp.Status)
	}
	var st replication.ClusterStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s /v1/cluster: %w", n.Name, err)
	}
	return &st, nil
}

// running are the nodes whose process runs.
func (h *clusterHarness) running() []*testnode.Node {
	var out []*testnode.Node
	for _, n := range h.c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// client is a franz-go client seeded with every node.
func (h *clusterHarness) client(opts ...kgo.Opt) *kgo.Client {
	h.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(h.c.Brokers()...)}, opts...)...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(cl.Close)
	return cl
}

func (h *clusterHarness) createTopic(name string, partitions int32) {
	h.t.Helper()
	adm := kadm.NewClient(h.client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		h.t.Fatalf("create topic %s: %v", name, err)
	}
	h.waitServing(name, partitions, 30*time.Second)
}

// waitServing waits until every partition of topic has a leader that serves, in every
// running node's view.
func (h *clusterHarness) waitServing(topic string, partitions int32, timeout time.Duration) {
	h.t.Helper()
	h.waitFor(timeout, "leaders for "+topic, func() error {
		return h.servingErr(topic, partitions)
	})
}

func (h *clusterHarness) servingErr(topic string, partitions int32) error {
	ready := map[replication.NodeID]map[string]bool{} // node -> groups it leads and serves
	views := map[string]*replication.ClusterStatus{}
	for _, n := range h.running() {
		st, err := h.status(n)
		if err != nil {
			return err
		}
		views[n.Name] = st
		ready[st.NodeID] = map[string]bool{}
		for _, g := range st.Groups {
			if g.Local && g.Ready {
				ready[st.NodeID][g.Name] = true
			}
		}
	}
	for name, st := range views {
		seen := int32(0)
		for _, p := range st.Partitions {
			if p.Topic != topic {
				continue
			}
			seen++
			if !ready[p.Leader][p.Group] {
				return fmt.Errorf("%s: %s-%d leader %d does not serve group %s", name, topic, p.Partition, p.Leader, p.Group)
			}
		}
		if seen != partitions {
			return fmt.Errorf("%s sees %d partitions of %s", name, seen, topic)
		}
	}
	return nil
}

// leaderOf returns partition 0 of topic's leader and leader epoch, from a running node's
// view.
func (h *clusterHarness) leaderOf(topic string) (leader, epoch int32, err error) {
	st, err := h.status(h.running()[0])
	if err != nil {
		return 0, 0, err
	}
	for _, p := range st.Partitions {
		if p.Topic == topic && p.Partition == 0 {
			return int32(p.Leader), p.LeaderEpoch, nil
		}
	}
	return 0, 0, fmt.Errorf("no partition 0 of %s", topic)
}

// logLine returns the first line of a running node's log that match accepts, prefixed
// with the node's name, or "".
func (h *clusterHarness) logLine(match func(line string) bool) string {
	for _, n := range h.running() {
		for line := range strings.SplitSeq(n.Logs(64<<20), "\n") {
			if match(line) {
				return n.Name + ": " + line
			}
		}
	}
	return ""
}

// electionTimedOut says whether a log line tells of a Raft election held because a
// leader was not heard from in time, or of a leader that stepped down for not hearing
// from its followers: what a node stalled longer than the election timeout causes.
func electionTimedOut(line string) bool {
	if strings.Contains(line, "failed to contact quorum of nodes") {
		return true
	}
	_, after, ok := strings.Cut(line, "heartbeat timeout reached, starting election")
	if !ok {
		return false
	}
	// A group's first election names no last leader.
	_, id, _ := strings.Cut(after, "last-leader-id=")
	return id != "" && id[0] != '"' && id[0] != ' '
}

// endOffset returns partition 0 of topic's high watermark, or -1 when no node answers.
func (h *clusterHarness) endOffset(topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(h.client()).ListEndOffsets(ctx, topic)
	if err != nil {
		return -1
	}
	o, ok := ends.Lookup(topic, 0)
	if !ok || o.Err != nil {
		return -1
	}
	return o.Offset
}

// leaderCounts returns, from a running node's view, how many partitions of topic each
// node leads.
func (h *clusterHarness) leaderCounts(topic string) map[int]int {
	h.t.Helper()
	st, err := h.status(h.running()[0])
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[int]int{}
	for _, p := range st.Partitions {
		if p.Topic == topic {
			out[int(p.Leader)]++
		}
	}
	return out
}

// acked is one acknowledged record.
type acked struct {
	partition int32
	offset    int64
	value     string
}

// checker records what producers sent and what was acknowledged, then reads everything
// back and checks: every acknowledged record is at its offset, exactly once; offsets per
// partition are unique and increasing; no value appears twice; nothing was invented.
type checker struct {
	mu         sync.Mutex
	attempted  map[string]bool
	acks       []acked
	failed     int
	firstErr   error
	firstErrAt time.Time
	lastAck    map[int32]time.Time
}

func newChecker() *checker {
	return &checker{attempted: map[string]bool{}, lastAck: map[int32]time.Time{}}
}

// failures returns how many records failed, and the first error.
func (ch *checker) failures() (int, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.failed, ch.firstErr
}

// load runs producers writing to every partition of topic until stop is closed.
type load struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	sent    atomic.Int64
	checker *checker
}

// startLoad starts workers idempotent acks=all producers, each writing values
// "w<worker>-<seq>" round-robin over the partitions with up to inflight records pending.
func (h *clusterHarness) startLoad(topic string, partitions int32, workers, inflight int, ch *checker) *load {
	l := &load{stop: make(chan struct{}), checker: ch}
	for w := range workers {
		cl := h.client(
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(time.Millisecond),
			kgo.RecordDeliveryTimeout(60*time.Second),
			kgo.MetadataMinAge(100*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
			// A stopped (SIGSTOP) broker still accepts connections: give up on it soon.
			kgo.ProduceRequestTimeout(2*time.Second),
			kgo.RequestTimeoutOverhead(2*time.Second),
		)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			sem := make(chan struct{}, inflight)
			var pending sync.WaitGroup
			defer pending.Wait()
			for seq := 0; ; seq++ {
				select {
				case <-l.stop:
					return
				case sem <- struct{}{}:
				}
				v := fmt.Sprintf("w%d-%d", w, seq)
				p := int32(seq % int(partitions))
				ch.mu.Lock()
				ch.attempted[v] = true
				ch.mu.Unlock()
				pending.Add(1)
				l.sent.Add(1)
				cl.Produce(context.Background(), &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}, func(r *kgo.Record, err error) {
					defer pending.Done()
					<-sem
					ch.mu.Lock()
					defer ch.mu.Unlock()
					if err != nil {
						ch.failed++
						if ch.firstErr == nil {
							ch.firstErr, ch.firstErrAt = err, time.Now()
						}
						return
					}
					ch.acks = append(ch.acks, acked{r.Partition, r.Offset, v})
					ch.lastAck[r.Partition] = time.Now()
				})
			}
		}()
	}
	return l
}

// waitAcked waits up to 30 s until ch holds at least n acknowledgements.
func (h *clusterHarness) waitAcked(ch *checker, n int, what string) {
	h.t.Helper()
	h.waitFor(30*time.Second, what, func() error {
		if got := ch.ackCount(); got < n {
			return fmt.Errorf("%d of %d acknowledged", got, n)
		}
		return nil
	})
}

// stopLoad stops the producers and waits for every pending record's outcome.
func (l *load) stopLoad() {
	close(l.stop)
	l.wg.Wait()
}

func (c *checker) ackCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acks)
}

// ackedSince says whether every partition got an acknowledgement after t.
func (c *checker) ackedSince(t time.Time, partitions int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range partitions {
		if !c.lastAck[p].After(t) {
			return fmt.Errorf("partition %d: no acknowledgement since %v", p, t.Format("15:04:05.000"))
		}
	}
	return nil
}

// readAll reads every partition of topic from its start to its high watermark.
func (h *clusterHarness) readAll(topic string, partitions int32) map[int32][]acked {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	adm := kadm.NewClient(h.client())
	var ends kadm.ListedOffsets
	h.waitFor(60*time.Second, "end offsets of "+topic, func() error {
		var err error
		ends, err = adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		return err
	})
	offsets := map[int32]kgo.Offset{}
	want := map[int32]int64{}
	for p := range partitions {
		lo, ok := ends.Lookup(topic, p)
		if !ok {
			h.t.Fatalf("no end offset for %s-%d", topic, p)
		}
		want[p] = lo.Offset
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl := h.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}), kgo.FetchMaxWait(200*time.Millisecond))
	out := map[int32][]acked{}
	done := func() bool {
		for p := range partitions {
			n := len(out[p])
			if want[p] > 0 && (n == 0 || out[p][n-1].offset < want[p]-1) {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			got := map[int32]int{}
			for p := range out {
				got[p] = len(out[p])
			}
			h.t.Fatalf("reading %s back: %v (have %v, want ends %v)", topic, ctx.Err(), got, want)
		}
		fs.EachError(func(t string, p int32, err error) {
			h.t.Logf("fetch %s-%d: %v (retrying)", t, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], acked{r.Partition, r.Offset, string(r.Value)})
		})
	}
	return out
}

// verify reads topic back and checks it against what was acknowledged.
func (h *clusterHarness) verify(topic string, partitions int32, ch *checker) {
	h.t.Helper()
	logs := h.readAll(topic, partitions)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	at := map[int32]map[int64]string{}
	seen := map[string]acked{}
	total := 0
	for p, recs := range logs {
		at[p] = map[int64]string{}
		for i, r := range recs {
			if i > 0 && r.offset <= recs[i-1].offset {
				h.t.Fatalf("%s-%d: offset %d after %d", topic, p, r.offset, recs[i-1].offset)
			}
			if prev, dup := seen[r.value]; dup {
				h.t.Fatalf("value %q stored twice: %s-%d@%d and @%d", r.value, topic, prev.partition, prev.offset, r.offset)
			}
			if !ch.attempted[r.value] {
				h.t.Fatalf("value %q at %s-%d@%d was never sent", r.value, topic, p, r.offset)
			}
			seen[r.value] = r
			at[p][r.offset] = r.value
			total++
		}
	}
	for _, a := range ch.acks {
		if got, ok := at[a.partition][a.offset]; !ok || got != a.value {
			h.t.Fatalf("acknowledged %q at %s-%d@%d, the log has %q there (present: %v)", a.value, topic, a.partition, a.offset, got, ok)
		}
	}
	if ch.failed > 0 {
		h.t.Logf("%d records failed (not acknowledged); the first at %s: %v", ch.failed, ch.firstErrAt.Format("15:04:05.000"), ch.firstErr)
	}
	h.t.Logf("verified %s: %d acknowledged, %d failed, %d stored", topic, len(ch.acks), ch.failed, total)
	if len(ch.acks) == 0 {
		h.t.Fatal("nothing was acknowledged")
	}
}

// nodeByID returns the harness node with this ID.
func (h *clusterHarness) nodeByID(id int) *testnode.Node {
	h.t.Helper()
	n := h.c.Node(id)
	if n == nil {
		h.t.Fatalf("no node %d", id)
	}
	return n
}

// commitIndexes returns, per group, the highest commit index any running node reports.
func (h *clusterHarness) commitIndexes() (map[string]uint64, error) {
	commit := map[string]uint64{}
	for _, n := range h.running() {
		st, err := h.status(n)
		if err != nil {
			return nil, err
		}
		for _, g := range st.Groups {
			if g.Local {
				commit[g.Name] = max(commit[g.Name], g.CommitIndex)
			}
		}
	}
	return commit, nil
}

// waitCaughtUp waits until node has applied, in every group, what was committed when the
// call began.
func (h *clusterHarness) waitCaughtUp(n *testnode.Node, timeout time.Duration) {
	h.t.Helper()
	var target map[string]uint64
	h.waitFor(10*time.Second, "commit indexes", func() error {
		var err error
		target, err = h.commitIndexes()
		return err
	})
	h.waitFor(timeout, n.Name+" catching up", func() error {
		st, err := h.status(n)
		if err != nil {
			return err
		}
		var behind []string
		for _, g := range st.Groups {
			if g.Local && g.AppliedIndex < target[g.Name] {
				behind = append(behind, fmt.Sprintf("%s %d<%d", g.Name, g.AppliedIndex, target[g.Name]))
			}
		}
		if len(behind) > 0 {
			sort.Strings(behind)
			return errors.New(strings.Join(behind, ", "))
		}
		return nil
	})
}

// leaderOfMost returns the node leading the most partitions of topic.
func (h *clusterHarness) leaderOfMost(topic string) *testnode.Node {
	counts := h.leaderCounts(topic)
	ids := make([]int, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	best := -1
	for _, id := range ids {
		if id >= 0 && (best < 0 || counts[id] > counts[best]) {
			best = id
		}
	}
	return h.nodeByID(best)
}

// TestElectionTimedOut checks electionTimedOut against the lines nodes log.
func TestElectionTimedOut(t *testing.T) {
	for line, want := range map[string]bool{
		`{"level":"warn","msg":"raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=","group":"g3-1-2"}`:                           false,
		`{"level":"warn","msg":"raft: heartbeat timeout reached, starting election: last-leader-addr=127.0.0.1:16652 last-leader-id=3","group":"g3-1-2"}`:           true,
		`{"level":"warn","msg":"raft: failed to contact quorum of nodes, stepping down","group":"g3-1-2"}`:                                                          true,
		`{"level":"info","msg":"raft: entering leader state: leader=\"Node at 127.0.0.1:29205 [Leader]\"","group":"g3-1-2"}`:                                        false,
		`{"level":"warn","msg":"raft: heartbeat timeout reached, not part of a stable configuration or a non-voter, not triggering a leader election","group":"x"}`: false,
	} {
		if got := electionTimedOut(line); got != want {
			t.Errorf("electionTimedOut(%s) = %v, want %v", line, got, want)
		}
	}
}
