package partition

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/replication"
	"github.com/sluicemq/sluice/segment"
)

// Entry types: the first byte of every entry a Partition replicates.
const (
	// entryBatch: a RecordBatch v2 as a producer sent it (with LogAppendTime applied).
	entryBatch byte = 1
	// entryDeleteRecords: an 8-byte offset; records below it are deleted.
	entryDeleteRecords byte = 2
)

// Errors returned by Partition methods (besides the batch and producer errors).
var (
	// ErrClosed: the partition has been closed (its topic deleted, or the node stopping).
	ErrClosed = errors.New("partition: closed")
	// ErrOffsetOutOfRange: a read below the log start offset or past the log end offset.
	ErrOffsetOutOfRange = errors.New("partition: offset out of range")
	// ErrBadEntry: an entry this version does not understand.
	ErrBadEntry = errors.New("partition: unknown entry")
	// ErrStorage wraps a failed log operation.
	ErrStorage = errors.New("partition: storage error")
)

// ProduceResult is where a produced batch landed.
type ProduceResult struct {
	BaseOffset int64
	// LogAppendTime is the broker timestamp for LogAppendTime topics, else -1.
	LogAppendTime  int64
	LogStartOffset int64
	// Duplicate is set when the batch was a retry of one already stored; BaseOffset is
	// then the original's and nothing was written.
	Duplicate bool
}

// applyResult is what Apply hands back through Replicate.
type applyResult struct {
	baseOffset int64
	duplicate  bool
	err        error
	// local: err is this replica's own (its log failed a write, its disk is full) and the
	// partition is as it was before the entry; a Raft group applies the entry again.
	local bool
}

var _ replication.LocalFailure = (*applyResult)(nil)

// ApplyFailed implements replication.LocalFailure.
func (r *applyResult) ApplyFailed() error {
	if r.local {
		return r.err
	}
	return nil
}

// storageFailure is the result of a log operation that failed. The failure is this
// replica's own unless the log is closed (the partition is going away) or the entry is
// larger than the log takes (which every replica shares).
func (p *Partition) storageFailure(op string, err error) *applyResult {
	return &applyResult{
		err:   fmt.Errorf("%w: %s %s-%d: %v", ErrStorage, op, p.topic, p.index, err),
		local: !errors.Is(err, log.ErrClosed) && !errors.Is(err, log.ErrEntryTooLarge),
	}
}

// pendingCommit maps a replication index to the log end offset after it.
type pendingCommit struct {
	index uint64
	end   int64
}

// epochStart is the first offset written in a leader epoch.
type epochStart struct {
	epoch int32
	start int64
}

// Partition is one partition on this node. It implements replication.StateMachine.
type Partition struct {
	topic   string
	index   int32
	topicID [16]byte
	key     string
	dir     string

	log    *log.Log
	repl   replication.Replicator
	logger *zap.Logger
	now    func() time.Time

	cfg atomic.Pointer[Config]

	// applyMu guards the apply-side state. The replicator already calls Apply, Commit,
	// Sync, Snapshot and Restore one at a time; applyMu also lets Checkpoint and Close
	// take a consistent view.
	applyMu   sync.Mutex
	producers producers
	epochs    []epochStart // ascending
	pending   []pendingCommit
	// unread counts the bytes applied since the replica's page cache was last looked
	// after (uncache).
	unread int64

	// hw is the high watermark: readers see offsets below it.
	// Invariant: LogStartOffset <= hw <= LogEndOffset.
	hw atomic.Int64

	wmu     sync.Mutex
	waiters map[*Waiter]struct{}

	closed atomic.Bool

	// detached is set while the replicator does not have the partition: a Manager stores
	// a partition before it registers it (so a caller the replicator tells of it finds it)
	// and attaches it once Register has returned, and detaches it before it unregisters
	// it. A detached partition may still be catching up or restoring: Leadership reports it
	// not Local, so it serves no client.
	detached atomic.Bool
}

// Waiter is woken (a non-blocking send on C) when the high watermark of a partition it
// is added to moves; it is removed from every partition when woken.
type Waiter struct {
	C chan struct{}
}

// NewWaiter returns a waiter with a buffered channel.
func NewWaiter() *Waiter { return &Waiter{C: make(chan struct{}, 1)} }

// Topic returns the partition's topic name.
func (p *Partition) Topic() string { return p.topic }

// Index returns the partition number.
func (p *Partition) Index() int32 { return p.index }

// TopicID returns the topic's UUID.
func (p *Partition) TopicID() [16]byte { return p.topicID }

