package partition

import (
	"fmt"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/replication"
)

// A Partition is a replication.DataStateMachine: its snapshots record the next offset
// only, the records being in its segments. A replica that restores a snapshot ahead of its
// log copies the missing batches from the leader (ReadData there, WriteData here) first.
// Positions are offsets.
var _ replication.DataStateMachine = (*Partition)(nil)

// SnapshotEnd returns the next offset recorded in a snapshot (0 for nil).
func (p *Partition) SnapshotEnd(snap []byte) (int64, error) {
	if snap == nil {
		return 0, nil
	}
	st, err := decodeState(snap)
	if err != nil {
		return 0, fmt.Errorf("snapshot end of %s-%d: %w", p.topic, p.index, err)
	}
	return st.nextOffset, nil
}

// DataBounds returns the log start and end offsets.
func (p *Partition) DataBounds() (start, end int64) {
	return int64(p.log.LogStartOffset()), int64(p.log.LogEndOffset())
}

// ReadData returns the stored batches from the one holding pos on, about maxBytes (at
// least one batch), below upTo and below the high watermark.
func (p *Partition) ReadData(pos, upTo int64, maxBytes int) ([]byte, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	upTo = min(upTo, p.hw.Load())
	if pos >= upTo {
		return nil, nil
	}
	rr, err := p.log.Read(log.Offset(pos), maxBytes, log.Offset(upTo))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s-%d at %d: %v", ErrStorage, p.topic, p.index, pos, err)
	}
	defer rr.Release()
	return rr.Bytes()
}

// WriteData appends batches another replica's ReadData returned for pos. pos is the log
// end offset, or past it: the source's log starts there, so this log is emptied and
// restarted at the first batch's base offset (the batch holding pos may begin before it)
// with its start offset at pos. Batches keep their offsets and leader epochs; those this
// replica already has are skipped. The producer table and epochs are left as they are:
// Restore sets them from the snapshot next.
func (p *Partition) WriteData(pos int64, data []byte) error {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	if p.closed.Load() {
		return ErrClosed
	}
	restarted := false
	if end := int64(p.log.LogEndOffset()); pos > end {
		restarted = true
		restart := pos
		if len(data) > 0 {
			h, err := parseHeader(data)
			if err != nil {
				return fmt.Errorf("write data to %s-%d: %w", p.topic, p.index, err)
			}
			restart = min(int64(h.BaseOffset), pos)
		}
		if restart > end {
			if err := p.log.DeleteBefore(log.Offset(restart)); err != nil {
				return fmt.Errorf("%w: reset %s-%d to %d: %v", ErrStorage, p.topic, p.index, restart, err)
			}
		}
	}
	for len(data) > 0 {
		h, err := parseHeader(data)
		if err != nil {
			return fmt.Errorf("write data to %s-%d: %w", p.topic, p.index, err)
		}
		size := h.Size()
		if size > int64(len(data)) {
			return fmt.Errorf("write data to %s-%d: %w: batch of %d bytes in %d", p.topic, p.index, ErrCorruptBatch, size, len(data))
		}
		batch := data[:size]
		data = data[size:]
		end := int64(p.log.LogEndOffset())
		if int64(h.LastOffset()) < end {
			continue // already here
		}
		if int64(h.BaseOffset) != end {
			return fmt.Errorf("write data to %s-%d: %w: batch at %d, the log ends at %d", p.topic, p.index, ErrCorruptBatch, h.BaseOffset, end)
		}
		if _, err := p.log.Append(batch, h.PartitionLeaderEpoch); err != nil {
			return fmt.Errorf("%w: append to %s-%d: %v", ErrStorage, p.topic, p.index, err)
		}
		p.uncache(len(batch))
	}
	if start := int64(p.log.LogStartOffset()); restarted && start < pos && pos <= int64(p.log.LogEndOffset()) {
		if err := p.log.DeleteBefore(log.Offset(pos)); err != nil {
			return fmt.Errorf("%w: move the start of %s-%d to %d: %v", ErrStorage, p.topic, p.index, pos, err)
		}
	}
	return nil
}
