package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"
)

// Coordinator coordinates the groups whose __consumer_offsets partitions this node leads.
// Its methods are safe for concurrent use; each answers one Kafka request.
type Coordinator struct {
	cfg    Config
	log    Log
	logger *zap.Logger

	inbox chan func()
	quit  chan struct{} // closed by Close
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup // run, writers, loaders

	// Owned by run.
	groups map[string]*group
	shards map[int32]*shard
	closed bool
	epochs uint64 // shard epochs handed out
	// loadFailed is when loading each partition last failed: it is tried again after
	// LeadershipCheck, not at every request.
	loadFailed map[int32]time.Time
}

// shardState says whether a __consumer_offsets partition's groups may be served.
type shardState int8

const (
	shardLoading shardState = iota
	shardLoaded
)

// shard is a __consumer_offsets partition this node leads.
type shard struct {
	id    int32
	state shardState
	// epoch tells this load of the partition from an earlier one, so that the outcome of a
	// load or an append started under an earlier one is dropped.
	epoch uint64
	// leaderEpoch is the partition's leader epoch when this node came to lead it: the
	// groups were loaded under it, and are good only while it lasts. Appends are made in
	// it, and a different one (this node lost the partition and won it back) reloads.
	leaderEpoch int32
	writer      *writer
	cancel      context.CancelFunc // stops the loader and the writer
}

