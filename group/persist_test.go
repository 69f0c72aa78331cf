package group

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// logRecords decodes everything in partition p of the harness's log with kmsg, as a tool
// reading __consumer_offsets would.
func logRecords(t *testing.T, l *memLog, p int32) []any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []any
	for _, b := range l.partitions[p] {
		br, err := decodeBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range br.records {
			switch binary.BigEndian.Uint16(r.key) {
			case 1:
				var k kmsg.OffsetCommitKey
				if err := k.ReadFrom(r.key); err != nil {
					t.Fatal(err)
				}
				if r.value == nil {
					out = append(out, k)
					continue
				}
				var v kmsg.OffsetCommitValue
				if err := v.ReadFrom(r.value); err != nil {
					t.Fatal(err)
				}
				out = append(out, v)
			case 2:
				var k kmsg.GroupMetadataKey
				if err := k.ReadFrom(r.key); err != nil {
					t.Fatal(err)
				}
				if r.value == nil {
					out = append(out, k)
					continue
				}
				var v kmsg.GroupMetadataValue
				if err := v.ReadFrom(r.value); err != nil {
					t.Fatal(err)
				}
				out = append(out, v)
			default:
				t.Fatalf("key version %d", binary.BigEndian.Uint16(r.key))
			}
		}
	}
	return out
}

func TestRecordsAreKafkasFormat(t *testing.T) {
	h := newHarness(t, Config{})
	const group = "fmt"
	p := Partition(group, h.cfg.Partitions)
	ids, gen := h.stableGroup(group, 1, withInstance("inst"))
	h.commit(group, ids[0], gen, "t", 42)
	recs := logRecords(t, h.log, p)
	if len(recs) != 2 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	md, ok := recs[0].(kmsg.GroupMetadataValue)
	if !ok || md.Version != 3 || md.ProtocolType != "consumer" || md.Generation != gen || *md.Protocol != "range" ||
		*md.Leader != ids[0] || len(md.Members) != 1 || *md.Members[0].InstanceID != "inst" ||
		string(md.Members[0].Assignment) != "a0" || md.Members[0].SessionTimeoutMillis != 10_000 {
		t.Fatalf("group metadata: %+v", recs[0])
	}
	oc, ok := recs[1].(kmsg.OffsetCommitValue)
	if !ok || oc.Version != 3 || oc.Offset != 42 || oc.LeaderEpoch != 3 || oc.Metadata != "m" || oc.CommitTimestamp != h.clock.Now().UnixMilli() {
		t.Fatalf("offset commit: %+v", recs[1])
	}

	// Deleting the group writes tombstones for its offsets and its metadata.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 3
	leave.Group = group
	leave.Members = []kmsg.LeaveGroupRequestMember{{InstanceID: kmsg.StringPtr("inst")}}
	h.c.LeaveGroup(ctx, leave)
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{group}
	if r := h.c.DeleteGroups(ctx, del); r.Groups[0].ErrorCode != 0 {
		t.Fatalf("delete: %d", r.Groups[0].ErrorCode)
	}
	recs = logRecords(t, h.log, p)
	tail := recs[len(recs)-2:]
	if k, ok := tail[0].(kmsg.OffsetCommitKey); !ok || k.Group != group || k.Topic != "t" || k.Partition != 0 {
		t.Fatalf("offset tombstone: %+v", tail[0])
	}
	if k, ok := tail[1].(kmsg.GroupMetadataKey); !ok || k.Group != group || k.Version != 2 {
		t.Fatalf("group tombstone: %+v", tail[1])
	}
}

