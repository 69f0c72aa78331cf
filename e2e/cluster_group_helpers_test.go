package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/testnode"
	"github.com/sluicemq/sluice/replication"
)

// The helpers of the consumer-group cluster tests: raw requests to one node, the
// coordinator of a group as the cluster sees it, and groupRun, franz-go members of one
// group that record every record they read and every commit acknowledged to them.

// offsetsPartitions is the partition count of __consumer_offsets in the cluster tests
// (the server's default).
const offsetsPartitions = group.DefaultPartitions

// nodeRequest sends req to node n itself (not to whichever broker a client picks) and
// returns its answer.
func nodeRequest(ctx context.Context, n *testnode.Node, req kmsg.Request) (kmsg.Response, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.Addr), kgo.RequestRetries(0))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	seeds := cl.SeedBrokers()
	if len(seeds) != 1 {
		return nil, fmt.Errorf("%d seed brokers", len(seeds))
	}
	return seeds[0].Request(ctx, req)
}

// coordinatorAt asks node n which node coordinates group.
func coordinatorAt(n *testnode.Node, groupID string) (int32, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey = groupID
	req.CoordinatorKeys = []string{groupID}
	r, err := nodeRequest(ctx, n, req)
	if err != nil {
		return -1, fmt.Errorf("%s FindCoordinator: %w", n.Name, err)
	}
	resp := r.(*kmsg.FindCoordinatorResponse)
	code, node := resp.ErrorCode, resp.NodeID
	if resp.Version >= 4 {
		if len(resp.Coordinators) != 1 {
			return -1, fmt.Errorf("%s FindCoordinator: %d coordinators", n.Name, len(resp.Coordinators))
		}
		code, node = resp.Coordinators[0].ErrorCode, resp.Coordinators[0].NodeID
	}
	if err := kerr.ErrorForCode(code); err != nil {
		return -1, fmt.Errorf("%s FindCoordinator: %w", n.Name, err)
	}
	return node, nil
}

// agreedCoordinator returns the coordinator of group that every running node (but those in
// skip) names, and an error while they disagree or name a node that is not running.
func (h *clusterHarness) agreedCoordinator(groupID string, skip ...*testnode.Node) (*testnode.Node, error) {
	var ids []int32
	for _, n := range h.running() {
		if slices.Contains(skip, n) {
			continue
		}
		id, err := coordinatorAt(n, groupID)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no node runs")
	}
	for _, id := range ids[1:] {
		if id != ids[0] {
			return nil, fmt.Errorf("nodes name different coordinators: %v", ids)
		}
	}
	n := h.c.Node(int(ids[0]))
	if n == nil || !n.Running() || slices.Contains(skip, n) {
		return nil, fmt.Errorf("coordinator %d does not run", ids[0])
	}
	return n, nil
}

// waitCoordinator waits until every running node but not names the same coordinator for
// group, a running node other than not (when not is set), and returns it.
func (h *clusterHarness) waitCoordinator(groupID string, not *testnode.Node, timeout time.Duration) *testnode.Node {
	h.t.Helper()
	var c *testnode.Node
	var skip []*testnode.Node
	if not != nil {
		skip = append(skip, not)
	}
	h.waitFor(timeout, "a coordinator for "+groupID, func() error {
		var err error
		c, err = h.agreedCoordinator(groupID, skip...)
		return err
	})
	return c
}

// waitCoordinatedBy waits until every running node names n as the coordinator of groupID.
func (h *clusterHarness) waitCoordinatedBy(groupID string, n *testnode.Node, timeout time.Duration) {
	h.t.Helper()
	h.waitFor(timeout, "the group coordinated by "+n.Name+" again", func() error {
		c, err := h.agreedCoordinator(groupID)
		if err == nil && c != n {
			err = fmt.Errorf("%s coordinates", c.Name)
		}
		return err
	})
}

// groupRead is one record as a member read it.
type groupRead struct {
	member    int
	partition int32
	offset    int64
	value     string
	polled    time.Time // when the poll that returned it began
}

// ackedCommit is a commit acknowledged to a member: the next offset to read.
type ackedCommit struct {
	offset int64
	at     time.Time
}

// groupRun is franz-go members of one group reading a topic: each polls, records what it
// read, and commits it synchronously (auto-commit off), recording each acknowledged commit.
type groupRun struct {
	h            *clusterHarness
	group, topic string
	ctx          context.Context
	cancel       context.CancelFunc

	mu         sync.Mutex
	reads      []groupRead
	commits    map[int32][]ackedCommit // per partition, in the order acknowledged
	attempted  map[int32]int64         // per partition, the highest commit sent
	gate       chan struct{}           // when not nil, members wait for it to close before committing
	commitErrs map[string]int          // failed commits by error
	members    []*groupMember
	wg         sync.WaitGroup
}

