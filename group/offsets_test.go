package group

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestOffsetCommitValidation(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 1)
	tests := []struct {
		name   string
		group  string
		member string
		gen    int32
		want   int16
	}{
		{"member", "g", ids[0], gen, 0},
		{"stale generation", "g", ids[0], gen - 1, kerr.IllegalGeneration.Code},
		{"unknown member", "g", "nobody", gen, kerr.UnknownMemberID.Code},
		{"simple commit to a group with members", "g", "", -1, kerr.UnknownMemberID.Code},
		{"simple commit to a new group", "simple", "", -1, 0},
		{"generation for an unknown group", "unknown", "m", 3, kerr.IllegalGeneration.Code},
		{"no group id", "", "", -1, kerr.InvalidGroupID.Code},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			codes := commitCodes(h.commit(tt.group, tt.member, tt.gen, "t", 10, 20))
			if !slices.Equal(codes, []int16{tt.want, tt.want}) {
				t.Fatalf("codes %v, want %d", codes, tt.want)
			}
		})
	}
	got, _ := h.fetch("g", "t", 3)
	if !slices.Equal(got, []int64{10, 20, -1}) {
		t.Fatalf("committed %v", got)
	}
	// Another simple commit to the commit-only group is accepted too.
	if codes := commitCodes(h.commit("simple", "", -1, "t", 7)); codes[0] != 0 {
		t.Fatalf("second simple commit: %v", codes)
	}
	if got, _ := h.fetch("simple", "t", 2); !slices.Equal(got, []int64{7, 20}) {
		t.Fatalf("simple group offsets %v", got)
	}
}

func TestOffsetCommitDuringRebalance(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 1)
	_, nch := h.newMember("g")
	// PreparingRebalance: the current generation may still commit.
	if codes := commitCodes(h.commit("g", ids[0], gen, "t", 1)); codes[0] != 0 {
		t.Fatalf("commit while preparing: %v", codes)
	}
	await(t, h.joinAsync("g", withMember(ids[0])))
	await(t, nch)
	// CompletingRebalance: REBALANCE_IN_PROGRESS.
	if codes := commitCodes(h.commit("g", ids[0], gen+1, "t", 2)); codes[0] != kerr.RebalanceInProgress.Code {
		t.Fatalf("commit while completing: %v", codes)
	}
}

func TestOffsetCommitMetadataTooLarge(t *testing.T) {
	h := newHarness(t, Config{MaxMetadataSize: 4})
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 2
	req.Group = "g"
	p0, p1 := kmsg.NewOffsetCommitRequestTopicPartition(), kmsg.NewOffsetCommitRequestTopicPartition()
	p0.Partition, p0.Offset, p0.Metadata = 0, 5, kmsg.StringPtr("tiny")
	p1.Partition, p1.Offset, p1.Metadata = 1, 6, kmsg.StringPtr("too large")
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{p0, p1}}}
	codes := commitCodes(h.c.OffsetCommit(ctx, req))
	if !slices.Equal(codes, []int16{0, kerr.OffsetMetadataTooLarge.Code}) {
		t.Fatalf("codes %v", codes)
	}
	if got, _ := h.fetch("g", "t", 2); !slices.Equal(got, []int64{5, -1}) {
		t.Fatalf("committed %v", got)
	}
}

func TestOffsetCommitWriteFailure(t *testing.T) {
	h := newHarness(t, Config{})
	h.log.mu.Lock()
	h.log.appendErr = errDiskFull
	h.log.mu.Unlock()
	if codes := commitCodes(h.commit("g", "", -1, "t", 1)); codes[0] != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("codes %v", codes)
	}
	if got, _ := h.fetch("g", "t", 1); got[0] != -1 {
		t.Fatalf("a failed commit is visible: %v", got)
	}
	h.log.mu.Lock()
	h.log.appendErr = nil
	h.log.mu.Unlock()
	if codes := commitCodes(h.commit("g", "", -1, "t", 1)); codes[0] != 0 {
		t.Fatalf("codes %v", codes)
	}
}