// Key returns the partition's replication key.
func (p *Partition) Key() string { return p.key }

// Config returns the partition's current topic configs.
func (p *Partition) Config() Config { return *p.cfg.Load() }

// HighWatermark returns the offset below which records are committed and readable.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// LogStartOffset returns the first offset still stored.
func (p *Partition) LogStartOffset() int64 { return int64(p.log.LogStartOffset()) }

// LogEndOffset returns the offset the next appended record takes.
func (p *Partition) LogEndOffset() int64 { return int64(p.log.LogEndOffset()) }

// Leadership returns what this node knows of the partition's leader. Local says this
// node leads it and this copy serves: never while the partition is detached from the
// replicator.
func (p *Partition) Leadership() replication.Leadership {
	ld := p.repl.Leadership(p.key)
	if p.detached.Load() {
		ld.Local = false
	}
	return ld
}

// Produce validates a producer's RecordBatch v2, replicates it and returns where it landed
// once it is durable (per the replicator's fsync policy). The batch is copied; the caller
// may reuse it. Retries of an idempotent producer's recent batches return the original
// offsets.
func (p *Partition) Produce(ctx context.Context, batch []byte) (ProduceResult, error) {
	return p.Submit(ctx, batch)()
}

// Submit is Produce in two steps, for callers with several writes to pipeline: it
// validates and submits a copy of the batch (ordered after every batch submitted to this
// partition before it returned), and the function it returns waits for the result.
func (p *Partition) Submit(ctx context.Context, batch []byte) func() (ProduceResult, error) {
	buf := make([]byte, 1+len(batch))
	copy(buf[1:], batch)
	return p.submit(ctx, buf)
}

// ProduceInPlace is Produce for a batch at buf[1:], with buf[0] free for the entry type:
// it avoids copying the batch when the replicator does not keep entries after Replicate
// returns (see EntryRetainer). buf is modified (the entry type, LogAppendTime, the base
// offset and leader epoch); the caller may reuse it once ProduceInPlace returns.
func (p *Partition) ProduceInPlace(ctx context.Context, buf []byte) (ProduceResult, error) {
	return p.SubmitInPlace(ctx, buf)()
}

// SubmitInPlace is ProduceInPlace in two steps, for callers with several writes to
// pipeline: it validates the batch and submits it (ordered after every batch submitted
// to this partition before it returned), and the function it returns waits for the
// result. buf must stay untouched until that function has returned.
func (p *Partition) SubmitInPlace(ctx context.Context, buf []byte) func() (ProduceResult, error) {
	if len(buf) == 0 {
		return failedProduce(fmt.Errorf("%w: empty", ErrCorruptBatch))
	}
	if r, ok := p.repl.(EntryRetainer); !ok || r.RetainsEntries() {
		buf = append([]byte(nil), buf...)
	}
	return p.submit(ctx, buf)
}

func failedProduce(err error) func() (ProduceResult, error) {
	return func() (ProduceResult, error) { return ProduceResult{}, err }
}

// EntryRetainer is implemented by replicators that say whether they keep references to
// entry bytes after Replicate returns (a Raft log cache does); replicators that do not
// implement it are assumed to.
type EntryRetainer interface {
	RetainsEntries() bool
}

// submit validates and submits the batch at entry[1:] (entry[0] becomes the entry type)
// and returns the wait for its result.
func (p *Partition) submit(ctx context.Context, entry []byte) func() (ProduceResult, error) {
	if p.closed.Load() {
		return failedProduce(ErrClosed)
	}
	batch := entry[1:]
	if _, err := ValidateBatch(batch); err != nil {
		return failedProduce(err)
	}
	cfg := p.cfg.Load()
	if len(batch) > int(cfg.MaxMessageBytes) {
		return failedProduce(fmt.Errorf("%w: %d bytes, max.message.bytes is %d", ErrMessageTooLarge, len(batch), cfg.MaxMessageBytes))
	}
	entry[0] = entryBatch
	appendTime := int64(-1)
	if cfg.LogAppendTime {
		appendTime = p.now().UnixMilli()
		if err := segment.SetLogAppendTime(batch, appendTime); err != nil {
			return failedProduce(fmt.Errorf("%w: %v", ErrCorruptBatch, err))
		}
	}
	var wait func() (any, error)
	if ar, ok := p.repl.(replication.AsyncReplicator); ok {
		wait = ar.Submit(ctx, p.key, entry)
	} else {
		res, err := p.repl.Replicate(ctx, p.key, entry)
		wait = func() (any, error) { return res, err }
	}
	return func() (ProduceResult, error) {
		res, err := wait()
		if err != nil {
			return ProduceResult{}, err
		}
		ar, ok := res.(*applyResult)
		if !ok {
			return ProduceResult{}, fmt.Errorf("produce %s-%d: %w: apply returned %T", p.topic, p.index, ErrBadEntry, res)
		}
		if ar.err != nil {
			return ProduceResult{}, ar.err
		}
		return ProduceResult{BaseOffset: ar.baseOffset, LogAppendTime: appendTime, LogStartOffset: p.LogStartOffset(),
			Duplicate: ar.duplicate}, nil
	}
}