// New starts a coordinator over log. It loads the partitions this node leads in the
// background (LeadershipCheck); call Close to stop it.
func New(cfg Config, log Log, logger *zap.Logger) *Coordinator {
	if logger == nil {
		logger = zap.NewNop()
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &Coordinator{
		cfg:        cfg.withDefaults(),
		log:        log,
		logger:     logger,
		inbox:      make(chan func(), 256),
		quit:       make(chan struct{}),
		ctx:        ctx,
		stop:       stop,
		groups:     make(map[string]*group),
		shards:     make(map[int32]*shard),
		loadFailed: make(map[int32]time.Time),
	}
	c.wg.Add(1)
	go c.run()
	c.post(func() {
		c.checkLeadership()
		c.scheduleLeadershipCheck()
		c.scheduleExpiry()
	})
	return c
}

// Config returns the configuration in force, defaults filled in.
func (c *Coordinator) Config() Config { return c.cfg }

// Close stops the coordinator: waiting requests are answered NOT_COORDINATOR (or with
// ErrClosed), appends in flight are abandoned with their outcome unknown.
func (c *Coordinator) Close() error {
	select {
	case <-c.quit:
		return nil
	default:
	}
	close(c.quit)
	c.stop()
	c.wg.Wait()
	return nil
}

// Nudge makes the coordinator look at once at which partitions this node leads, for
// callers that know leadership just changed.
func (c *Coordinator) Nudge() { c.post(c.checkLeadership) }

// run owns the groups: it runs every closure posted to inbox, one at a time.
func (c *Coordinator) run() {
	defer c.wg.Done()
	for {
		select {
		case fn := <-c.inbox:
			fn()
		case <-c.quit:
			c.shutdown()
			return
		}
	}
}

// post hands fn to run; it reports false when the coordinator is closed.
func (c *Coordinator) post(fn func()) bool {
	select {
	case c.inbox <- fn:
		return true
	case <-c.quit:
		return false
	}
}

// ask runs fn on run, which must call reply exactly once (possibly later, from another
// closure run by run), and waits for that answer. It returns false when ctx ends or the
// coordinator closes first.
func ask[T any](ctx context.Context, c *Coordinator, fn func(reply func(T))) (T, bool) {
	ch := make(chan T, 1)
	var zero T
	if !c.post(func() { fn(func(v T) { ch <- v }) }) {
		return zero, false
	}
	select {
	case v := <-ch:
		return v, true
	case <-ctx.Done():
		return zero, false
	case <-c.quit:
		return zero, false
	}
}

// shutdown answers every waiting join and sync and stops timers.
func (c *Coordinator) shutdown() {
	c.closed = true
	for id := range c.shards {
		c.unload(id)
	}
}

// after runs fn on run once d has passed, unless the coordinator closed meanwhile.
func (c *Coordinator) after(d time.Duration, fn func()) Timer {
	return c.cfg.Clock.AfterFunc(d, func() { c.post(fn) })
}

// shardOf returns the loaded shard of group name, or the error code to answer with. It
// asks the log who leads the group's partition first, so that a request is never answered
// from groups loaded under a leadership that has ended, however recently.
func (c *Coordinator) shardOf(name string) (*shard, int16) {
	p := Partition(name, c.cfg.Partitions)
	s, ld, dropped := c.checkPartition(p)
	if dropped {
		c.logger.Info("no longer the group coordinator for partition", zap.Int32("partition", p),
			zap.Int32("leader", ld.Node), zap.Int32("leader_epoch", ld.Epoch))
	}
	switch {
	case s == nil:
		if ld.Node == c.cfg.NodeID {
			// Ours, but not ready yet (the partition is still opening, or its new
			// leadership has not applied everything before it).
			return nil, kerr.CoordinatorLoadInProgress.Code
		}
		return nil, kerr.NotCoordinator.Code
	case s.state == shardLoading:
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	return s, 0
}

// checkPartition brings partition p in line with its leadership as the log knows it: the
// groups of a partition this node no longer leads, or leads in another leader epoch than
// the one they were loaded under, are dropped (dropped is true), and a partition this node
// leads without groups loaded for that epoch starts loading. It returns p's shard, nil
// when this node does not lead p.
func (c *Coordinator) checkPartition(p int32) (s *shard, ld Leadership, dropped bool) {
	ld = c.log.Leader(p)
	s = c.shards[p]
	if s != nil && (!ld.Local || ld.Epoch != s.leaderEpoch) {
		c.unload(p)
		s, dropped = nil, true
	}
	if s == nil && ld.Local && !c.closed {
		if failed, ok := c.loadFailed[p]; ok && c.cfg.Clock.Now().Sub(failed) < c.cfg.LeadershipCheck {
			return nil, ld, dropped
		}
		s = c.startLoad(p, ld.Epoch)
	}
	return s, ld, dropped
}

// checkLeadership loads the partitions this node has come to lead and drops those it no
// longer leads (checkPartition on each).
func (c *Coordinator) checkLeadership() {
	if c.closed {
		return
	}
	var dropped []int32
	for p := range c.cfg.Partitions {
		if _, _, d := c.checkPartition(p); d {
			dropped = append(dropped, p)
		}
	}
	if len(dropped) > 0 {
		c.logger.Info("no longer the group coordinator for partitions (or leading them in a new leader epoch)",
			zap.Int32s("partitions", dropped))
	}
}

// scheduleLeadershipCheck keeps checkLeadership running.
func (c *Coordinator) scheduleLeadershipCheck() {
	c.after(c.cfg.LeadershipCheck, func() {
		c.checkLeadership()
		c.scheduleLeadershipCheck()
	})
}

// startLoad starts loading partition p, led by this node in leaderEpoch, and returns its
// shard (loading).
func (c *Coordinator) startLoad(p, leaderEpoch int32) *shard {
	c.epochs++
	ctx, cancel := context.WithCancel(c.ctx)
	s := &shard{id: p, state: shardLoading, epoch: c.epochs, leaderEpoch: leaderEpoch, cancel: cancel}
	s.writer = newWriter(c, p, leaderEpoch)
	c.shards[p] = s
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		s.writer.run(ctx)
	}()
	go func() {
		defer c.wg.Done()
		start := c.cfg.Clock.Now()
		loaded, err := c.readPartition(ctx, p)
		c.post(func() {
			if cur := c.shards[p]; cur != s {
				return
			}
			if err != nil {
				if ctx.Err() == nil {
					c.logger.Error("loading groups failed; will retry", zap.Int32("partition", p), zap.Error(err))
					c.loadFailed[p] = c.cfg.Clock.Now()
				}
				c.unload(p)
				return
			}
			delete(c.loadFailed, p)
			c.install(s, loaded)
			level := zap.DebugLevel
			if len(loaded) > 0 {
				level = zap.InfoLevel
			}
			c.logger.Log(level, "loaded groups", zap.Int32("partition", p), zap.Int32("leader_epoch", leaderEpoch),
				zap.Int("groups", len(loaded)), zap.Duration("took", c.cfg.Clock.Now().Sub(start)))
		})
	}()
	return s
}

// unload forgets the groups of partition p: waiting joins and syncs are answered
// NOT_COORDINATOR.
func (c *Coordinator) unload(p int32) {
	s := c.shards[p]
	if s == nil {
		return
	}
	s.cancel()
	delete(c.shards, p)
	for name, g := range c.groups {
		if g.shard != p {
			continue
		}
		c.failWaiting(g, kerr.NotCoordinator.Code)
		for _, m := range g.members {
			if m.heartbeat != nil {
				m.heartbeat.Stop()
			}
		}
		for _, t := range g.pending {
			t.Stop()
		}
		if g.rebalance != nil {
			g.rebalance.Stop()
		}
		delete(c.groups, name)
	}
}

// append writes records to the group's partition; done runs on run once the batch is
// durable (err nil) or failed. When the partition changed hands meanwhile, done gets an
// error wrapping ErrNotLeader.
func (c *Coordinator) append(g *group, records []record, done func(err error)) {
	s := c.shards[g.shard]
	if s == nil || s.state != shardLoaded {
		done(fmt.Errorf("append to partition %d: %w", g.shard, ErrNotLeader))
		return
	}
	g.writes++
	batch := buildBatch(c.cfg.Clock.Now().UnixMilli(), records)
	s.writer.enqueue(batch, func(err error) {
		g.writes--
		if cur := c.shards[g.shard]; cur != s || cur.state != shardLoaded {
			err = fmt.Errorf("append to partition %d: %w", g.shard, ErrNotLeader)
		}
		done(err)
	})
}

// appendErrorCode turns a failed append into the code Kafka answers with.
func appendErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNotLeader):
		return kerr.NotCoordinator.Code
	default:
		return kerr.CoordinatorNotAvailable.Code
	}
}

