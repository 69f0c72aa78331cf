package protocol

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/group"
)

// The group admin APIs through kadm: FindCoordinator (batched, v4), ListGroups with a
// state filter, DescribeGroups, DeleteGroups, OffsetDelete and simple commits.
func TestGroupAdminAPIs(t *testing.T) {
	ts := startServer(t, "")
	const topic = "admin"
	createTopic(t, ts.addr, topic, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, ts.addr))

	coords := adm.FindGroupCoordinators(ctx, "busy", "idle")
	for _, name := range []string{"busy", "idle"} {
		c, ok := coords[name]
		if !ok || c.Err != nil || c.NodeID != 0 || c.Port <= 0 {
			t.Fatalf("coordinator of %s: %+v", name, c)
		}
	}

	// "idle" only has simple commits, as an assign() consumer makes.
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 5, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: topic, Partition: 1, At: 7, LeaderEpoch: -1})
	if res, err := adm.CommitOffsets(ctx, "idle", offs); err != nil || res.Error() != nil {
		t.Fatalf("simple commit: %v %v", err, res.Error())
	}
	// Committing to a partition that does not exist fails for that partition only.
	var bad kadm.Offsets
	bad.Add(kadm.Offset{Topic: topic, Partition: 9, At: 1, LeaderEpoch: -1})
	bad.Add(kadm.Offset{Topic: "no-such-topic", Partition: 0, At: 1, LeaderEpoch: -1})
	if res, err := adm.CommitOffsets(ctx, "idle", bad); err != nil || !errors.Is(res.Error(), kerr.UnknownTopicOrPartition) {
		t.Fatalf("commit to unknown partitions: %v %v", err, res.Error())
	}

	// "busy" has a member consuming the topic.
	l := newLedger()
	startMember(t, ts.addr, "busy-0", "busy", topic, l)
	waitFor(t, 30*time.Second, "busy to be stable", func() bool {
		gs, err := adm.DescribeGroups(ctx, "busy")
		return err == nil && gs["busy"].State == "Stable"
	})

	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || listed["busy"].State != "Stable" || listed["busy"].ProtocolType != "consumer" || listed["idle"].State != "Empty" {
		t.Fatalf("listed %+v", listed)
	}
	if stable, err := adm.ListGroups(ctx, "Stable"); err != nil || len(stable) != 1 {
		t.Fatalf("list Stable: %+v %v", stable, err)
	}

	gs, err := adm.DescribeGroups(ctx, "busy", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	busy := gs["busy"]
	if busy.Err != nil || busy.Protocol == "" || len(busy.Members) != 1 || busy.Members[0].ClientID != "busy-0" || busy.Members[0].ClientHost != "/127.0.0.1" {
		t.Fatalf("describe busy: %+v", busy)
	}
	if ca, ok := busy.Members[0].Assigned.AsConsumer(); !ok || len(ca.Topics) != 1 || len(ca.Topics[0].Partitions) != 2 {
		t.Fatalf("busy's assignment: %+v", busy.Members[0].Assigned)
	}
	if gs["nobody"].State != "Dead" || gs["nobody"].Err != nil {
		t.Fatalf("describe unknown: %+v", gs["nobody"])
	}

	// OffsetDelete: refused for a topic the group consumes, fine for an empty group.
	set := make(kadm.TopicsSet)
	set.Add(topic, 0)
	if res, err := adm.DeleteOffsets(ctx, "busy", set); err != nil || !errors.Is(res.Error(), kerr.GroupSubscribedToTopic) {
		t.Fatalf("delete offsets of busy: %v %v", err, res.Error())
	}
	if res, err := adm.DeleteOffsets(ctx, "idle", set); err != nil || res.Error() != nil {
		t.Fatalf("delete offsets of idle: %v %v", err, res.Error())
	}
	fetched, err := adm.FetchOffsets(ctx, "idle")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fetched.Lookup(topic, 0); ok {
		t.Fatalf("deleted offset still there: %+v", fetched)
	}
	if o, _ := fetched.Lookup(topic, 1); o.At != 7 {
		t.Fatalf("offset of partition 1: %+v", o)
	}

	// DeleteGroups: only empty groups.
	dels, err := adm.DeleteGroups(ctx, "busy", "idle", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(dels["busy"].Err, kerr.NonEmptyGroup) || dels["idle"].Err != nil || !errors.Is(dels["nobody"].Err, kerr.GroupIDNotFound) {
		t.Fatalf("delete groups: %+v", dels)
	}
	if fetched, err := adm.FetchOffsets(ctx, "idle"); err != nil || len(fetched) != 0 {
		t.Fatalf("offsets of the deleted group: %+v %v", fetched, err)
	}
}

// Old clients: JoinGroup v0 (no two-step join), OffsetCommit v0-v1 and OffsetFetch v1
// (errors per partition), FindCoordinator v0.
func TestGroupOldVersions(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "old", 1, nil)
	// Wait until the coordinator has loaded (franz-go retries while it loads).
	adm := kadm.NewClient(newClient(t, ts.addr))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := adm.FetchOffsets(ctx, "old-group"); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, ts.addr)
	corr := int32(0)
	do := func(req kmsg.Request) (kmsg.Response, error) {
		corr++
		return rc.roundTrip(req, corr), nil
	}

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version = 0
	fc.CoordinatorKey = "old-group"
	fcr, err := asResp[*kmsg.FindCoordinatorResponse](do(fc))
	if err != nil || fcr.ErrorCode != 0 || fcr.NodeID != 0 {
		t.Fatalf("FindCoordinator v0: %+v %v", fcr, err)
	}

	join := kmsg.NewPtrJoinGroupRequest()
	join.Version = 0
	join.Group = "old-group"
	join.SessionTimeoutMillis = 10_000
	join.ProtocolType = "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0, 0, 0, 0, 0, 0, 0}}}
	jr, err := asResp[*kmsg.JoinGroupResponse](do(join))
	if err != nil || jr.ErrorCode != 0 || jr.Generation != 1 || jr.MemberID == "" || jr.LeaderID != jr.MemberID {
		t.Fatalf("JoinGroup v0: %+v %v", jr, err)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version = 0
	sync.Group, sync.MemberID, sync.Generation = "old-group", jr.MemberID, jr.Generation
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: jr.MemberID, MemberAssignment: []byte("x")}}
	if sr, err := asResp[*kmsg.SyncGroupResponse](do(sync)); err != nil || sr.ErrorCode != 0 || string(sr.MemberAssignment) != "x" {
		t.Fatalf("SyncGroup v0: %+v %v", sr, err)
	}

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version = 1
	commit.Group, commit.MemberID, commit.Generation = "old-group", jr.MemberID, jr.Generation
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Offset = 42
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "old", Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}}}
	if cr, err := asResp[*kmsg.OffsetCommitResponse](do(commit)); err != nil || cr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetCommit v1: %+v %v", cr, err)
	}

	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Version = 1
	fetch.Group = "old-group"
	fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "old", Partitions: []int32{0}}}
	fr, err := asResp[*kmsg.OffsetFetchResponse](do(fetch))
	if err != nil || fr.Topics[0].Partitions[0].Offset != 42 || fr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetFetch v1: %+v %v", fr, err)
	}

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 0
	leave.Group, leave.MemberID = "old-group", jr.MemberID
	if lr, err := asResp[*kmsg.LeaveGroupResponse](do(leave)); err != nil || lr.ErrorCode != 0 {
		t.Fatalf("LeaveGroup v0: %+v %v", lr, err)
	}
	if lr, err := asResp[*kmsg.LeaveGroupResponse](do(leave)); err != nil || lr.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("second LeaveGroup v0: %+v %v", lr, err)
	}
	if ts.srv.groups().Config().Partitions != group.DefaultPartitions {
		t.Fatal("coordinator partitions")
	}
}