// Apply implements replication.StateMachine.
func (p *Partition) Apply(index, term uint64, entry []byte) any {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	res := p.apply(int32(term), entry)
	if res.local {
		return res
	}
	p.pending = append(p.pending, pendingCommit{index: index, end: int64(p.log.LogEndOffset())})
	p.uncache(len(entry))
	return res
}

// uncacheBytes is how many bytes a replica applies between two looks at its page cache.
const uncacheBytes = 4 << 20

// uncache keeps a follower's replica out of the page cache once n more bytes were
// appended (applied, or copied from the leader when catching up): only the leader serves
// reads, so a follower's pages are written to disk and dropped (log.Log.Uncache) rather
// than pushing out of memory the partitions this node leads. A follower that becomes the
// leader reads what it had not cached from disk. The leader keeps its pages but starts
// their write-back (log.Log.WriteBack), so that the disk takes them a few MiB at a time
// rather than in the group's periodic sync, which the Raft log's fsyncs would queue
// behind. applyMu is held.
func (p *Partition) uncache(n int) {
	p.unread += int64(n)
	if p.unread < uncacheBytes {
		return
	}
	p.unread = 0
	if !p.repl.Leadership(p.key).Local {
		p.log.Uncache()
	} else {
		p.log.WriteBack()
	}
}

func (p *Partition) apply(epoch int32, entry []byte) *applyResult {
	if len(entry) == 0 {
		return &applyResult{err: fmt.Errorf("%w: empty", ErrBadEntry)}
	}
	switch entry[0] {
	case entryBatch:
		batch := entry[1:]
		h, err := parseHeader(batch)
		if err != nil {
			return &applyResult{err: err}
		}
		if h.ProducerID >= 0 {
			dup, err := p.producers.check(&h)
			if err != nil {
				return &applyResult{err: err}
			}
			if dup != nil {
				return &applyResult{baseOffset: dup.baseOffset, duplicate: true}
			}
		}
		base, err := p.log.Append(batch, epoch)
		if err != nil {
			return p.storageFailure("append to", err)
		}
		p.producers.record(&h, int64(base))
		p.noteEpoch(epoch, int64(base))
		return &applyResult{baseOffset: int64(base)}
	case entryDeleteRecords:
		if len(entry) != 9 {
			return &applyResult{err: fmt.Errorf("%w: delete-records entry of %d bytes", ErrBadEntry, len(entry))}
		}
		off := int64(beUint64(entry[1:]))
		if off > int64(p.log.LogEndOffset()) || off < 0 {
			return &applyResult{err: fmt.Errorf("%w: delete records before %d", ErrOffsetOutOfRange, off)}
		}
		if off > int64(p.log.LogStartOffset()) {
			if err := p.log.DeleteBefore(log.Offset(off)); err != nil {
				return p.storageFailure("delete records in", err)
			}
		}
		return &applyResult{baseOffset: int64(p.log.LogStartOffset())}
	}
	return &applyResult{err: fmt.Errorf("%w: type %d", ErrBadEntry, entry[0])}
}

func beUint64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// noteEpoch records the first offset of a new leader epoch.
func (p *Partition) noteEpoch(epoch int32, offset int64) {
	if n := len(p.epochs); n == 0 || p.epochs[n-1].epoch < epoch {
		p.epochs = append(p.epochs, epochStart{epoch: epoch, start: offset})
	}
}

// Commit implements replication.StateMachine: the high watermark moves to the log end
// offset as of index, and fetch waiters wake.
func (p *Partition) Commit(index uint64) {
	p.applyMu.Lock()
	hw := int64(-1)
	i := 0
	for i < len(p.pending) && p.pending[i].index <= index {
		hw = p.pending[i].end
		i++
	}
	if i > 0 {
		n := copy(p.pending, p.pending[i:])
		p.pending = p.pending[:n]
	}
	p.applyMu.Unlock()
	if hw > p.hw.Load() {
		p.hw.Store(hw)
		p.wake()
	}
}

