package partition

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/replication"
	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// CheckpointFile is the producer-state checkpoint in a partition directory: the encoded
// partition state at some offset, so that opening a partition scans only the log after it.
const CheckpointFile = "partition.checkpoint"

// OpenConfig says which partition to open and where.
type OpenConfig struct {
	Dir        string
	Topic      string
	Partition  int32
	TopicID    [16]byte
	Config     Config
	Replicator replication.Replicator
	Logger     *zap.Logger
	// Now is the clock for LogAppendTime (default time.Now).
	Now func() time.Time
	// FS holds the partition's log (default: the operating system's file system).
	FS vfs.FS
}

// scanChunk is how much log Open reads at a time while rebuilding state from the tail.
const scanChunk = 1 << 20

// Open opens (creating if needed) a partition's log, rebuilds its producer table and
// leader epochs from the checkpoint and the log after it, and sets the high watermark to
// the log end: what survived on disk is what is committed. The caller registers it with
// the replicator.
func Open(cfg OpenConfig) (*Partition, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	lc := logConfig(cfg.Config)
	lc.FS = cfg.FS
	l, err := log.Open(cfg.Dir, lc)
	if err != nil {
		return nil, fmt.Errorf("open partition %s-%d: %w", cfg.Topic, cfg.Partition, err)
	}
	p := &Partition{
		topic:     cfg.Topic,
		index:     cfg.Partition,
		topicID:   cfg.TopicID,
		key:       Key(cfg.TopicID, cfg.Partition),
		dir:       cfg.Dir,
		log:       l,
		repl:      cfg.Replicator,
		logger:    cfg.Logger.With(zap.String("topic", cfg.Topic), zap.Int32("partition", cfg.Partition)),
		now:       cfg.Now,
		producers: producers{},
	}
	c := cfg.Config
	p.cfg.Store(&c)
	if err := p.rebuild(); err != nil {
		l.Close()
		return nil, fmt.Errorf("open partition %s-%d: %w", cfg.Topic, cfg.Partition, err)
	}
	p.hw.Store(int64(l.LogEndOffset()))
	return p, nil
}

// rebuild loads the checkpoint if it is usable and scans the log after it.
func (p *Partition) rebuild() error {
	start := int64(p.log.LogStartOffset())
	end := int64(p.log.LogEndOffset())
	from := start
	data, err := os.ReadFile(filepath.Join(p.dir, CheckpointFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read checkpoint: %w", err)
	default:
		st, err := decodeState(data)
		switch {
		case err != nil:
			p.logger.Warn("ignoring corrupt checkpoint; rebuilding from the log", zap.Error(err))
		case st.nextOffset > end:
			p.logger.Warn("checkpoint is past the log end (unsynced tail lost); rebuilding from the log",
				zap.Int64("checkpoint_offset", st.nextOffset), zap.Int64("log_end_offset", end))
		case st.nextOffset < start:
			// Retention moved past it; the batches after it are gone, so scan what is left.
		default:
			p.producers = st.producers
			p.epochs = st.epochs
			from = st.nextOffset
		}
	}
	scanned := 0
	for off := from; off < end; {
		rr, err := p.log.Read(log.Offset(off), scanChunk, log.Offset(end))
		if err != nil {
			return fmt.Errorf("scan log at %d: %w", off, err)
		}
		b, err := rr.Bytes()
		rr.Release()
		if err != nil {
			return fmt.Errorf("scan log at %d: %w", off, err)
		}
		if len(b) == 0 {
			return fmt.Errorf("scan log at %d: %w: empty read before the log end %d", off, ErrStorage, end)
		}
		for len(b) > 0 {
			h, err := segment.ParseBatchHeader(b)
			if err != nil || h.Size() > int64(len(b)) {
				return fmt.Errorf("scan log at %d: %w: bad batch header", off, ErrStorage)
			}
			p.producers.record(&h, int64(h.BaseOffset))
			p.noteEpoch(h.PartitionLeaderEpoch, int64(h.BaseOffset))
			off = int64(h.LastOffset()) + 1
			b = b[h.Size():]
			scanned++
		}
	}
	if scanned > 0 {
		p.logger.Debug("rebuilt partition state from the log", zap.Int64("from", from), zap.Int64("to", end),
			zap.Int("batches", scanned), zap.Int("producers", len(p.producers)))
	}
	return nil
}

// Checkpoint syncs the log and writes the producer-state checkpoint, so a later Open scans
// only what is appended after it.
func (p *Partition) Checkpoint() error {
	p.applyMu.Lock()
	if p.closed.Load() {
		p.applyMu.Unlock()
		return ErrClosed
	}
	data := p.encodeState()
	err := p.log.Sync()
	p.applyMu.Unlock()
	if err != nil {
		return fmt.Errorf("checkpoint %s-%d: %w", p.topic, p.index, err)
	}
	return p.writeCheckpoint(data)
}

func (p *Partition) writeCheckpoint(data []byte) error {
	if err := vfs.ReplaceFile(vfs.Default, filepath.Join(p.dir, CheckpointFile), data); err != nil {
		return fmt.Errorf("checkpoint %s-%d: %w", p.topic, p.index, err)
	}
	return nil
}

// Close writes a checkpoint and closes the log cleanly. Unregister the partition from the
// replicator first; reads and writes after Close fail with ErrClosed.
func (p *Partition) Close() error {
	p.applyMu.Lock()
	if p.closed.Swap(true) {
		p.applyMu.Unlock()
		return nil
	}
	data := p.encodeState()
	syncErr := p.log.Sync()
	p.applyMu.Unlock()
	p.wake()
	var errs []error
	if syncErr == nil {
		if err := p.writeCheckpoint(data); err != nil {
			errs = append(errs, err)
		}
	} else {
		errs = append(errs, fmt.Errorf("close %s-%d: %w", p.topic, p.index, syncErr))
	}
	if err := p.log.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s-%d: %w", p.topic, p.index, err))
	}
	return errors.Join(errs...)
}

// SetConfig replaces the partition's topic configs. The log's own settings (segment and
// retention sizes and ages) are fixed while it is open: SetConfig reports whether they
// changed, in which case the caller reopens the partition for them to apply.
func (p *Partition) SetConfig(c Config) (reopen bool) {
	old := p.cfg.Swap(&c)
	return old.SegmentBytes != c.SegmentBytes || old.SegmentMs != c.SegmentMs ||
		old.RetentionBytes != c.RetentionBytes || old.RetentionMs != c.RetentionMs
}

// EnforceRetention deletes whole segments that retention.ms or retention.bytes let go.
func (p *Partition) EnforceRetention(now time.Time) error {
	if p.closed.Load() {
		return ErrClosed
	}
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	if err := p.log.EnforceRetention(now); err != nil {
		return fmt.Errorf("retention %s-%d: %w", p.topic, p.index, err)
	}
	return nil
}

// Size returns the bytes the partition's log holds.
func (p *Partition) Size() int64 { return p.log.Size() }

// logConfig maps topic configs to the log's.
func logConfig(c Config) log.Config {
	return log.Config{
		Format:         log.FormatKafka,
		SegmentBytes:   int64(c.SegmentBytes),
		SegmentAge:     time.Duration(c.SegmentMs) * time.Millisecond,
		RetentionBytes: c.RetentionBytes,
		RetentionAge:   c.Retention(),
	}
}