type groupMember struct {
	idx    int
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func (h *clusterHarness) startGroupRun(groupID, topic string) *groupRun {
	ctx, cancel := context.WithCancel(context.Background())
	g := &groupRun{h: h, group: groupID, topic: topic, ctx: ctx, cancel: cancel,
		commits: map[int32][]ackedCommit{}, attempted: map[int32]int64{}, commitErrs: map[string]int{}}
	h.t.Cleanup(g.stop)
	return g
}

// groupOpts are the options of a member: a short heartbeat interval, the minimum session
// timeout, and request timeouts that give up on a stopped (SIGSTOP) node soon.
func groupOpts(groupID, topic string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6 * time.Second),
		kgo.HeartbeatInterval(500 * time.Millisecond),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.RequestTimeoutOverhead(2 * time.Second),
	}
}

// addMember starts one more member.
func (g *groupRun) addMember() *groupMember {
	g.h.t.Helper()
	g.mu.Lock()
	idx := len(g.members)
	g.mu.Unlock()
	opts := append([]kgo.Opt{kgo.SeedBrokers(g.h.c.Brokers()...), kgo.ClientID(fmt.Sprintf("member-%d", idx))},
		groupOpts(g.group, g.topic)...)
	if os.Getenv("SLUICE_TEST_CLIENT_LOGS") != "" {
		// The members' own account of the group, for debugging.
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string {
			return time.Now().Format("15:04:05.000") + fmt.Sprintf(" member-%d ", idx)
		})))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		g.h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(g.ctx)
	m := &groupMember{idx: idx, cl: cl, cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	g.members = append(g.members, m)
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(m.done)
		g.consume(ctx, m)
	}()
	return m
}

func (g *groupRun) consume(ctx context.Context, m *groupMember) {
	for {
		polled := time.Now()
		fs := m.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		next := map[int32]int64{}
		g.mu.Lock()
		for _, r := range recs {
			g.reads = append(g.reads, groupRead{m.idx, r.Partition, r.Offset, string(r.Value), polled})
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		}
		for p, o := range next {
			g.attempted[p] = max(g.attempted[p], o)
		}
		gate := g.gate
		g.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := m.cl.CommitRecords(cctx, recs...)
		cancel()
		acked := time.Now()
		g.mu.Lock()
		if err != nil {
			g.commitErrs[commitErrKey(err)]++
		} else {
			for p, o := range next {
				g.commits[p] = append(g.commits[p], ackedCommit{o, acked})
			}
		}
		g.mu.Unlock()
	}
}

// commitErrKey names a commit error without what changes from one to the next.
func commitErrKey(err error) string {
	s := err.Error()
	if i := strings.Index(s, " (member"); i > 0 {
		s = s[:i]
	}
	return s
}

// stopMember closes one member's client, leaving the group.
func (m *groupMember) stop() {
	m.cancel()
	<-m.done
	m.cl.Close()
}

// stop stops every member.
func (g *groupRun) stop() {
	g.cancel()
	g.wg.Wait()
	g.mu.Lock()
	members := g.members
	g.mu.Unlock()
	for _, m := range members {
		m.cl.Close()
	}
}

// readCount is how many records the members have read.
func (g *groupRun) readCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.reads)
}

// lastCommits returns, per partition, the highest commit acknowledged so far.
func (g *groupRun) lastCommits() map[int32]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[int32]int64{}
	for p, cs := range g.commits {
		for _, c := range cs {
			out[p] = max(out[p], c.offset)
		}
	}
	return out
}

// attemptedCommits returns, per partition, the highest commit sent so far, acknowledged
// or not.
func (g *groupRun) attemptedCommits() map[int32]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[int32]int64{}
	for p, o := range g.attempted {
		out[p] = o
	}
	return out
}

// holdCommits makes the members wait before their next commits, until the returned
// function is called.
func (g *groupRun) holdCommits() (release func()) {
	gate := make(chan struct{})
	g.mu.Lock()
	g.gate = gate
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(gate)
	}
}

// committedSince says whether every partition had a commit acknowledged after t, and when
// the last of them first was.
func (g *groupRun) committedSince(t time.Time, partitions int32) (time.Time, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var last time.Time
	for p := range partitions {
		i := slices.IndexFunc(g.commits[p], func(c ackedCommit) bool { return c.at.After(t) })
		if i < 0 {
			return time.Time{}, fmt.Errorf("partition %d: no commit acknowledged since %s", p, t.Format("15:04:05.000"))
		}
		if at := g.commits[p][i].at; at.After(last) {
			last = at
		}
	}
	return last, nil
}

