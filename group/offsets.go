package group

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

func zapGroup(name string) zap.Field    { return zap.String("group", name) }
func zapMember(id string) zap.Field     { return zap.String("member", id) }
func zapGeneration(gen int32) zap.Field { return zap.Int32("generation", gen) }
func zapError(err error) zap.Field      { return zap.Error(err) }

// OffsetCommit answers an OffsetCommit request once the offsets are durable. A member of a
// group commits with its generation; a consumer that assigns partitions itself commits
// with generation -1 and no member ID, which is accepted while the group has no members.
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp, ok := ask(ctx, c, func(reply func(*kmsg.OffsetCommitResponse)) { c.offsetCommit(req, reply) })
	if !ok {
		resp = commitResponse(req, kerr.NotCoordinator.Code)
	}
	return resp
}

// commitResponse answers every partition of req with code.
func commitResponse(req *kmsg.OffsetCommitRequest, code int16) *kmsg.OffsetCommitResponse {
	resp := kmsg.NewPtrOffsetCommitResponse()
	resp.Version = req.Version
	for _, t := range req.Topics {
		rt := kmsg.OffsetCommitResponseTopic{Topic: t.Topic}
		for _, p := range t.Partitions {
			rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: code})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *Coordinator) offsetCommit(req *kmsg.OffsetCommitRequest, reply func(*kmsg.OffsetCommitResponse)) {
	fail := func(code int16) { reply(commitResponse(req, code)) }
	if req.Group == "" {
		fail(kerr.InvalidGroupID.Code)
		return
	}
	if _, code := c.shardOf(req.Group); code != 0 {
		fail(code)
		return
	}
	generation, memberID, instanceID := req.Generation, req.MemberID, req.InstanceID
	if req.Version == 0 {
		generation, memberID = -1, ""
	}
	if req.Version < 7 {
		instanceID = nil
	}
	g := c.groups[req.Group]
	if g == nil {
		if generation >= 0 {
			fail(kerr.IllegalGeneration.Code)
			return
		}
		g = newGroup(req.Group, Partition(req.Group, c.cfg.Partitions), c.cfg.Clock.Now())
		c.groups[req.Group] = g
	}
	if g.state == Dead {
		fail(kerr.CoordinatorNotAvailable.Code)
		return
	}
	if generation >= 0 || memberID != "" || instanceID != nil {
		code := g.validateMember(memberID, instanceID)
		if code == 0 && generation != g.generation {
			code = kerr.IllegalGeneration.Code
		}
		if code != 0 {
			fail(code)
			return
		}
	} else if g.state != Empty {
		fail(kerr.UnknownMemberID.Code)
		return
	}
	switch g.state {
	case CompletingRebalance:
		fail(kerr.RebalanceInProgress.Code)
		return
	case Stable, PreparingRebalance:
		c.heartbeat(g, g.members[memberID])
	}

	resp := commitResponse(req, 0)
	now := c.cfg.Clock.Now().UnixMilli()
	var records []record
	type pending struct {
		tp    topicPartition
		entry offsetEntry
	}
	var commits []pending
	for i, t := range req.Topics {
		for j, p := range t.Partitions {
			metadata := ""
			if p.Metadata != nil {
				metadata = *p.Metadata
			}
			if len(metadata) > c.cfg.MaxMetadataSize {
				resp.Topics[i].Partitions[j].ErrorCode = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			epoch := p.LeaderEpoch
			if req.Version < 6 {
				epoch = -1
			}
			e := offsetEntry{offset: p.Offset, leaderEpoch: epoch, metadata: metadata, commitTimestamp: now}
			tp := topicPartition{t.Topic, p.Partition}
			records = append(records, offsetCommitRecord(g.name, tp.topic, tp.partition, e))
			commits = append(commits, pending{tp, e})
		}
	}
	if len(records) == 0 {
		reply(resp)
		return
	}
	c.append(g, records, func(err error) {
		if err != nil {
			code := appendErrorCode(err)
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					if resp.Topics[i].Partitions[j].ErrorCode == 0 {
						resp.Topics[i].Partitions[j].ErrorCode = code
					}
				}
			}
			reply(resp)
			return
		}
		if c.groups[g.name] == g {
			for _, p := range commits {
				g.offsets[p.tp] = p.entry
			}
		}
		reply(resp)
	})
}

