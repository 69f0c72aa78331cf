package group

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicemq/sluice/segment"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// loadReadBytes is how much of a partition is read at a time while loading it.
const loadReadBytes = 1 << 20

// loadedGroup is what a partition says about one group: its last metadata record (nil if
// none or deleted) and its offsets.
type loadedGroup struct {
	metadata *kmsg.GroupMetadataValue
	offsets  map[topicPartition]offsetEntry
}

// readPartition reads partition p of __consumer_offsets from its start to its high
// watermark and returns the groups it holds. It runs on its own goroutine.
func (c *Coordinator) readPartition(ctx context.Context, p int32) (map[string]*loadedGroup, error) {
	start, hw, err := c.log.Bounds(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("load partition %d: %w", p, err)
	}
	groups := make(map[string]*loadedGroup)
	get := func(name string) *loadedGroup {
		g := groups[name]
		if g == nil {
			g = &loadedGroup{offsets: make(map[topicPartition]offsetEntry)}
			groups[name] = g
		}
		return g
	}
	for off := start; off < hw; {
		buf, err := c.log.Read(ctx, p, off, loadReadBytes)
		if err != nil {
			return nil, fmt.Errorf("load partition %d at offset %d: %w", p, off, err)
		}
		batches, rest, err := readBatches(buf)
		for _, b := range batches {
			for _, r := range b.records {
				rec, err := decodeOffsetsRecord(r)
				if err != nil {
					// Not written by a coordinator: skipped, as a tool reading the topic would.
					c.logger.Warn("skipping an undecodable record while loading groups",
						zap.Int32("partition", p), zap.Int64("batch_offset", b.baseOffset), zap.Error(err))
					continue
				}
				applyLoaded(rec, get, groups)
			}
			off = max(off, b.nextOffset())
		}
		if err != nil {
			// The log checked this batch when it was stored, so it is whole: skip it.
			next, ok := batchEnd(buf[rest:])
			if !ok {
				return nil, fmt.Errorf("load partition %d at offset %d: %w", p, off, err)
			}
			c.logger.Warn("skipping an unreadable batch while loading groups", zap.Int32("partition", p), zap.Error(err))
			off = max(off, next)
			continue
		}
		if len(batches) == 0 {
			return nil, fmt.Errorf("load partition %d at offset %d: %w: no whole batch in %d bytes", p, off, ErrCorruptBatch, len(buf))
		}
	}
	for name, g := range groups {
		if g.metadata == nil && len(g.offsets) == 0 {
			delete(groups, name)
		}
	}
	return groups, nil
}

// batchEnd returns the offset after the batch at the start of b, read from its header.
func batchEnd(b []byte) (int64, bool) {
	h, err := segment.ParseBatchHeader(b)
	if err != nil {
		return 0, false
	}
	return int64(h.LastOffset()) + 1, true
}

// applyLoaded applies one decoded record to the groups being loaded.
func applyLoaded(rec any, get func(string) *loadedGroup, groups map[string]*loadedGroup) {
	switch rec := rec.(type) {
	case *offsetRecord:
		tp := topicPartition{rec.key.Topic, rec.key.Partition}
		if rec.value == nil {
			if g := groups[rec.key.Group]; g != nil {
				delete(g.offsets, tp)
			}
			return
		}
		get(rec.key.Group).offsets[tp] = offsetEntry{
			offset:          rec.value.Offset,
			leaderEpoch:     rec.value.LeaderEpoch,
			metadata:        rec.value.Metadata,
			commitTimestamp: rec.value.CommitTimestamp,
		}
	case *groupRecord:
		if rec.value == nil {
			if g := groups[rec.key.Group]; g != nil {
				g.metadata = nil
			}
			return
		}
		get(rec.key.Group).metadata = rec.value
	}
}

// install makes the groups read from shard s live: members found in the metadata are
// expected to heartbeat within their session timeout, as after any coordinator move.
func (c *Coordinator) install(s *shard, loaded map[string]*loadedGroup) {
	now := c.cfg.Clock.Now()
	for name, lg := range loaded {
		if old := c.groups[name]; old != nil {
			// A group from a partition count that changed; the log is the truth.
			delete(c.groups, name)
		}
		g := newGroup(name, s.id, now)
		g.offsets = lg.offsets
		if md := lg.metadata; md != nil {
			g.protocolType = md.ProtocolType
			g.generation = md.Generation
			if md.Protocol != nil {
				g.protocol = *md.Protocol
			}
			if md.CurrentStateTimestamp > 0 {
				g.stateTime = time.UnixMilli(md.CurrentStateTimestamp)
			}
			for _, mm := range md.Members {
				m := &member{
					id:               mm.MemberID,
					instanceID:       mm.InstanceID,
					clientID:         mm.ClientID,
					clientHost:       mm.ClientHost,
					protocolType:     md.ProtocolType,
					sessionTimeout:   time.Duration(mm.SessionTimeoutMillis) * time.Millisecond,
					rebalanceTimeout: time.Duration(mm.RebalanceTimeoutMillis) * time.Millisecond,
					assignment:       mm.Assignment,
				}
				if m.rebalanceTimeout <= 0 {
					m.rebalanceTimeout = m.sessionTimeout
				}
				if g.protocol != "" {
					m.protocols = []protocol{{name: g.protocol, metadata: mm.Subscription}}
				}
				g.addMember(m)
			}
			if md.Leader != nil && g.members[*md.Leader] != nil {
				g.leader = *md.Leader
			}
			if len(g.members) > 0 {
				g.state = Stable
				for _, m := range g.members {
					c.heartbeat(g, m)
				}
			}
		}
		c.groups[name] = g
	}
	s.state = shardLoaded
}
