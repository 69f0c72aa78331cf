package group

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestJoinTwoStep(t *testing.T) {
	h := newHarness(t, Config{})
	first := await(t, h.joinAsync("g"))
	if first.ErrorCode != kerr.MemberIDRequired.Code || first.MemberID == "" {
		t.Fatalf("first join: error %d member %q, want MEMBER_ID_REQUIRED with an ID", first.ErrorCode, first.MemberID)
	}
	resp := await(t, h.joinAsync("g", withMember(first.MemberID)))
	if resp.ErrorCode != 0 || resp.Generation != 1 || resp.LeaderID != first.MemberID || resp.MemberID != first.MemberID {
		t.Fatalf("second join: %+v", resp)
	}
	if len(resp.Members) != 1 || resp.Members[0].MemberID != first.MemberID || *resp.Protocol != "range" || *resp.ProtocolType != "consumer" {
		t.Fatalf("leader's join answer: %+v", resp)
	}
	if d := h.describe("g"); d.State != "CompletingRebalance" {
		t.Fatalf("state %s, want CompletingRebalance", d.State)
	}
	sync := await(t, h.syncGroup("g", first.MemberID, 1, map[string][]byte{first.MemberID: []byte("mine")}))
	if sync.ErrorCode != 0 || string(sync.MemberAssignment) != "mine" || *sync.Protocol != "range" {
		t.Fatalf("sync: %+v", sync)
	}
	if d := h.describe("g"); d.State != "Stable" || len(d.Members) != 1 || string(d.Members[0].MemberAssignment) != "mine" {
		t.Fatalf("describe: %+v", d)
	}
}

func TestJoinBeforeV4HasNoMemberIDRequired(t *testing.T) {
	h := newHarness(t, Config{})
	resp := await(t, h.joinAsync("g", withVersion(3)))
	if resp.ErrorCode != 0 || resp.MemberID == "" || resp.Generation != 1 {
		t.Fatalf("v3 join: %+v", resp)
	}
}

func TestJoinErrors(t *testing.T) {
	tests := []struct {
		name string
		opts []joinOpt
		want int16
	}{
		{"session too short", []joinOpt{withTimeouts(10*time.Millisecond, time.Second)}, kerr.InvalidSessionTimeout.Code},
		{"session too long", []joinOpt{withTimeouts(time.Hour, time.Second)}, kerr.InvalidSessionTimeout.Code},
		{"unknown member of unknown group", []joinOpt{withMember("nobody")}, kerr.UnknownMemberID.Code},
		{"no protocols", []joinOpt{withProtocols()}, kerr.InconsistentGroupProtocol.Code},
		{"no protocol type", []joinOpt{withProtocolType("")}, kerr.InconsistentGroupProtocol.Code},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			if got := await(t, h.joinAsync("g", tt.opts...)).ErrorCode; got != tt.want {
				t.Fatalf("error %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("invalid group id", func(t *testing.T) {
		h := newHarness(t, Config{})
		if got := await(t, h.joinAsync("")).ErrorCode; got != kerr.InvalidGroupID.Code {
			t.Fatalf("error %d", got)
		}
	})
}

func TestJoinInconsistentWithGroup(t *testing.T) {
	tests := []struct {
		name string
		opts []joinOpt
		want int16
	}{
		{"other protocol type", []joinOpt{withProtocolType("connect")}, kerr.InconsistentGroupProtocol.Code},
		{"no common protocol", []joinOpt{withProtocols("roundrobin")}, kerr.InconsistentGroupProtocol.Code},
		{"one common protocol", []joinOpt{withProtocols("roundrobin", "range")}, kerr.MemberIDRequired.Code},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.stableGroup("g", 1)
			if got := await(t, h.joinAsync("g", tt.opts...)).ErrorCode; got != tt.want {
				t.Fatalf("error %d, want %d", got, tt.want)
			}
		})
	}
}