func TestOffsetFetch(t *testing.T) {
	h := newHarness(t, Config{})
	h.commit("g", "", -1, "b", 5)
	h.commit("g", "", -1, "a", 1, 2)

	t.Run("unknown group gives -1 and no error", func(t *testing.T) {
		got, code := h.fetch("nobody", "a", 2)
		if code != 0 || !slices.Equal(got, []int64{-1, -1}) {
			t.Fatalf("got %v code %d", got, code)
		}
	})
	t.Run("v1 one group", func(t *testing.T) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 1
		req.Group = "g"
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "a", Partitions: []int32{1, 0, 9}}}
		resp := h.c.OffsetFetch(ctx, req)
		var got []int64
		for _, p := range resp.Topics[0].Partitions {
			got = append(got, p.Offset)
		}
		if !slices.Equal(got, []int64{2, 1, -1}) {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("v5 all topics with leader epoch", func(t *testing.T) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 5
		req.Group = "g"
		resp := h.c.OffsetFetch(ctx, req)
		if len(resp.Topics) != 2 || resp.Topics[0].Topic != "a" || resp.Topics[1].Topic != "b" {
			t.Fatalf("topics %+v", resp.Topics)
		}
		p := resp.Topics[0].Partitions[1]
		if p.Partition != 1 || p.Offset != 2 || p.LeaderEpoch != 3 || *p.Metadata != "m" {
			t.Fatalf("partition %+v", p)
		}
	})
	t.Run("v8 batched groups", func(t *testing.T) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 8
		req.Groups = []kmsg.OffsetFetchRequestGroup{
			{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "b", Partitions: []int32{0}}}},
			{Group: "other", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "b", Partitions: []int32{0}}}},
			{Group: "g"}, // all topics
		}
		resp := h.c.OffsetFetch(ctx, req)
		if len(resp.Groups) != 3 {
			t.Fatalf("groups %+v", resp.Groups)
		}
		if o := resp.Groups[0].Topics[0].Partitions[0].Offset; o != 5 {
			t.Fatalf("g/b/0 = %d", o)
		}
		if o := resp.Groups[1].Topics[0].Partitions[0].Offset; o != -1 || resp.Groups[1].ErrorCode != 0 {
			t.Fatalf("other/b/0 = %d", o)
		}
		if n := len(resp.Groups[2].Topics); n != 2 {
			t.Fatalf("all topics: %d", n)
		}
	})
}

func TestOffsetDelete(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 1, withTopics("consumed"))
	h.commit("g", ids[0], gen, "consumed", 1)
	h.commit("g", ids[0], gen, "old", 2, 3)

	del := func(group string, topic string, parts ...int32) *kmsg.OffsetDeleteResponse {
		req := kmsg.NewPtrOffsetDeleteRequest()
		req.Group = group
		rt := kmsg.OffsetDeleteRequestTopic{Topic: topic}
		for _, p := range parts {
			rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteRequestTopicPartition{Partition: p})
		}
		req.Topics = []kmsg.OffsetDeleteRequestTopic{rt}
		return h.c.OffsetDelete(ctx, req)
	}
	if r := del("g", "consumed", 0); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != kerr.GroupSubscribedToTopic.Code {
		t.Fatalf("delete consumed: %+v", r)
	}
	if r := del("g", "old", 0, 1); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("delete old: %+v", r)
	}
	if got, _ := h.fetch("g", "old", 2); !slices.Equal(got, []int64{-1, -1}) {
		t.Fatalf("old after delete: %v", got)
	}
	if got, _ := h.fetch("g", "consumed", 1); got[0] != 1 {
		t.Fatalf("consumed after delete: %v", got)
	}
	if r := del("nobody", "old", 0); r.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("unknown group: %d", r.ErrorCode)
	}
	// Once the group is empty, every offset may go.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "g", ids[0]
	h.c.LeaveGroup(ctx, leave)
	if r := del("g", "consumed", 0); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("delete from empty group: %+v", r)
	}
	if got, _ := h.fetch("g", "consumed", 1); got[0] != -1 {
		t.Fatalf("consumed after delete: %v", got)
	}
}