func TestReloadRebuildsGroups(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 2, withTimeouts(10*time.Second, 20*time.Second))
	h.commit("g", ids[0], gen, "t", 5, 6)
	h.commit("g", ids[1], gen, "t", 7) // later commit of partition 0 wins
	h.commit("simple", "", -1, "u", 9)
	h.stableGroup("static", 1, withInstance("s1"))

	h.restart()
	if got, _ := h.fetch("g", "t", 2); !slices.Equal(got, []int64{7, 6}) {
		t.Fatalf("g offsets after restart: %v", got)
	}
	if got, _ := h.fetch("simple", "u", 1); got[0] != 9 {
		t.Fatalf("simple offsets after restart: %v", got)
	}
	d := h.describe("g")
	if d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 2 || string(d.Members[1].MemberAssignment) != "a-"+ids[1] {
		t.Fatalf("g after restart: %+v", d)
	}
	// The members carry on with the same generation.
	for _, id := range ids {
		if code := h.heartbeat("g", id, gen, nil); code != 0 {
			t.Fatalf("heartbeat after restart: %d", code)
		}
	}
	if codes := commitCodes(h.commit("g", ids[0], gen, "t", 8)); codes[0] != 0 {
		t.Fatalf("commit after restart: %v", codes)
	}
	// A static member can come back under its instance ID without a rebalance.
	r := await(t, h.joinAsync("static", withInstance("s1")))
	if r.ErrorCode != 0 || r.Generation != 1 {
		t.Fatalf("static rejoin after restart: %+v", r)
	}
	// Members that do not come back expire.
	h.advance(11 * time.Second)
	if d := h.describe("g"); d.State != "Empty" {
		t.Fatalf("g without heartbeats: %+v", d)
	}
	h.restart()
	if d := h.describe("g"); d.State != "Empty" {
		t.Fatalf("g after second restart: %+v", d)
	}
	if got, _ := h.fetch("g", "t", 1); got[0] != 8 {
		t.Fatalf("offsets after second restart: %v", got)
	}
}

func TestLoadInProgress(t *testing.T) {
	h := newHarness(t, Config{})
	h.commit("g", "", -1, "t", 1)
	h.c.Close()
	gate := make(chan struct{})
	h.log.mu.Lock()
	h.log.readGate = gate
	h.log.mu.Unlock()
	h.c = New(h.cfg, h.log, nil)
	t.Cleanup(func() { h.c.Close() })
	h.sync()
	if _, code := h.fetch("g", "t", 1); code != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("fetch while loading: %d", code)
	}
	if r := await(t, h.joinAsync("g")); r.ErrorCode != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("join while loading: %d", r.ErrorCode)
	}
	close(gate)
	h.waitLoaded()
	if got, code := h.fetch("g", "t", 1); code != 0 || got[0] != 1 {
		t.Fatalf("fetch after load: %v %d", got, code)
	}
}

func TestNotCoordinator(t *testing.T) {
	h := newHarness(t, Config{})
	const group = "g"
	p := Partition(group, h.cfg.Partitions)
	ids, gen := h.stableGroup(group, 1)
	h.commit(group, ids[0], gen, "t", 1)

	// Another node leads the partition now: this one drops its groups.
	h.log.setLeader(p, false)
	h.c.Nudge()
	h.sync()
	if node, code := h.c.FindCoordinator(group); node != 2 || code != 0 {
		t.Fatalf("FindCoordinator: node %d code %d", node, code)
	}
	if code := h.heartbeat(group, ids[0], gen, nil); code != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat: %d", code)
	}
	if _, code := h.fetch(group, "t", 1); code != kerr.NotCoordinator.Code {
		t.Fatalf("fetch: %d", code)
	}
	// And back: reloaded from the log.
	h.log.setLeader(p, true)
	h.c.Nudge()
	h.waitLoaded()
	if got, _ := h.fetch(group, "t", 1); got[0] != 1 {
		t.Fatalf("fetch after regaining leadership: %v", got)
	}
}

