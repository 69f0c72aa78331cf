package group

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/segment/segmenttest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeClock is a Clock moved by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	when    time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// advanceTo moves the clock to when and calls, in time order, every timer due by then.
func (c *fakeClock) advanceTo(when time.Time) {
	for {
		c.mu.Lock()
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].when.Before(c.timers[j].when) })
		var due *fakeTimer
		for i, t := range c.timers {
			if t.stopped {
				continue
			}
			if !t.when.After(when) {
				due = t
				c.timers = append(c.timers[:i:i], c.timers[i+1:]...)
			}
			break
		}
		if due == nil {
			c.now = when
			c.timers = filterStopped(c.timers)
			c.mu.Unlock()
			return
		}
		due.stopped = true
		if due.when.After(c.now) {
			c.now = due.when
		}
		c.mu.Unlock()
		due.f()
	}
}

func filterStopped(ts []*fakeTimer) []*fakeTimer {
	out := ts[:0]
	for _, t := range ts {
		if !t.stopped {
			out = append(out, t)
		}
	}
	return out
}

// memLog is an in-memory Log: each partition is a list of batches with offsets assigned.
type memLog struct {
	mu         sync.Mutex
	partitions map[int32][][]byte
	notLeader  map[int32]bool
	epochs     map[int32]int32 // leader epoch per partition
	appendErr  error
	readGate   chan struct{} // when not nil, Read waits for it to close
	appendGate chan struct{} // when not nil, Append waits for it to close
	readErr    error         // when not nil, Read fails with it
	reads      int
	appends    int
}

func newMemLog() *memLog {
	return &memLog{partitions: make(map[int32][][]byte), notLeader: make(map[int32]bool), epochs: make(map[int32]int32)}
}

func (l *memLog) nextOffset(p int32) int64 {
	bs := l.partitions[p]
	if len(bs) == 0 {
		return 0
	}
	last := bs[len(bs)-1]
	return int64(binary.BigEndian.Uint64(last)) + int64(binary.BigEndian.Uint32(last[23:])) + 1
}

func (l *memLog) Append(ctx context.Context, p, epoch int32, batch []byte) (int64, error) {
	l.mu.Lock()
	gate := l.appendGate
	l.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.notLeader[p] || l.epochs[p] != epoch {
		return 0, fmt.Errorf("mem log: %w", ErrNotLeader)
	}
	return l.appendLocked(p, batch)
}

// appendOther appends batch to p as another leader would: whatever the epoch.
func (l *memLog) appendOther(p int32, batch []byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appendLocked(p, batch)
}

func (l *memLog) appendLocked(p int32, batch []byte) (int64, error) {
	if l.appendErr != nil {
		return 0, l.appendErr
	}
	if _, err := decodeBatch(batch); err != nil {
		return 0, err
	}
	base := l.nextOffset(p)
	b := append([]byte(nil), batch...)
	binary.BigEndian.PutUint64(b, uint64(base))
	l.partitions[p] = append(l.partitions[p], b)
	l.appends++
	return base, nil
}

func (l *memLog) Bounds(ctx context.Context, p int32) (int64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return 0, l.nextOffset(p), nil
}

func (l *memLog) Read(ctx context.Context, p int32, from int64, maxBytes int) ([]byte, error) {
	l.mu.Lock()
	gate := l.readGate
	l.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if l.readErr != nil {
		return nil, l.readErr
	}
	var out []byte
	for _, b := range l.partitions[p] {
		h := segmenttest.Header(b)
		next := int64(h.LastOffset()) + 1
		if next <= from {
			continue
		}
		if len(out) > 0 && len(out)+len(b) > maxBytes {
			break
		}
		out = append(out, b...)
	}
	return out, nil
}

func (l *memLog) Leader(p int32) Leadership {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.notLeader[p] {
		return Leadership{Node: 2, Epoch: l.epochs[p]}
	}
	return Leadership{Node: 1, Epoch: l.epochs[p], Local: true}
}