// newMemberID returns prefix-<uuid>, as Kafka names members.
func newMemberID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return prefix + "-" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// writer appends batches to one partition in order, one at a time, and posts each outcome
// back to run in the same order. It appends in the leader epoch its shard was loaded under
// only.
type writer struct {
	c           *Coordinator
	partition   int32
	leaderEpoch int32
	mu          sync.Mutex
	queue       []writeJob
	wake        chan struct{}
}

type writeJob struct {
	batch []byte
	done  func(error) // run on run
}

func newWriter(c *Coordinator, p, leaderEpoch int32) *writer {
	return &writer{c: c, partition: p, leaderEpoch: leaderEpoch, wake: make(chan struct{}, 1)}
}

// enqueue adds a batch; it never blocks.
func (w *writer) enqueue(batch []byte, done func(error)) {
	w.mu.Lock()
	w.queue = append(w.queue, writeJob{batch, done})
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *writer) run(ctx context.Context) {
	for {
		w.mu.Lock()
		jobs := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, j := range jobs {
			err := ctx.Err()
			if err == nil {
				_, err = w.c.log.Append(ctx, w.partition, w.leaderEpoch, j.batch)
			}
			if err != nil {
				err = fmt.Errorf("append to %s partition %d: %w", Topic, w.partition, err)
			}
			w.c.post(func() { j.done(err) })
		}
		if len(jobs) > 0 {
			continue
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			w.mu.Lock()
			jobs := w.queue
			w.queue = nil
			w.mu.Unlock()
			for _, j := range jobs {
				w.c.post(func() { j.done(fmt.Errorf("append to %s partition %d: %w", Topic, w.partition, ctx.Err())) })
			}
			return
		}
	}
}