func asResp[T kmsg.Response](r kmsg.Response, err error) (T, error) {
	return r.(T), err
}

// A join waiting for a rebalance does not hold up a shutdown: it is answered
// NOT_COORDINATOR and the client finds the coordinator again after the restart.
func TestGroupJoinAnsweredOnShutdown(t *testing.T) {
	ts := startServer(t, "")
	adm := kadm.NewClient(newClient(t, ts.addr))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := adm.FetchOffsets(ctx, "g"); err != nil { // the coordinator has loaded
		t.Fatal(err)
	}
	join := func(rc *rawConn, member string) {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 3 // no MEMBER_ID_REQUIRED
		req.Group, req.MemberID = "g", member
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30_000, 120_000
		req.ProtocolType = "consumer"
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0, 0, 0, 0, 0, 0, 0}}}
		rc.send(req, 1)
	}
	a := dialRaw(t, ts.addr)
	join(a, "")
	ar := kmsg.NewPtrJoinGroupResponse()
	ar.Version = 3
	a.recv(ar, 1)
	if ar.ErrorCode != 0 {
		t.Fatalf("first join: %d", ar.ErrorCode)
	}
	// b's join waits for a to rejoin, which it never does (up to the 120 s rebalance timeout).
	b := dialRaw(t, ts.addr)
	join(b, "")
	waitFor(t, 10*time.Second, "the rebalance to start", func() bool {
		gs, err := adm.DescribeGroups(ctx, "g")
		return err == nil && gs["g"].State == "PreparingRebalance"
	})
	go ts.stop()
	br := kmsg.NewPtrJoinGroupResponse()
	br.Version = 3
	b.recv(br, 1)
	if br.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("waiting join on shutdown: error %d, want NOT_COORDINATOR", br.ErrorCode)
	}
}