// This node loses a partition and wins it back between two looks of the coordinator (no
// nudge, no periodic check): meanwhile another coordinator moved the group on. The first
// request sees the new leader epoch, the partition is reloaded, and the old generation is
// refused; the groups of the earlier leadership are never served again.
func TestReloadOnNewLeaderEpoch(t *testing.T) {
	h := newHarness(t, Config{})
	const group = "g"
	p := Partition(group, h.cfg.Partitions)
	ids, gen := h.stableGroup(group, 1)
	h.commit(group, ids[0], gen, "t", 1)

	// The other coordinator: the member left, the group is empty in the next generation,
	// and an assign() consumer committed offset 7.
	now := h.clock.Now()
	empty := kmsg.NewGroupMetadataValue()
	empty.Version = groupValueVersion
	empty.ProtocolType = "consumer"
	empty.Generation = gen + 1
	empty.CurrentStateTimestamp = now.UnixMilli()
	if _, err := h.log.appendOther(p, buildBatch(now.UnixMilli(), []record{
		groupMetadataRecord(group, &empty),
		offsetCommitRecord(group, "t", 0, offsetEntry{offset: 7, leaderEpoch: -1, commitTimestamp: now.UnixMilli()}),
	})); err != nil {
		t.Fatal(err)
	}
	h.log.newEpoch(p)

	if code := h.heartbeat(group, ids[0], gen, nil); code != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("heartbeat of the old generation in a new leader epoch: %d, want COORDINATOR_LOAD_IN_PROGRESS", code)
	}
	h.waitLoaded()
	if code := h.heartbeat(group, ids[0], gen, nil); code != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat of the old generation after the reload: %d, want UNKNOWN_MEMBER_ID", code)
	}
	if codes := commitCodes(h.commit(group, ids[0], gen, "t", 2)); codes[0] != kerr.UnknownMemberID.Code {
		t.Fatalf("commit of the old generation after the reload: %v", codes)
	}
	if got, code := h.fetch(group, "t", 1); code != 0 || got[0] != 7 {
		t.Fatalf("fetch after the reload: %v %d, want the other coordinator's 7", got, code)
	}
	if d := h.describe(group); d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("describe after the reload: %s with %d members", d.State, len(d.Members))
	}
}

// An append started under one leader epoch is refused once the epoch has changed, even
// before the coordinator notices: the commit fails with NOT_COORDINATOR and is not applied.
func TestAppendInOldLeaderEpoch(t *testing.T) {
	h := newHarness(t, Config{})
	const group = "g"
	p := Partition(group, h.cfg.Partitions)
	h.commit(group, "", -1, "t", 1)
	// Hold the writer until the epoch has moved on: the commit is validated under the old
	// epoch and appended after the change.
	gate := make(chan struct{})
	h.log.mu.Lock()
	h.log.appendGate = gate
	h.log.mu.Unlock()
	ch := async(func() *kmsg.OffsetCommitResponse { return h.commit(group, "", -1, "t", 5) })
	deadline := time.Now().Add(5 * time.Second)
	for {
		writing, _ := ask(ctx, h.c, func(reply func(bool)) { reply(h.c.groups[group] != nil && h.c.groups[group].writes > 0) })
		if writing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the commit was not appended")
		}
		time.Sleep(time.Millisecond)
	}
	h.log.newEpoch(p)
	close(gate)
	if codes := commitCodes(await(t, ch)); codes[0] != kerr.NotCoordinator.Code {
		t.Fatalf("commit appended in an old leader epoch: %v, want NOT_COORDINATOR", codes)
	}
	h.log.mu.Lock()
	n := len(h.log.partitions[p])
	h.log.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d batches in the partition, want the first commit's only", n)
	}
	h.c.Nudge()
	h.sync()
	h.waitLoaded()
	if got, _ := h.fetch(group, "t", 1); got[0] != 1 {
		t.Fatalf("fetch: %v, want 1", got)
	}
}

// A partition that fails to load is tried again at the next leadership check, not at
// every request; meanwhile its groups get COORDINATOR_LOAD_IN_PROGRESS.
func TestLoadRetriedAfterFailure(t *testing.T) {
	h := newHarness(t, Config{})
	const group = "g"
	p := Partition(group, h.cfg.Partitions)
	h.commit(group, "", -1, "t", 3)
	h.log.mu.Lock()
	h.log.readErr = errors.New("read failed")
	h.log.mu.Unlock()
	h.log.newEpoch(p) // reload
	for range 5 {
		if _, code := h.fetch(group, "t", 1); code != kerr.CoordinatorLoadInProgress.Code {
			t.Fatalf("fetch while the load fails: %d", code)
		}
		h.sync()
	}
	// The failed load's outcome reaches the coordinator from its own goroutine, which sync
	// does not wait for: wait until the failure is recorded, so that the clock moves on
	// from its time.
	deadline := time.Now().Add(5 * time.Second)
	for {
		failed, _ := ask(ctx, h.c, func(reply func(bool)) { _, ok := h.c.loadFailed[p]; reply(ok) })
		if failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed load was not recorded")
		}
		time.Sleep(time.Millisecond)
	}
	h.log.mu.Lock()
	reads := h.log.reads
	h.log.readErr = nil
	h.log.mu.Unlock()
	if reads > 2 {
		t.Fatalf("%d reads: the load was retried at every request", reads)
	}
	// The failure's time is when its outcome reached the coordinator, up to one step
	// after the clock moved on; a leadership check LeadershipCheck after it retries.
	h.advance(2 * h.c.Config().LeadershipCheck)
	h.waitLoaded()
	if got, code := h.fetch(group, "t", 1); code != 0 || got[0] != 3 {
		t.Fatalf("fetch after the retried load: %v %d", got, code)
	}
}