// OffsetFetch answers an OffsetFetch request: one group (v0-v7) or several (v8+). An
// unknown group or partition has offset -1 and no error.
func (c *Coordinator) OffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp, ok := ask(ctx, c, func(reply func(*kmsg.OffsetFetchResponse)) { reply(c.offsetFetch(req)) })
	if !ok {
		resp = kmsg.NewPtrOffsetFetchResponse()
		resp.ErrorCode = kerr.NotCoordinator.Code
		for _, g := range req.Groups {
			resp.Groups = append(resp.Groups, kmsg.OffsetFetchResponseGroup{Group: g.Group, ErrorCode: kerr.NotCoordinator.Code})
		}
	}
	resp.Version = req.Version
	return resp
}

// fetchedTopic is the committed offsets of one topic.
type fetchedTopic struct {
	topic      string
	partitions []kmsg.OffsetFetchResponseGroupTopicPartition
}

func (c *Coordinator) offsetFetch(req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := kmsg.NewPtrOffsetFetchResponse()
	resp.Version = req.Version
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			var topics map[string][]int32
			if rg.Topics != nil {
				topics = make(map[string][]int32)
				for _, t := range rg.Topics {
					topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
				}
			}
			fetched, code := c.fetchGroup(rg.Group, topics, topicOrder(rg.Topics, func(t kmsg.OffsetFetchRequestGroupTopic) string { return t.Topic }))
			out := kmsg.OffsetFetchResponseGroup{Group: rg.Group, ErrorCode: code}
			for _, f := range fetched {
				out.Topics = append(out.Topics, kmsg.OffsetFetchResponseGroupTopic{Topic: f.topic, Partitions: f.partitions})
			}
			resp.Groups = append(resp.Groups, out)
		}
		return resp
	}
	var topics map[string][]int32
	if req.Topics != nil || req.Version < 2 {
		topics = make(map[string][]int32)
		for _, t := range req.Topics {
			topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
		}
	}
	fetched, code := c.fetchGroup(req.Group, topics, topicOrder(req.Topics, func(t kmsg.OffsetFetchRequestTopic) string { return t.Topic }))
	if code != 0 && req.Version < 2 {
		// No group-level error before v2: every partition carries it.
		fetched = nil
		for _, t := range req.Topics {
			f := fetchedTopic{topic: t.Topic}
			for _, p := range t.Partitions {
				f.partitions = append(f.partitions, kmsg.OffsetFetchResponseGroupTopicPartition{Partition: p, Offset: -1, LeaderEpoch: -1, ErrorCode: code})
			}
			fetched = append(fetched, f)
		}
	}
	resp.ErrorCode = code
	for _, f := range fetched {
		rt := kmsg.OffsetFetchResponseTopic{Topic: f.topic}
		for _, p := range f.partitions {
			rt.Partitions = append(rt.Partitions, kmsg.OffsetFetchResponseTopicPartition{
				Partition: p.Partition, Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: p.Metadata, ErrorCode: p.ErrorCode,
			})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func topicOrder[T any](topics []T, name func(T) string) []string {
	var out []string
	for _, t := range topics {
		if n := name(t); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// fetchGroup returns group name's committed offsets for topics (every committed offset
// when topics is nil), in the order given, or the error code of the group.
func (c *Coordinator) fetchGroup(name string, topics map[string][]int32, order []string) ([]fetchedTopic, int16) {
	if _, code := c.shardOf(name); code != 0 {
		return nil, code
	}
	g := c.groups[name]
	var offsets map[topicPartition]offsetEntry
	if g != nil && g.state != Dead {
		offsets = g.offsets
	}
	entry := func(tp topicPartition) kmsg.OffsetFetchResponseGroupTopicPartition {
		p := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		p.Partition = tp.partition
		p.Offset = -1
		meta := ""
		if e, ok := offsets[tp]; ok {
			p.Offset = e.offset
			p.LeaderEpoch = e.leaderEpoch
			meta = e.metadata
		}
		p.Metadata = &meta
		return p
	}
	all := topics == nil
	if all {
		topics = make(map[string][]int32)
		for tp := range offsets {
			topics[tp.topic] = append(topics[tp.topic], tp.partition)
		}
		order = make([]string, 0, len(topics))
		for t := range topics {
			order = append(order, t)
		}
		slices.Sort(order)
	}
	var out []fetchedTopic
	for _, t := range order {
		f := fetchedTopic{topic: t}
		parts := topics[t]
		if all {
			slices.Sort(parts)
		}
		for _, p := range parts {
			f.partitions = append(f.partitions, entry(topicPartition{t, p}))
		}
		out = append(out, f)
	}
	return out, 0
}

// OffsetDelete answers an OffsetDelete request: it removes committed offsets of a group
// that is empty, or of topics its members do not consume.
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp, ok := ask(ctx, c, func(reply func(*kmsg.OffsetDeleteResponse)) { c.offsetDelete(req, reply) })
	if !ok {
		resp = kmsg.NewPtrOffsetDeleteResponse()
		resp.ErrorCode = kerr.NotCoordinator.Code
	}
	resp.Version = req.Version
	return resp
}

func (c *Coordinator) offsetDelete(req *kmsg.OffsetDeleteRequest, reply func(*kmsg.OffsetDeleteResponse)) {
	resp := kmsg.NewPtrOffsetDeleteResponse()
	fail := func(code int16) {
		resp.ErrorCode = code
		reply(resp)
	}
	if req.Group == "" {
		fail(kerr.InvalidGroupID.Code)
		return
	}
	if _, code := c.shardOf(req.Group); code != 0 {
		fail(code)
		return
	}
	g := c.groups[req.Group]
	if g == nil || g.state == Dead {
		fail(kerr.GroupIDNotFound.Code)
		return
	}
	var subscribed map[string]bool
	if g.state != Empty {
		topics, ok := g.subscribedTopics()
		if !ok {
			fail(kerr.NonEmptyGroup.Code)
			return
		}
		subscribed = topics
	}
	var records []record
	var deleted []topicPartition
	for _, t := range req.Topics {
		rt := kmsg.OffsetDeleteResponseTopic{Topic: t.Topic}
		for _, p := range t.Partitions {
			rp := kmsg.OffsetDeleteResponseTopicPartition{Partition: p.Partition}
			tp := topicPartition{t.Topic, p.Partition}
			switch _, ok := g.offsets[tp]; {
			case subscribed[t.Topic]:
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			case ok:
				records = append(records, offsetTombstone(g.name, tp.topic, tp.partition))
				deleted = append(deleted, tp)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(records) == 0 {
		reply(resp)
		return
	}
	c.append(g, records, func(err error) {
		if err != nil {
			fail(appendErrorCode(err))
			return
		}
		if c.groups[g.name] == g {
			for _, tp := range deleted {
				delete(g.offsets, tp)
			}
		}
		reply(resp)
	})
}

// scheduleExpiry runs expireOffsets every OffsetsRetentionCheck.
func (c *Coordinator) scheduleExpiry() {
	c.after(c.cfg.OffsetsRetentionCheck, func() {
		if c.closed {
			return
		}
		c.expireOffsets()
		c.scheduleExpiry()
	})
}

// expireOffsets removes the offsets that outlived OffsetsRetention: every offset of a group
// that has been empty that long (for a group that never had members, each offset that
// long after its commit), and offsets of topics a stable consumer group no longer reads.
// A group left empty without offsets is deleted.
func (c *Coordinator) expireOffsets() {
	now := c.cfg.Clock.Now()
	cutoff := now.Add(-c.cfg.OffsetsRetention).UnixMilli()
	for _, g := range c.groups {
		if s := c.shards[g.shard]; s == nil || s.state != shardLoaded || g.writes > 0 {
			continue
		}
		var expired []topicPartition
		switch {
		case g.state == Empty && g.protocolType != "":
			if g.stateTime.UnixMilli() <= cutoff {
				for tp := range g.offsets {
					expired = append(expired, tp)
				}
			}
		case g.state == Empty:
			for tp, e := range g.offsets {
				if e.commitTimestamp <= cutoff {
					expired = append(expired, tp)
				}
			}
		case g.state == Stable:
			if subscribed, ok := g.subscribedTopics(); ok {
				for tp, e := range g.offsets {
					if !subscribed[tp.topic] && e.commitTimestamp <= cutoff {
						expired = append(expired, tp)
					}
				}
			}
		}
		slices.SortFunc(expired, func(a, b topicPartition) int {
			if n := strings.Compare(a.topic, b.topic); n != 0 {
				return n
			}
			return int(a.partition - b.partition)
		})
		var records []record
		for _, tp := range expired {
			records = append(records, offsetTombstone(g.name, tp.topic, tp.partition))
		}
		dead := g.state == Empty && len(g.pending) == 0 && len(expired) == len(g.offsets)
		if dead {
			records = append(records, groupTombstone(g.name))
			g.transition(Dead, now)
		}
		if len(records) == 0 {
			continue
		}
		c.append(g, records, func(err error) {
			if c.groups[g.name] != g {
				return
			}
			if err != nil {
				c.logger.Warn("expiring offsets failed", zapGroup(g.name), zapError(err))
				if g.state == Dead {
					g.transition(Empty, c.cfg.Clock.Now())
				}
				return
			}
			for _, tp := range expired {
				delete(g.offsets, tp)
			}
			if g.state == Dead {
				delete(c.groups, g.name)
			}
			c.logger.Info("expired offsets", zapGroup(g.name), zap.Int("offsets", len(expired)), zap.Bool("group deleted", dead))
		})
	}
}