func TestSelectProtocol(t *testing.T) {
	tests := []struct {
		name    string
		members [][]string
		want    string
	}{
		{"one member takes its first", [][]string{{"cooperative-sticky", "range"}}, "cooperative-sticky"},
		{"only the common one", [][]string{{"a", "b"}, {"b", "c"}}, "b"},
		{"most votes", [][]string{{"a", "b"}, {"b", "a"}, {"b", "a"}}, "b"},
		{"vote among common only", [][]string{{"x", "a", "b"}, {"b", "a"}, {"b", "a"}}, "b"},
		{"tie goes to the first member's preference", [][]string{{"a", "b"}, {"b", "a"}}, "a"},
		{"none common", [][]string{{"a"}, {"b"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGroup("g", 0, time.Now())
			for i, names := range tt.members {
				var ps []protocol
				for _, n := range names {
					ps = append(ps, protocol{name: n})
				}
				g.addMember(&member{id: string(rune('a' + i)), protocolType: "consumer", protocols: ps})
			}
			if got := g.selectProtocol(); got != tt.want {
				t.Fatalf("selectProtocol = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRebalanceWithSecondMember(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 2)
	if gen != 2 {
		t.Fatalf("generation %d, want 2", gen)
	}
	d := h.describe("g")
	if d.State != "Stable" || len(d.Members) != 2 {
		t.Fatalf("describe: %+v", d)
	}
	for i, m := range d.Members {
		if m.MemberID != ids[i] || string(m.MemberAssignment) != "a-"+ids[i] {
			t.Fatalf("member %d: %+v", i, m)
		}
	}
	for _, id := range ids {
		if code := h.heartbeat("g", id, gen, nil); code != 0 {
			t.Fatalf("heartbeat: %d", code)
		}
	}
}

func TestHeartbeatErrors(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 1, withInstance("i1"))
	tests := []struct {
		name     string
		group    string
		member   string
		gen      int32
		instance *string
		want     int16
	}{
		{"ok", "g", ids[0], gen, kmsg.StringPtr("i1"), 0},
		{"ok without instance", "g", ids[0], gen, nil, 0},
		{"old generation", "g", ids[0], gen - 1, nil, kerr.IllegalGeneration.Code},
		{"unknown member", "g", "nobody", gen, nil, kerr.UnknownMemberID.Code},
		{"unknown group", "other", ids[0], gen, nil, kerr.UnknownMemberID.Code},
		{"fenced instance", "g", "old-id", gen, kmsg.StringPtr("i1"), kerr.FencedInstanceID.Code},
		{"unknown instance", "g", ids[0], gen, kmsg.StringPtr("i2"), kerr.UnknownMemberID.Code},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.heartbeat(tt.group, tt.member, tt.gen, tt.instance); got != tt.want {
				t.Fatalf("heartbeat: %d, want %d", got, tt.want)
			}
		})
	}
}

func TestSyncGroupErrorsAndWaiting(t *testing.T) {
	h := newHarness(t, Config{})
	leader, ch := h.newMember("g")
	gen := await(t, ch).Generation
	// A sync with a stale generation fails; the right one from the leader completes.
	if r := await(t, h.syncGroup("g", leader, gen+1, nil)); r.ErrorCode != kerr.IllegalGeneration.Code {
		t.Fatalf("stale sync: %d", r.ErrorCode)
	}
	if r := await(t, h.syncGroup("g", "nobody", gen, nil)); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member sync: %d", r.ErrorCode)
	}
	await(t, h.syncGroup("g", leader, gen, map[string][]byte{leader: []byte("x")}))

	// Second member: the follower's sync waits for the leader's.
	follower, fch := h.newMember("g")
	if code := h.heartbeat("g", leader, gen, nil); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("heartbeat: %d", code)
	}
	if r := await(t, h.syncGroup("g", leader, gen, nil)); r.ErrorCode != kerr.RebalanceInProgress.Code {
		t.Fatalf("sync while preparing: %d", r.ErrorCode)
	}
	lch := h.joinAsync("g", withMember(leader))
	lr, fr := await(t, lch), await(t, fch)
	if lr.Generation != gen+1 || fr.Generation != gen+1 || lr.LeaderID != leader || len(lr.Members) != 2 || len(fr.Members) != 0 {
		t.Fatalf("joins: leader %+v follower %+v", lr, fr)
	}
	fsync := h.syncGroup("g", follower, gen+1, nil)
	pendingAnswer(t, h, fsync)
	if r := await(t, h.syncGroup("g", leader, gen+1, map[string][]byte{follower: []byte("f")})); r.ErrorCode != 0 || len(r.MemberAssignment) != 0 {
		t.Fatalf("leader sync: %+v", r)
	}
	if r := await(t, fsync); r.ErrorCode != 0 || string(r.MemberAssignment) != "f" {
		t.Fatalf("follower sync: %+v", r)
	}
	// A member syncing again in Stable gets its assignment at once.
	if r := await(t, h.syncGroup("g", follower, gen+1, nil)); string(r.MemberAssignment) != "f" {
		t.Fatalf("repeat sync: %+v", r)
	}
}

func TestSessionTimeoutRemovesMember(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 2, withTimeouts(10*time.Second, 20*time.Second))
	// Only the first keeps heartbeating; the second is gone after its session timeout.
	for range 11 {
		h.advance(time.Second)
		code := h.heartbeat("g", ids[0], gen, nil)
		if code == kerr.RebalanceInProgress.Code {
			break
		}
		if code != 0 {
			t.Fatalf("heartbeat: %d", code)
		}
	}
	if d := h.describe("g"); d.State != "PreparingRebalance" || len(d.Members) != 1 || d.Members[0].MemberID != ids[0] {
		t.Fatalf("after the session timeout: %+v", d)
	}
	r := await(t, h.joinAsync("g", withMember(ids[0]), withTimeouts(10*time.Second, 20*time.Second)))
	if r.ErrorCode != 0 || r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("rejoin: %+v", r)
	}
}