// waitCommittedSince waits (up to a minute) until every partition has had a commit
// acknowledged after since, and returns when the last of them was.
func (g *groupRun) waitCommittedSince(since time.Time, partitions int32, what string) time.Time {
	g.h.t.Helper()
	var all time.Time
	g.h.waitFor(60*time.Second, what, func() error {
		var err error
		all, err = g.committedSince(since, partitions)
		return err
	})
	return all
}

// firstCommitSince is when the first commit after t was acknowledged.
func (g *groupRun) firstCommitSince(t time.Time) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var first time.Time
	for _, cs := range g.commits {
		for _, c := range cs {
			if c.at.After(t) && (first.IsZero() || c.at.Before(first)) {
				first = c.at
			}
		}
	}
	return first, !first.IsZero()
}

// readPast says whether the members have read, in every partition, up to the offsets in
// ends (exclusive).
func (g *groupRun) readPast(ends map[int32]int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	top := map[int32]int64{}
	for _, r := range g.reads {
		top[r.partition] = max(top[r.partition], r.offset+1)
	}
	for p, end := range ends {
		if top[p] < end {
			return fmt.Errorf("partition %d read up to %d of %d", p, top[p], end)
		}
	}
	return nil
}

// ackedEnds is, per partition, the offset after the last acknowledged produce.
func (c *checker) ackedEnds() map[int32]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int32]int64{}
	for _, a := range c.acks {
		out[a.partition] = max(out[a.partition], a.offset+1)
	}
	return out
}

// commitAckedBefore is the highest commit of partition p acknowledged before t, -1 if none.
func (g *groupRun) commitAckedBefore(p int32, t time.Time) int64 {
	best := int64(-1)
	for _, c := range g.commits[p] {
		if c.at.Before(t) {
			best = max(best, c.offset)
		}
	}
	return best
}

// verify checks the group's reads against what the producers had acknowledged:
//   - every acknowledged record was read, with the value stored at its offset;
//   - a record read more than once was read again only from the uncommitted window: its
//     offset is at or after the highest commit of its partition acknowledged before the
//     poll that read it again began (nothing before an acknowledged commit is read twice).
func (g *groupRun) verify(ch *checker) {
	g.h.t.Helper()
	t := g.h.t
	g.mu.Lock()
	defer g.mu.Unlock()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	type key struct {
		p int32
		o int64
	}
	first := map[key]groupRead{}
	dups := 0
	for _, r := range g.reads {
		k := key{r.partition, r.offset}
		f, seen := first[k]
		if !seen {
			first[k] = r
			continue
		}
		if f.value != r.value {
			t.Fatalf("%s-%d@%d read as %q by member %d and as %q by member %d", g.topic, r.partition, r.offset, f.value, f.member, r.value, r.member)
		}
		dups++
		if c := g.commitAckedBefore(r.partition, r.polled); r.offset < c {
			t.Fatalf("%s-%d@%d read again by member %d in a poll begun at %s, after a commit of offset %d was acknowledged (first read by member %d)",
				g.topic, r.partition, r.offset, r.member, r.polled.Format("15:04:05.000"), c, f.member)
		}
	}
	for _, a := range ch.acks {
		r, ok := first[key{a.partition, a.offset}]
		if !ok {
			t.Fatalf("acknowledged record %q at %s-%d@%d was never read by the group", a.value, g.topic, a.partition, a.offset)
		}
		if r.value != a.value {
			t.Fatalf("%s-%d@%d: acknowledged %q, the group read %q", g.topic, a.partition, a.offset, a.value, r.value)
		}
	}
	commits := 0
	for _, cs := range g.commits {
		commits += len(cs)
	}
	var errs []string
	for e, n := range g.commitErrs {
		errs = append(errs, fmt.Sprintf("%d× %s", n, e))
	}
	sort.Strings(errs)
	t.Logf("group %s: %d reads, %d distinct, %d read again (all at or after the last acknowledged commit); %d acknowledged produces all read; %d partition commits acknowledged; failed commits: %v",
		g.group, len(g.reads), len(first), dups, len(ch.acks), commits, errs)
}

// checkCommitted fetches the group's committed offsets from its coordinator and checks that
// none is below the highest commit acknowledged before the fetch.
func (g *groupRun) checkCommitted(what string, skip ...*testnode.Node) map[int32]int64 {
	g.h.t.Helper()
	before := g.lastCommits()
	var got map[int32]int64
	g.h.waitFor(30*time.Second, "committed offsets of "+g.group+" "+what, func() error {
		var err error
		got, err = g.h.fetchCommitted(g.group, g.topic, skip...)
		return err
	})
	for p, c := range before {
		if got[p] < c {
			g.h.t.Fatalf("%s: %s-%d committed offset %d, below the commit of %d acknowledged before", what, g.topic, p, got[p], c)
		}
	}
	return got
}