// Sync implements replication.StateMachine.
func (p *Partition) Sync() error {
	if err := p.log.Sync(); err != nil {
		return fmt.Errorf("sync %s-%d: %w", p.topic, p.index, err)
	}
	return nil
}

// SyncConcurrently implements replication.ConcurrentSyncer: the log lets appends go on
// while it syncs, and a sync covers every append that returned before it began.
func (p *Partition) SyncConcurrently() bool { return true }

// Snapshot implements replication.StateMachine: the next offset, leader epochs and
// producer table.
func (p *Partition) Snapshot() ([]byte, error) {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	return p.encodeState(), nil
}

// Restore implements replication.StateMachine: the log is cut back to the snapshot's next
// offset (emptied for nil) and the producer table and epochs replaced.
func (p *Partition) Restore(snap []byte) error {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	st := partitionState{producers: producers{}}
	if snap != nil {
		var err error
		if st, err = decodeState(snap); err != nil {
			return fmt.Errorf("restore %s-%d: %w", p.topic, p.index, err)
		}
	}
	if st.nextOffset > int64(p.log.LogEndOffset()) {
		return fmt.Errorf("restore %s-%d: %w: snapshot at offset %d, log ends at %d",
			p.topic, p.index, ErrStorage, st.nextOffset, p.log.LogEndOffset())
	}
	if st.nextOffset < int64(p.log.LogEndOffset()) {
		if err := p.log.TruncateTo(log.Offset(st.nextOffset)); err != nil {
			return fmt.Errorf("restore %s-%d: %w: %v", p.topic, p.index, ErrStorage, err)
		}
	}
	p.producers = st.producers
	p.epochs = st.epochs
	p.pending = p.pending[:0]
	p.hw.Store(int64(p.log.LogEndOffset()))
	p.wake()
	return nil
}

// AddWaiter arranges for w to be woken when the high watermark moves past hw (at once if
// it already has).
func (p *Partition) AddWaiter(w *Waiter, hw int64) {
	p.wmu.Lock()
	if p.waiters == nil {
		p.waiters = make(map[*Waiter]struct{})
	}
	p.waiters[w] = struct{}{}
	p.wmu.Unlock()
	if p.hw.Load() != hw || p.closed.Load() {
		select {
		case w.C <- struct{}{}:
		default:
		}
	}
}

// RemoveWaiter forgets w.
func (p *Partition) RemoveWaiter(w *Waiter) {
	p.wmu.Lock()
	delete(p.waiters, w)
	p.wmu.Unlock()
}

func (p *Partition) wake() {
	p.wmu.Lock()
	for w := range p.waiters {
		select {
		case w.C <- struct{}{}:
		default:
		}
		delete(p.waiters, w)
	}
	p.wmu.Unlock()
}

// Read returns whole batches from offset up to the high watermark, at least one batch if
// any is there even when larger than maxBytes. It returns nil with no error at the high
// watermark, and ErrOffsetOutOfRange below the log start offset or past the log end
// offset. The caller must Release the result.
func (p *Partition) Read(offset int64, maxBytes int) (*log.ReadResult, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	hw := p.hw.Load()
	if offset < int64(p.log.LogStartOffset()) || offset > int64(p.log.LogEndOffset()) {
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, p.log.LogStartOffset(), p.log.LogEndOffset())
	}
	if offset >= hw {
		return nil, nil
	}
	rr, err := p.log.Read(log.Offset(offset), maxBytes, log.Offset(hw))
	if err != nil {
		if errors.Is(err, log.ErrOffsetOutOfRange) {
			return nil, fmt.Errorf("%w: %v", ErrOffsetOutOfRange, err)
		}
		return nil, fmt.Errorf("%w: read %s-%d at %d: %v", ErrStorage, p.topic, p.index, offset, err)
	}
	return rr, nil
}

// OffsetForTimestamp returns the first committed record whose timestamp is at least ts,
// with that timestamp; found is false when there is none. The log finds the batch; the
// record is found inside it (decompressing it when needed).
func (p *Partition) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	hw := p.hw.Load()
	off, _, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		if errors.Is(err, log.ErrTimestampNotFound) || errors.Is(err, log.ErrOffsetOutOfRange) {
			return -1, -1, false, nil
		}
		return -1, -1, false, fmt.Errorf("%w: offset for timestamp in %s-%d: %v", ErrStorage, p.topic, p.index, err)
	}
	if int64(off) >= hw {
		return -1, -1, false, nil
	}
	// The batch's max timestamp is at or after ts, so one of its records is.
	o, t, ok, err := p.recordIn(int64(off), hw, func(t int64) bool { return t >= ts })
	if err != nil || !ok || o >= hw {
		return -1, -1, false, err
	}
	return o, t, true, nil
}