func TestAppendAfterLostLeadership(t *testing.T) {
	h := newHarness(t, Config{})
	p := Partition("g", h.cfg.Partitions)
	h.log.setLeader(p, false) // the log refuses; the coordinator has not noticed yet
	if codes := commitCodes(h.commit("g", "", -1, "t", 1)); codes[0] != kerr.NotCoordinator.Code {
		t.Fatalf("codes %v", codes)
	}
}

func TestDecodeOffsetsRecord(t *testing.T) {
	key0 := (&kmsg.OffsetCommitKey{Version: 0, Group: "g", Topic: "t", Partition: 1}).AppendTo(nil)
	val1 := (&kmsg.OffsetCommitValue{Version: 1, Offset: 5, Metadata: "x", CommitTimestamp: 1, ExpireTimestamp: 2}).AppendTo(nil)
	gkey := (&kmsg.GroupMetadataKey{Version: 2, Group: "g"}).AppendTo(nil)
	gval0 := (&kmsg.GroupMetadataValue{Version: 0, ProtocolType: "consumer", Generation: 3}).AppendTo(nil)
	tests := []struct {
		name    string
		r       record
		check   func(any) bool
		wantErr bool
	}{
		{"v0 key, v1 value: no leader epoch", record{key0, val1}, func(v any) bool {
			o := v.(*offsetRecord)
			return o.key.Partition == 1 && o.value.Offset == 5 && o.value.LeaderEpoch == -1
		}, false},
		{"offset tombstone", record{key: key0}, func(v any) bool { return v.(*offsetRecord).value == nil }, false},
		{"group v0 value", record{gkey, gval0}, func(v any) bool { return v.(*groupRecord).value.Generation == 3 }, false},
		{"group tombstone", record{key: gkey}, func(v any) bool { return v.(*groupRecord).value == nil }, false},
		{"newer key version is skipped", record{key: []byte{0, 3, 0, 1, 'g'}, value: []byte{1}}, func(v any) bool { return v == nil }, false},
		{"short key", record{key: []byte{0}}, nil, true},
		{"negative key version", record{key: []byte{0xff, 0xff}}, nil, true},
		{"truncated key", record{key: key0[:5], value: val1}, nil, true},
		{"truncated value", record{key0, val1[:6]}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decodeOffsetsRecord(tt.r)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error; got %+v", v)
				}
				return
			}
			if err != nil || !tt.check(v) {
				t.Fatalf("got %+v err %v", v, err)
			}
		})
	}
}

// Records a coordinator did not write (a client producing into __consumer_offsets) are
// skipped on load; the groups around them load.
func TestLoadSkipsForeignRecords(t *testing.T) {
	h := newHarness(t, Config{})
	p := Partition("g", h.cfg.Partitions)
	h.commit("g", "", -1, "t", 1)
	// A batch of records that do not decode, and a batch that is not a batch.
	if _, err := h.log.appendOther(p, buildBatch(1, []record{{key: []byte{0, 1, 0}, value: []byte("x")}, {key: []byte("?")}})); err != nil {
		t.Fatal(err)
	}
	bad := buildBatch(1, []record{{key: []byte("k"), value: []byte("v")}})
	bad[len(bad)-1] ^= 0xff
	h.log.mu.Lock()
	binary.BigEndian.PutUint64(bad, uint64(h.log.nextOffset(p)))
	h.log.partitions[p] = append(h.log.partitions[p], bad)
	h.log.mu.Unlock()
	h.commit("g", "", -1, "t", 2, 3)
	h.restart()
	if got, _ := h.fetch("g", "t", 2); !slices.Equal(got, []int64{2, 3}) {
		t.Fatalf("offsets after loading past foreign records: %v", got)
	}
}