func TestRebalanceTimeoutRemovesLaggards(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 2, withTimeouts(10*time.Second, 5*time.Second))
	// A third member joins; only the first two... only member 0 rejoins. Member 1 keeps
	// heartbeating but never rejoins, so it is removed when the rebalance times out.
	newID, nch := h.newMember("g", withTimeouts(10*time.Second, 5*time.Second))
	j0 := h.joinAsync("g", withMember(ids[0]), withTimeouts(10*time.Second, 5*time.Second))
	for range 6 {
		h.advance(time.Second)
		h.heartbeat("g", ids[1], gen, nil)
	}
	r0, rn := await(t, j0), await(t, nch)
	if r0.ErrorCode != 0 || rn.ErrorCode != 0 || r0.Generation != gen+1 {
		t.Fatalf("joins: %+v %+v", r0, rn)
	}
	members := []string{}
	for _, m := range r0.Members {
		members = append(members, m.MemberID)
	}
	if !slices.Equal(members, []string{ids[0], newID}) {
		t.Fatalf("members %v, want %v", members, []string{ids[0], newID})
	}
	if code := h.heartbeat("g", ids[1], gen, nil); code != kerr.UnknownMemberID.Code {
		t.Fatalf("removed member's heartbeat: %d", code)
	}
}

func TestPendingMemberExpires(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 1)
	// A member asks for an ID and never comes back: it does not hold up a rebalance past
	// its session timeout.
	if r := await(t, h.joinAsync("g")); r.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatalf("first join: %d", r.ErrorCode)
	}
	j := h.joinAsync("g", withMember(ids[0])) // the leader rejoins: a rebalance
	pendingAnswer(t, h, j)
	h.advance(11 * time.Second)
	if r := await(t, j); r.ErrorCode != 0 || r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("rejoin: %+v", r)
	}
}

func TestLeaveGroup(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 2)
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 0
	req.Group = "g"
	req.MemberID = ids[1]
	if r := h.c.LeaveGroup(ctx, req); r.ErrorCode != 0 {
		t.Fatalf("leave: %d", r.ErrorCode)
	}
	if r := h.c.LeaveGroup(ctx, req); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("second leave v0: %d, want UNKNOWN_MEMBER_ID at the top", r.ErrorCode)
	}
	if code := h.heartbeat("g", ids[0], gen, nil); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("heartbeat after leave: %d", code)
	}
	r := await(t, h.joinAsync("g", withMember(ids[0])))
	if r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("rejoin: %+v", r)
	}
	// The last member leaving empties the group.
	req.MemberID = ids[0]
	h.c.LeaveGroup(ctx, req)
	if d := h.describe("g"); d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("describe: %+v", d)
	}
}

func TestLeaveGroupBatched(t *testing.T) {
	h := newHarness(t, Config{})
	h.stableGroup("g", 1, withInstance("a"))
	// Add static member b.
	bch := h.joinAsync("g", withInstance("b"))
	pendingAnswer(t, h, bch)
	d := h.describe("g")
	aID := d.Members[0].MemberID
	await(t, h.joinAsync("g", withMember(aID), withInstance("a")))
	await(t, bch)

	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 5
	req.Group = "g"
	req.Members = []kmsg.LeaveGroupRequestMember{
		{InstanceID: kmsg.StringPtr("a")},
		{MemberID: "wrong", InstanceID: kmsg.StringPtr("b")},
		{InstanceID: kmsg.StringPtr("c")},
		{MemberID: "dynamic-nobody"},
	}
	r := h.c.LeaveGroup(ctx, req)
	var codes []int16
	for _, m := range r.Members {
		codes = append(codes, m.ErrorCode)
	}
	want := []int16{0, kerr.FencedInstanceID.Code, kerr.UnknownMemberID.Code, kerr.UnknownMemberID.Code}
	if r.ErrorCode != 0 || !slices.Equal(codes, want) {
		t.Fatalf("leave: top %d members %v, want %v", r.ErrorCode, codes, want)
	}
	if d := h.describe("g"); len(d.Members) != 1 || *d.Members[0].InstanceID != "b" {
		t.Fatalf("describe: %+v", d)
	}
}