// recordIn finds the first record matching match in the batch holding offset.
func (p *Partition) recordIn(offset, hw int64, match func(int64) bool) (int64, int64, bool, error) {
	rr, err := p.log.Read(log.Offset(offset), 1, log.Offset(hw))
	if err != nil {
		return 0, 0, false, fmt.Errorf("%w: read %s-%d at %d: %v", ErrStorage, p.topic, p.index, offset, err)
	}
	b, err := rr.Bytes()
	rr.Release()
	if err != nil {
		return 0, 0, false, fmt.Errorf("%w: read %s-%d at %d: %v", ErrStorage, p.topic, p.index, offset, err)
	}
	if len(b) == 0 {
		return 0, 0, false, nil
	}
	o, t, ok, err := findRecord(b, match)
	if err != nil {
		p.logger.Warn("cannot look inside a stored batch; answering with the batch", zap.Int64("offset", offset), zap.Error(err))
		h, herr := segment.ParseBatchHeader(b)
		if herr != nil {
			return 0, 0, false, nil
		}
		return int64(h.BaseOffset), h.MaxTimestamp, match(h.MaxTimestamp), nil
	}
	return o, t, ok, nil
}

// MaxTimestamp returns the largest timestamp stored and the offset of the first record
// with it; found is false for an empty log.
func (p *Partition) MaxTimestamp() (timestamp, offset int64, found bool) {
	ts, off := p.log.MaxTimestamp()
	hw := p.hw.Load()
	if off < 0 || int64(off) >= hw {
		return -1, -1, false
	}
	if o, t, ok, err := p.recordIn(int64(off), hw, func(t int64) bool { return t == ts }); err == nil && ok {
		return t, o, true
	}
	return ts, int64(off), true
}

// LeaderEpoch returns the current leader epoch.
func (p *Partition) LeaderEpoch() int32 { return p.Leadership().Epoch }

// EpochForOffset returns the leader epoch that wrote offset, or -1 when unknown.
func (p *Partition) EpochForOffset(offset int64) int32 {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	e := int32(-1)
	for _, es := range p.epochs {
		if es.start > offset {
			break
		}
		e = es.epoch
	}
	if e < 0 && offset >= 0 {
		return p.Leadership().Epoch
	}
	return e
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch the way Kafka does: for the current epoch
// the log end offset; for an older one the start of the next epoch after it, with the
// largest epoch not above the one asked; -1, -1 when the log knows no later epoch.
func (p *Partition) EndOffsetForEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	leo := int64(p.log.LogEndOffset())
	current := p.Leadership().Epoch
	if n := len(p.epochs); n > 0 && p.epochs[n-1].epoch > current {
		current = p.epochs[n-1].epoch
	}
	if epoch < 0 {
		return -1, -1
	}
	if epoch >= current {
		return current, leo
	}
	higher := -1
	for i, es := range p.epochs {
		if es.epoch > epoch {
			higher = i
			break
		}
	}
	if higher < 0 {
		// Every stored epoch is at or below the one asked, yet it is older than the current
		// epoch: the current leader has not written yet.
		return epoch, leo
	}
	if higher == 0 {
		return epoch, p.epochs[0].start
	}
	return p.epochs[higher-1].epoch, p.epochs[higher].start
}

// DeleteRecords replicates a request to delete every record below offset and returns the
// new log start offset.
func (p *Partition) DeleteRecords(ctx context.Context, offset int64) (int64, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	if offset == -1 {
		offset = p.hw.Load()
	}
	if offset < 0 || offset > p.hw.Load() {
		return 0, fmt.Errorf("%w: delete records before %d, high watermark %d", ErrOffsetOutOfRange, offset, p.hw.Load())
	}
	entry := make([]byte, 9)
	entry[0] = entryDeleteRecords
	for i := 0; i < 8; i++ {
		entry[1+i] = byte(uint64(offset) >> (56 - 8*i))
	}
	res, err := p.repl.Replicate(ctx, p.key, entry)
	if err != nil {
		return 0, err
	}
	ar := res.(*applyResult)
	if ar.err != nil {
		return 0, ar.err
	}
	return ar.baseOffset, nil
}

// Waiters returns how many fetches wait on the partition's high watermark.
func (p *Partition) Waiters() int {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return len(p.waiters)
}