// fetchCommitted asks the group's coordinator for its committed offsets of topic.
func (h *clusterHarness) fetchCommitted(groupID, topic string, skip ...*testnode.Node) (map[int32]int64, error) {
	c, err := h.agreedCoordinator(groupID, skip...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = groupID
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = groupID
	req.Groups = []kmsg.OffsetFetchRequestGroup{rg}
	r, err := nodeRequest(ctx, c, req)
	if err != nil {
		return nil, err
	}
	resp := r.(*kmsg.OffsetFetchResponse)
	out := map[int32]int64{}
	if resp.Version >= 8 {
		if len(resp.Groups) != 1 {
			return nil, fmt.Errorf("OffsetFetch: %d groups", len(resp.Groups))
		}
		if err := kerr.ErrorForCode(resp.Groups[0].ErrorCode); err != nil {
			return nil, fmt.Errorf("OffsetFetch at %s: %w", c.Name, err)
		}
		for _, t := range resp.Groups[0].Topics {
			for _, p := range t.Partitions {
				if t.Topic == topic && p.ErrorCode == 0 {
					out[p.Partition] = p.Offset
				}
			}
		}
		return out, nil
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("OffsetFetch at %s: %w", c.Name, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if t.Topic == topic && p.ErrorCode == 0 {
				out[p.Partition] = p.Offset
			}
		}
	}
	return out, nil
}

// offsetsRecords reads partition p of __consumer_offsets from node n's log (every
// committed record) and decodes them.
type offsetsRecord struct {
	offset int64
	commit *kmsg.OffsetCommitKey
	value  *kmsg.OffsetCommitValue
	group  *kmsg.GroupMetadataKey
	meta   *kmsg.GroupMetadataValue // nil: tombstone
}

func (h *clusterHarness) offsetsRecords(p int32) []offsetsRecord {
	h.t.Helper()
	offsets := map[string]map[int32]kgo.Offset{group.Topic: {p: kgo.NewOffset().AtStart()}}
	cl := h.client(kgo.ConsumePartitions(offsets), kgo.FetchMaxWait(200*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var end int64
	h.waitFor(30*time.Second, "end of "+group.Topic, func() error {
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = group.Topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		r, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
			return fmt.Errorf("ListOffsets answer %+v", r)
		}
		if err := kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode); err != nil {
			return err
		}
		end = r.Topics[0].Partitions[0].Offset
		return nil
	})
	var out []offsetsRecord
	next := int64(0)
	for next < end {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("reading %s-%d: %v at %d of %d", group.Topic, p, ctx.Err(), next, end)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			rec := offsetsRecord{offset: r.Offset}
			if len(r.Key) < 2 {
				h.t.Fatalf("%s-%d@%d: key of %d bytes", group.Topic, p, r.Offset, len(r.Key))
			}
			switch binary.BigEndian.Uint16(r.Key) {
			case 0, 1:
				k := kmsg.NewOffsetCommitKey()
				if err := k.ReadFrom(r.Key); err != nil {
					h.t.Fatalf("%s-%d@%d: %v", group.Topic, p, r.Offset, err)
				}
				rec.commit = &k
				if r.Value != nil {
					v := kmsg.NewOffsetCommitValue()
					if err := v.ReadFrom(r.Value); err != nil {
						h.t.Fatalf("%s-%d@%d: %v", group.Topic, p, r.Offset, err)
					}
					rec.value = &v
				}
			case 2:
				k := kmsg.NewGroupMetadataKey()
				if err := k.ReadFrom(r.Key); err != nil {
					h.t.Fatalf("%s-%d@%d: %v", group.Topic, p, r.Offset, err)
				}
				rec.group = &k
				if r.Value != nil {
					v := kmsg.NewGroupMetadataValue()
					if err := v.ReadFrom(r.Value); err != nil {
						h.t.Fatalf("%s-%d@%d: %v", group.Topic, p, r.Offset, err)
					}
					rec.meta = &v
				}
			}
			out = append(out, rec)
		})
	}
	return out
}

// generations returns each member's view of its member ID and generation.
func (g *groupRun) generations() []int32 {
	g.mu.Lock()
	members := g.members
	g.mu.Unlock()
	var out []int32
	for _, m := range members {
		_, gen := m.cl.GroupMetadata()
		out = append(out, gen)
	}
	return out
}