// setLeader makes this node (1) lead p or another (2); each change is a new leader epoch.
func (l *memLog) setLeader(p int32, local bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.notLeader[p] == !local {
		return
	}
	l.notLeader[p] = !local
	l.epochs[p]++
}

// newEpoch makes p's leadership a new one, as when this node loses p and wins it back
// between two looks of the coordinator.
func (l *memLog) newEpoch(p int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.epochs[p] += 2
}

var errDiskFull = errors.New("disk full")

// harness is a coordinator on a memLog and a fake clock.
type harness struct {
	t     *testing.T
	c     *Coordinator
	log   *memLog
	clock *fakeClock
	cfg   Config
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, log: newMemLog(), clock: newFakeClock()}
	cfg.NodeID = 1
	cfg.Clock = h.clock
	if cfg.Partitions == 0 {
		cfg.Partitions = 4
	}
	if cfg.InitialRebalanceDelay == 0 {
		cfg.InitialRebalanceDelay = -1
	}
	if cfg.MinSessionTimeout == 0 {
		cfg.MinSessionTimeout = time.Second
	}
	h.cfg = cfg
	h.start()
	return h
}

// start (re)starts the coordinator on the harness's log and waits until it has loaded.
func (h *harness) start() {
	h.t.Helper()
	h.c = New(h.cfg, h.log, nil)
	h.t.Cleanup(func() { h.c.Close() })
	h.waitLoaded()
}

func (h *harness) restart() {
	h.t.Helper()
	h.c.Close()
	h.start()
}

func (h *harness) waitLoaded() {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		loaded, _ := ask(context.Background(), h.c, func(reply func(bool)) {
			// Every partition this node leads has its groups loaded (a partition whose
			// load failed has no shard until it is tried again).
			all := len(h.c.shards) > 0
			for p := range h.c.cfg.Partitions {
				if s := h.c.shards[p]; h.c.log.Leader(p).Local && (s == nil || s.state != shardLoaded) {
					all = false
				}
			}
			reply(all)
		})
		if loaded {
			return
		}
		time.Sleep(time.Millisecond)
	}
	h.t.Fatal("coordinator did not load its partitions")
}

// sync waits until run has handled everything posted before it, including closures
// posted by timers that already fired and appends that already finished.
func (h *harness) sync() {
	h.t.Helper()
	for range 3 {
		ask(context.Background(), h.c, func(reply func(struct{})) { reply(struct{}{}) })
		// Let writers post their outcomes.
		h.waitWriters()
	}
}

func (h *harness) waitWriters() {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		busy, _ := ask(context.Background(), h.c, func(reply func(bool)) {
			n := 0
			for _, g := range h.c.groups {
				n += g.writes
			}
			reply(n > 0)
		})
		if !busy {
			return
		}
		time.Sleep(time.Millisecond)
	}
	h.t.Fatal("appends did not finish")
}

// advance moves the fake clock forward in small steps, letting run handle what each step
// fires.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	const step = 100 * time.Millisecond
	end := h.clock.Now().Add(d)
	for now := h.clock.Now(); now.Before(end); {
		now = minTime(now.Add(step), end)
		h.clock.advanceTo(now)
		h.sync()
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

var ctx = context.Background()

// async runs a request that may wait (JoinGroup, SyncGroup) on its own goroutine.
func async[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return ch
}

// await returns the answer of an async request, failing the test after a while.
func await[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("request did not complete")
	}
	panic("unreachable")
}

// pendingAnswer fails the test if ch already has an answer.
func pendingAnswer[T any](t *testing.T, h *harness, ch <-chan T) {
	t.Helper()
	h.sync()
	select {
	case v := <-ch:
		t.Fatalf("request answered early: %+v", v)
	default:
	}
}

func consumerMeta(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Version = 0
	m.Topics = topics
	return m.AppendTo(nil)
}

type joinOpt func(*kmsg.JoinGroupRequest)