func TestListDescribeDeleteGroups(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("busy", 1)
	h.commit("busy", ids[0], gen, "t", 4)
	h.commit("idle", "", -1, "t", 8)

	list := func(version int16, states ...string) []string {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version = version
		req.StatesFilter = states
		resp := h.c.ListGroups(ctx, req)
		if resp.ErrorCode != 0 {
			t.Fatalf("list: %d", resp.ErrorCode)
		}
		var out []string
		for _, g := range resp.Groups {
			out = append(out, g.Group+"/"+g.GroupState+"/"+g.ProtocolType)
		}
		return out
	}
	if got := list(4); !slices.Equal(got, []string{"busy/Stable/consumer", "idle/Empty/"}) {
		t.Fatalf("list all: %v", got)
	}
	if got := list(4, "empty"); !slices.Equal(got, []string{"idle/Empty/"}) {
		t.Fatalf("list empty: %v", got)
	}
	if got := list(4, "Dead"); len(got) != 0 {
		t.Fatalf("list dead: %v", got)
	}

	if d := h.describe("nobody"); d.ErrorCode != 0 || d.State != "Dead" {
		t.Fatalf("describe unknown: %+v", d)
	}

	delReq := kmsg.NewPtrDeleteGroupsRequest()
	delReq.Version = 2
	delReq.Groups = []string{"busy", "idle", "nobody"}
	resp := h.c.DeleteGroups(ctx, delReq)
	var codes []int16
	for _, g := range resp.Groups {
		codes = append(codes, g.ErrorCode)
	}
	if want := []int16{kerr.NonEmptyGroup.Code, 0, kerr.GroupIDNotFound.Code}; !slices.Equal(codes, want) {
		t.Fatalf("delete codes %v, want %v", codes, want)
	}
	if got, _ := h.fetch("idle", "t", 1); got[0] != -1 {
		t.Fatalf("deleted group still has offsets: %v", got)
	}
	if got := list(4); !slices.Equal(got, []string{"busy/Stable/consumer"}) {
		t.Fatalf("list after delete: %v", got)
	}
	// Deleted stays deleted after a reload from the log.
	h.restart()
	if got, _ := h.fetch("idle", "t", 1); got[0] != -1 {
		t.Fatalf("deleted group back after restart: %v", got)
	}
	if got, _ := h.fetch("busy", "t", 1); got[0] != 4 {
		t.Fatalf("busy after restart: %v", got)
	}
}

func TestOffsetExpiry(t *testing.T) {
	cfg := Config{OffsetsRetention: time.Hour, OffsetsRetentionCheck: time.Minute}

	t.Run("empty group after retention", func(t *testing.T) {
		h := newHarness(t, cfg)
		ids, gen := h.stableGroup("g", 1)
		h.commit("g", ids[0], gen, "t", 1)
		leave := kmsg.NewPtrLeaveGroupRequest()
		leave.Group, leave.MemberID = "g", ids[0]
		h.c.LeaveGroup(ctx, leave)
		h.advance(59 * time.Minute)
		if got, _ := h.fetch("g", "t", 1); got[0] != 1 {
			t.Fatalf("expired early: %v", got)
		}
		h.advance(2 * time.Minute)
		if got, _ := h.fetch("g", "t", 1); got[0] != -1 {
			t.Fatalf("not expired: %v", got)
		}
		if d := h.describe("g"); d.State != "Dead" {
			t.Fatalf("group left behind: %+v", d)
		}
		h.restart()
		if got, _ := h.fetch("g", "t", 1); got[0] != -1 {
			t.Fatalf("expired offset back after restart: %v", got)
		}
	})
	t.Run("stable group keeps its offsets", func(t *testing.T) {
		h := newHarness(t, cfg)
		ids, gen := h.stableGroup("g", 1, withTimeouts(20*time.Minute, time.Minute), withTopics("t"))
		h.commit("g", ids[0], gen, "t", 1)
		h.commit("g", ids[0], gen, "unsubscribed", 2)
		for range 9 {
			h.advance(10 * time.Minute)
			h.heartbeat("g", ids[0], gen, nil)
		}
		if got, _ := h.fetch("g", "t", 1); got[0] != 1 {
			t.Fatalf("subscribed offset expired: %v", got)
		}
		if got, _ := h.fetch("g", "unsubscribed", 1); got[0] != -1 {
			t.Fatalf("unsubscribed offset kept: %v", got)
		}
	})
	t.Run("commit-only group per commit", func(t *testing.T) {
		h := newHarness(t, cfg)
		h.commit("g", "", -1, "old", 1)
		h.advance(40 * time.Minute)
		h.commit("g", "", -1, "new", 2)
		h.advance(30 * time.Minute)
		old, _ := h.fetch("g", "old", 1)
		young, _ := h.fetch("g", "new", 1)
		if old[0] != -1 || young[0] != 2 {
			t.Fatalf("old %v new %v", old, young)
		}
	})
}