// aliveIn says whether node id is alive in n's view of the cluster.
func (h *clusterHarness) aliveIn(n *testnode.Node, id int) (bool, error) {
	st, err := h.status(n)
	if err != nil {
		return false, err
	}
	for _, ns := range st.Nodes {
		if int(ns.ID) == id {
			return ns.Alive, nil
		}
	}
	return false, fmt.Errorf("%s does not know node %d", n.Name, id)
}

// staleProbe sends node n a Heartbeat and an OffsetCommit as member of generation gen of
// group, and returns their error codes. The commit carries the metadata "stale-probe" and
// offset 0, so that it can be looked for in __consumer_offsets.
func staleProbe(n *testnode.Node, groupID, memberID string, gen int32, topic string) (hb, commit int16, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	hreq := kmsg.NewPtrHeartbeatRequest()
	hreq.Group, hreq.MemberID, hreq.Generation = groupID, memberID, gen
	r, err := nodeRequest(ctx, n, hreq)
	if err != nil {
		return 0, 0, fmt.Errorf("heartbeat to %s: %w", n.Name, err)
	}
	hb = r.(*kmsg.HeartbeatResponse).ErrorCode
	creq := kmsg.NewPtrOffsetCommitRequest()
	creq.Group, creq.MemberID, creq.Generation = groupID, memberID, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.Metadata = 0, 0, kmsg.StringPtr("stale-probe")
	rt.Partitions = append(rt.Partitions, rp)
	creq.Topics = append(creq.Topics, rt)
	r, err = nodeRequest(ctx, n, creq)
	if err != nil {
		return hb, 0, fmt.Errorf("offset commit to %s: %w", n.Name, err)
	}
	cresp := r.(*kmsg.OffsetCommitResponse)
	if len(cresp.Topics) != 1 || len(cresp.Topics[0].Partitions) != 1 {
		return hb, 0, fmt.Errorf("offset commit to %s: answer %+v", n.Name, cresp)
	}
	return hb, cresp.Topics[0].Partitions[0].ErrorCode, nil
}

// checkOffsetsLog reads the group's __consumer_offsets partition and checks it: the
// generations of the group's metadata records never go back, and no commit with the
// metadata "stale-probe" was ever stored.
func (h *clusterHarness) checkOffsetsLog(groupID string) {
	h.t.Helper()
	p := group.Partition(groupID, offsetsPartitions)
	recs := h.offsetsRecords(p)
	gen := int32(-1)
	metas, commits := 0, 0
	for _, r := range recs {
		switch {
		case r.commit != nil && r.commit.Group == groupID:
			commits++
			if r.value != nil && r.value.Metadata == "stale-probe" {
				h.t.Fatalf("%s-%d@%d: a commit from a stale generation was stored: %+v", group.Topic, p, r.offset, r.value)
			}
		case r.group != nil && r.group.Group == groupID && r.meta != nil:
			metas++
			if r.meta.Generation < gen {
				h.t.Fatalf("%s-%d@%d: group %s generation %d after %d", group.Topic, p, r.offset, groupID, r.meta.Generation, gen)
			}
			gen = r.meta.Generation
		}
	}
	h.t.Logf("%s-%d: %d records, %d commits and %d metadata records of %s, generations never going back (last %d)", group.Topic, p, len(recs), commits, metas, groupID, gen)
}

// pickGroup returns a group name starting with prefix whose __consumer_offsets partition
// is led by its data group's preferred leader, so that the group, moved away by a failure,
// moves back to that node once it returns.
func (h *clusterHarness) pickGroup(prefix string) string {
	h.t.Helper()
	var name string
	h.waitFor(60*time.Second, "a group coordinated by its preferred leader", func() error {
		st, err := h.status(h.running()[0])
		if err != nil {
			return err
		}
		groups := map[string]replication.GroupStatus{}
		for _, g := range st.Groups {
			groups[g.Name] = g
		}
		where := map[int32]string{}
		for _, p := range st.Partitions {
			if p.Topic == group.Topic {
				where[p.Partition] = p.Group
			}
		}
		for i := range 100 {
			name = fmt.Sprintf("%s-%d", prefix, i)
			g, ok := groups[where[group.Partition(name, offsetsPartitions)]]
			if !ok || len(g.Members) == 0 || g.Leader != g.Members[0] {
				continue
			}
			c, err := h.agreedCoordinator(name)
			if err != nil {
				return err
			}
			if c.ID == int(g.Leader) {
				return nil
			}
		}
		return fmt.Errorf("no data group of %s is led by its preferred leader", group.Topic)
	})
	return name
}