func withMember(id string) joinOpt { return func(r *kmsg.JoinGroupRequest) { r.MemberID = id } }
func withInstance(id string) joinOpt {
	return func(r *kmsg.JoinGroupRequest) { r.InstanceID = kmsg.StringPtr(id) }
}
func withVersion(v int16) joinOpt { return func(r *kmsg.JoinGroupRequest) { r.Version = v } }
func withProtocols(names ...string) joinOpt {
	return func(r *kmsg.JoinGroupRequest) {
		r.Protocols = nil
		for _, n := range names {
			r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: n, Metadata: consumerMeta("t")})
		}
	}
}
func withProtocolType(pt string) joinOpt {
	return func(r *kmsg.JoinGroupRequest) { r.ProtocolType = pt }
}
func withTopics(topics ...string) joinOpt {
	return func(r *kmsg.JoinGroupRequest) {
		for i := range r.Protocols {
			r.Protocols[i].Metadata = consumerMeta(topics...)
		}
	}
}
func withTimeouts(session, rebalance time.Duration) joinOpt {
	return func(r *kmsg.JoinGroupRequest) {
		r.SessionTimeoutMillis = int32(session.Milliseconds())
		r.RebalanceTimeoutMillis = int32(rebalance.Milliseconds())
	}
}

func joinReqFor(group string, opts ...joinOpt) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = 9
	r.Group = group
	r.SessionTimeoutMillis = 10_000
	r.RebalanceTimeoutMillis = 20_000
	r.ProtocolType = "consumer"
	withProtocols("range")(r)
	for _, o := range opts {
		o(r)
	}
	return r
}

// joinAsync sends a join and returns its pending answer. The join is in run's queue when
// joinAsync returns, so whatever the test does next happens after it.
func (h *harness) joinAsync(group string, opts ...joinOpt) <-chan *kmsg.JoinGroupResponse {
	req := joinReqFor(group, opts...)
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	h.c.post(func() { h.c.join(req, "client", "/127.0.0.1", func(r *kmsg.JoinGroupResponse) { ch <- r }) })
	return ch
}

// newMember joins a new member, dynamic (the two-step join) or static, and returns its ID
// and the pending answer of its join.
func (h *harness) newMember(group string, opts ...joinOpt) (string, <-chan *kmsg.JoinGroupResponse) {
	h.t.Helper()
	req := joinReqFor(group, opts...)
	if req.InstanceID != nil {
		ch := h.joinAsync(group, opts...)
		h.sync()
		id, _ := ask(ctx, h.c, func(reply func(string)) {
			if g := h.c.groups[group]; g != nil {
				reply(g.static[*req.InstanceID])
				return
			}
			reply("")
		})
		return id, ch
	}
	first := await(h.t, h.joinAsync(group, opts...))
	if first.ErrorCode != 15+64 { // MEMBER_ID_REQUIRED (79)
		h.t.Fatalf("first join: error %d, want MEMBER_ID_REQUIRED", first.ErrorCode)
	}
	id := first.MemberID
	return id, h.joinAsync(group, append(opts, withMember(id))...)
}

func (h *harness) syncGroup(group, member string, gen int32, assignments map[string][]byte) <-chan *kmsg.SyncGroupResponse {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group = group
	req.MemberID = member
	req.Generation = gen
	for id, a := range assignments {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return h.syncAsync(req)
}

// syncAsync sends a sync and returns its pending answer, like joinAsync.
func (h *harness) syncAsync(req *kmsg.SyncGroupRequest) <-chan *kmsg.SyncGroupResponse {
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	h.c.post(func() { h.c.syncGroup(req, func(r *kmsg.SyncGroupResponse) { ch <- r }) })
	return ch
}

func (h *harness) syncStatic(group, member, instance string, gen int32) <-chan *kmsg.SyncGroupResponse {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group = group
	req.MemberID = member
	req.InstanceID = kmsg.StringPtr(instance)
	req.Generation = gen
	return h.syncAsync(req)
}

func (h *harness) heartbeat(group, member string, gen int32, instance *string) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = 4
	req.Group = group
	req.MemberID = member
	req.Generation = gen
	req.InstanceID = instance
	return h.c.Heartbeat(ctx, req).ErrorCode
}