func TestStaticMemberRejoinsWithoutRebalance(t *testing.T) {
	h := newHarness(t, Config{})
	ids, gen := h.stableGroup("g", 1, withInstance("i1"))
	// A second static member, so there is a leader and a follower.
	fch := h.joinAsync("g", withInstance("i2"))
	lch := h.joinAsync("g", withMember(ids[0]), withInstance("i1"))
	lr, fr := await(t, lch), await(t, fch)
	gen = lr.Generation
	await(t, h.syncGroup("g", ids[0], gen, map[string][]byte{ids[0]: []byte("L"), fr.MemberID: []byte("F")}))
	await(t, h.syncStatic("g", fr.MemberID, "i2", gen))

	// The follower restarts: same instance ID, no member ID, same protocols.
	again := await(t, h.joinAsync("g", withInstance("i2")))
	if again.ErrorCode != 0 || again.Generation != gen || again.MemberID == fr.MemberID || again.LeaderID != ids[0] {
		t.Fatalf("static rejoin: %+v", again)
	}
	if d := h.describe("g"); d.State != "Stable" {
		t.Fatalf("state %s, want Stable", d.State)
	}
	s := await(t, h.syncStatic("g", again.MemberID, "i2", gen))
	if s.ErrorCode != 0 || string(s.MemberAssignment) != "F" {
		t.Fatalf("sync after static rejoin: %+v", s)
	}
	// The old member ID is fenced.
	if code := h.heartbeat("g", fr.MemberID, gen, kmsg.StringPtr("i2")); code != kerr.FencedInstanceID.Code {
		t.Fatalf("old instance heartbeat: %d", code)
	}
	if code := h.heartbeat("g", ids[0], gen, nil); code != 0 {
		t.Fatalf("leader heartbeat: %d", code)
	}

	// The leader restarts: it gets the members back and is told to skip assignment (v9).
	lagain := await(t, h.joinAsync("g", withInstance("i1")))
	if lagain.Generation != gen || !lagain.SkipAssignment || lagain.LeaderID != lagain.MemberID || len(lagain.Members) != 2 {
		t.Fatalf("static leader rejoin: %+v", lagain)
	}

	// Rejoining with other metadata but the same protocol does not rebalance either.
	ch := h.joinAsync("g", withInstance("i2"), withTopics("t", "u"))
	if r := await(t, ch); r.ErrorCode != 0 || r.Generation != gen {
		t.Fatalf("static rejoin with new metadata: %+v", r)
	}
	if d := h.describe("g"); d.State != "Stable" {
		t.Fatalf("state %s, want Stable", d.State)
	}
}

func TestStaticMemberRejoinChangingProtocolRebalances(t *testing.T) {
	h := newHarness(t, Config{})
	h.stableGroup("g", 1, withInstance("i1"), withProtocols("range", "roundrobin"))
	ch := h.joinAsync("g", withInstance("i1"), withProtocols("roundrobin", "range"))
	r := await(t, ch)
	if r.ErrorCode != 0 || r.Generation != 2 || *r.Protocol != "roundrobin" {
		t.Fatalf("rejoin: %+v", r)
	}
	if d := h.describe("g"); d.State != "CompletingRebalance" {
		t.Fatalf("state %s, want CompletingRebalance", d.State)
	}
}

func TestStaticMemberFencedJoin(t *testing.T) {
	h := newHarness(t, Config{})
	ids, _ := h.stableGroup("g", 1, withInstance("i1"))
	await(t, h.joinAsync("g", withInstance("i1"))) // replaces ids[0]
	r := await(t, h.joinAsync("g", withMember(ids[0]), withInstance("i1")))
	if r.ErrorCode != kerr.FencedInstanceID.Code {
		t.Fatalf("stale static join: %d, want FENCED_INSTANCE_ID", r.ErrorCode)
	}
}

func TestOtherProtocolTypes(t *testing.T) {
	h := newHarness(t, Config{})
	opts := []joinOpt{withProtocolType("connect"), func(r *kmsg.JoinGroupRequest) {
		r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "sessioned", Metadata: []byte("worker-config")}}
	}}
	ids, gen := h.stableGroup("connect-cluster", 2, opts...)
	d := h.describe("connect-cluster")
	if d.State != "Stable" || d.ProtocolType != "connect" || d.Protocol != "sessioned" || len(d.Members) != 2 || gen != 2 {
		t.Fatalf("describe: %+v", d)
	}
	if string(d.Members[1].ProtocolMetadata) != "worker-config" || string(d.Members[1].MemberAssignment) != "a-"+ids[1] {
		t.Fatalf("member: %+v", d.Members[1])
	}
}

func TestInitialRebalanceDelay(t *testing.T) {
	h := newHarness(t, Config{InitialRebalanceDelay: 3 * time.Second})
	a := h.joinAsync("g", withVersion(3))
	pendingAnswer(t, h, a)
	h.advance(time.Second)
	b := h.joinAsync("g", withVersion(3))
	pendingAnswer(t, h, b)
	h.advance(2 * time.Second)
	ra, rb := await(t, a), await(t, b)
	if ra.Generation != 1 || rb.Generation != 1 || ra.LeaderID != rb.LeaderID {
		t.Fatalf("joins: %+v %+v", ra, rb)
	}
}