func (h *harness) commit(group, member string, gen int32, topic string, offsets ...int64) *kmsg.OffsetCommitResponse {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 9
	req.Group = group
	req.MemberID = member
	req.Generation = gen
	t := kmsg.OffsetCommitRequestTopic{Topic: topic}
	for p, o := range offsets {
		tp := kmsg.NewOffsetCommitRequestTopicPartition()
		tp.Partition = int32(p)
		tp.Offset = o
		tp.LeaderEpoch = 3
		tp.Metadata = kmsg.StringPtr("m")
		t.Partitions = append(t.Partitions, tp)
	}
	req.Topics = []kmsg.OffsetCommitRequestTopic{t}
	return h.c.OffsetCommit(ctx, req)
}

func commitCodes(resp *kmsg.OffsetCommitResponse) []int16 {
	var out []int16
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out = append(out, p.ErrorCode)
		}
	}
	return out
}

// fetch returns the committed offsets of topic partitions 0..n-1 (v8 request).
func (h *harness) fetch(group, topic string, n int) ([]int64, int16) {
	h.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	rg := kmsg.OffsetFetchRequestGroup{Group: group}
	rt := kmsg.OffsetFetchRequestGroupTopic{Topic: topic}
	for p := range n {
		rt.Partitions = append(rt.Partitions, int32(p))
	}
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{rt}
	req.Groups = []kmsg.OffsetFetchRequestGroup{rg}
	resp := h.c.OffsetFetch(ctx, req)
	g := resp.Groups[0]
	if g.ErrorCode != 0 {
		return nil, g.ErrorCode
	}
	var out []int64
	for _, p := range g.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			h.t.Fatalf("fetch %s/%d: error %d", topic, p.Partition, p.ErrorCode)
		}
		out = append(out, p.Offset)
	}
	return out, 0
}

func (h *harness) describe(group string) kmsg.DescribeGroupsResponseGroup {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = 5
	req.Groups = []string{group}
	return h.c.DescribeGroups(ctx, req).Groups[0]
}

// stableGroup builds a Stable group of n dynamic members and returns their IDs (the
// leader first) and the generation.
func (h *harness) stableGroup(group string, n int, opts ...joinOpt) ([]string, int32) {
	h.t.Helper()
	id, ch := h.newMember(group, opts...)
	resp := await(h.t, ch)
	if resp.ErrorCode != 0 {
		h.t.Fatalf("join: error %d", resp.ErrorCode)
	}
	ids := []string{id}
	gen := resp.Generation
	await(h.t, h.syncGroup(group, id, gen, map[string][]byte{id: []byte("a0")}))
	for i := 1; i < n; i++ {
		newID, newCh := h.newMember(group, opts...)
		pendingAnswer(h.t, h, newCh)
		// The others learn of the rebalance by heartbeat and rejoin.
		var chans []<-chan *kmsg.JoinGroupResponse
		for _, old := range ids {
			if code := h.heartbeat(group, old, gen, nil); code != 27 { // REBALANCE_IN_PROGRESS
				h.t.Fatalf("heartbeat during rebalance: %d", code)
			}
			chans = append(chans, h.joinAsync(group, append(opts, withMember(old))...))
		}
		chans = append(chans, newCh)
		ids = append(ids, newID)
		assign := make(map[string][]byte)
		var syncs []<-chan *kmsg.SyncGroupResponse
		for j, ch := range chans {
			resp := await(h.t, ch)
			if resp.ErrorCode != 0 {
				h.t.Fatalf("rejoin %d: error %d", j, resp.ErrorCode)
			}
			gen = resp.Generation
			if resp.LeaderID == resp.MemberID {
				for _, m := range resp.Members {
					assign[m.MemberID] = []byte("a-" + m.MemberID)
				}
			}
		}
		for _, id := range ids {
			syncs = append(syncs, h.syncGroup(group, id, gen, assign))
		}
		for _, ch := range syncs {
			if resp := await(h.t, ch); resp.ErrorCode != 0 {
				h.t.Fatalf("sync: error %d", resp.ErrorCode)
			}
		}
	}
	return ids, gen
}
