package group

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup answers a JoinGroup request; clientID and clientHost come from the request
// header and the connection. It returns once the member's join is complete, which may take
// a rebalance, or nil when ctx ends first.
func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest, clientID, clientHost string) *kmsg.JoinGroupResponse {
	resp, ok := ask(ctx, c, func(reply func(*kmsg.JoinGroupResponse)) { c.join(req, clientID, clientHost, reply) })
	if !ok {
		if ctx.Err() != nil {
			return nil
		}
		resp = joinResponse(req)
		resp.ErrorCode = kerr.NotCoordinator.Code
	}
	return resp
}

func joinResponse(req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = req.Version
	resp.MemberID = req.MemberID
	return resp
}

func millis(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }

func (c *Coordinator) join(req *kmsg.JoinGroupRequest, clientID, clientHost string, reply func(*kmsg.JoinGroupResponse)) {
	fail := func(code int16) {
		resp := joinResponse(req)
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
	session := millis(req.SessionTimeoutMillis)
	if session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout {
		fail(kerr.InvalidSessionTimeout.Code)
		return
	}
	rebalance := millis(req.RebalanceTimeoutMillis)
	if req.Version == 0 || rebalance <= 0 {
		rebalance = session
	}
	protocols := make([]protocol, len(req.Protocols))
	for i, p := range req.Protocols {
		protocols[i] = protocol{name: p.Name, metadata: p.Metadata}
	}
	instanceID := req.InstanceID
	if req.Version < 5 {
		instanceID = nil
	}
	j := &joinReq{
		version: req.Version, memberID: req.MemberID, instanceID: instanceID,
		clientID: clientID, clientHost: clientHost, protocolType: req.ProtocolType,
		protocols: protocols, session: session, rebalance: rebalance, reply: reply,
	}

	g := c.groups[req.Group]
	if g == nil {
		if req.MemberID != "" {
			fail(kerr.UnknownMemberID.Code)
			return
		}
		if req.ProtocolType == "" || len(protocols) == 0 {
			fail(kerr.InconsistentGroupProtocol.Code)
			return
		}
		g = newGroup(req.Group, Partition(req.Group, c.cfg.Partitions), c.cfg.Clock.Now())
		c.groups[req.Group] = g
	}
	switch {
	case g.state == Dead:
		fail(kerr.CoordinatorNotAvailable.Code)
		return
	case !g.supports(req.ProtocolType, protocols):
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	if req.MemberID == "" {
		c.joinNew(g, j)
	} else {
		c.joinKnown(g, j)
	}
	c.maybeCompleteJoin(g)
}

// joinReq is a validated JoinGroup request.
type joinReq struct {
	version      int16
	memberID     string
	instanceID   *string
	clientID     string
	clientHost   string
	protocolType string
	protocols    []protocol
	session      time.Duration
	rebalance    time.Duration
	reply        func(*kmsg.JoinGroupResponse)
}

func (j *joinReq) fail(memberID string, code int16) {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = j.version
	resp.MemberID = memberID
	resp.ErrorCode = code
	j.reply(resp)
}

// joinNew handles a join without a member ID: a new dynamic member (which on v4+ is first
// handed its ID with MEMBER_ID_REQUIRED), a new static member, or a static member coming
// back under its group.instance.id.
func (c *Coordinator) joinNew(g *group, j *joinReq) {
	if j.instanceID != nil {
		id := newMemberID(*j.instanceID)
		if old := g.static[*j.instanceID]; old != "" {
			c.replaceStatic(g, g.members[old], id, j)
			return
		}
		c.addMemberAndRebalance(g, id, j)
		return
	}
	id := newMemberID(j.clientID)
	if j.version >= 4 {
		g.pending[id] = c.after(j.session, func() {
			if c.groups[g.name] != g {
				return
			}
			if _, ok := g.pending[id]; ok {
				delete(g.pending, id)
				c.maybeCompleteJoin(g)
			}
		})
		j.fail(id, kerr.MemberIDRequired.Code)
		return
	}
	c.addMemberAndRebalance(g, id, j)
}

// joinKnown handles a join from a member that has an ID.
func (c *Coordinator) joinKnown(g *group, j *joinReq) {
	if t, ok := g.pending[j.memberID]; ok {
		t.Stop()
		delete(g.pending, j.memberID)
		c.addMemberAndRebalance(g, j.memberID, j)
		return
	}
	if code := g.validateMember(j.memberID, j.instanceID); code != 0 {
		j.fail(j.memberID, code)
		return
	}
	m := g.members[j.memberID]
	switch g.state {
	case PreparingRebalance:
		c.updateMemberAndRebalance(g, m, j)
	case CompletingRebalance:
		if sameProtocols(m.protocols, j.protocols) {
			// The member lost the answer to its join; give it again.
			j.reply(c.joinAnswer(g, m, j.version))
			return
		}
		c.updateMemberAndRebalance(g, m, j)
	case Stable:
		if m.id == g.leader || !sameProtocols(m.protocols, j.protocols) {
			c.updateMemberAndRebalance(g, m, j)
			return
		}
		c.heartbeat(g, m)
		j.reply(c.joinAnswer(g, m, j.version))
	default:
		j.fail(j.memberID, kerr.UnknownMemberID.Code)
	}
}

// validateMember checks that memberID is a member and, when instanceID is set, that it
// is the member holding that instance: FENCED_INSTANCE_ID when another one does.
func (g *group) validateMember(memberID string, instanceID *string) int16 {
	if instanceID != nil {
		cur, ok := g.static[*instanceID]
		switch {
		case !ok:
			return kerr.UnknownMemberID.Code
		case cur != memberID:
			return kerr.FencedInstanceID.Code
		}
		return 0
	}
	if g.members[memberID] == nil {
		return kerr.UnknownMemberID.Code
	}
	return 0
}

// joinAnswer is the successful join answer for m in the current generation: the leader
// gets every member's metadata for the chosen protocol.
func (c *Coordinator) joinAnswer(g *group, m *member, version int16) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = version
	resp.Generation = g.generation
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType = &pt
	resp.Protocol = &p
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if m.id == g.leader {
		for _, id := range g.order {
			o := g.members[id]
			resp.Members = append(resp.Members, kmsg.JoinGroupResponseMember{
				MemberID:         o.id,
				InstanceID:       o.instanceID,
				ProtocolMetadata: o.metadataFor(g.protocol),
			})
		}
	}
	return resp
}

func (c *Coordinator) addMemberAndRebalance(g *group, id string, j *joinReq) {
	m := &member{
		id:               id,
		instanceID:       j.instanceID,
		clientID:         j.clientID,
		clientHost:       j.clientHost,
		protocolType:     j.protocolType,
		protocols:        j.protocols,
		sessionTimeout:   j.session,
		rebalanceTimeout: j.rebalance,
		isNew:            true,
		joinVersion:      j.version,
		join:             j.reply,
	}
	g.addMember(m)
	c.heartbeat(g, m)
	c.maybePrepareRebalance(g)
}

func (c *Coordinator) updateMemberAndRebalance(g *group, m *member, j *joinReq) {
	if m.join != nil {
		// A second join while the first waits: the first is superseded.
		old := m.join
		m.join = nil
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Version = m.joinVersion
		resp.MemberID = m.id
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		old(resp)
	}
	m.protocols = j.protocols
	m.sessionTimeout = j.session
	m.rebalanceTimeout = j.rebalance
	m.clientID, m.clientHost = j.clientID, j.clientHost
	m.joinVersion = j.version
	m.join = j.reply
	c.maybePrepareRebalance(g)
}

// replaceStatic gives the static member old, rejoining under its instance ID without a
// member ID, the new ID id and fences the old ID. In a Stable group whose protocol the
// member's protocols leave unchanged, that is all: the member gets the current generation
// and assignment back without a rebalance, once the new ID is durable.
func (c *Coordinator) replaceStatic(g *group, old *member, id string, j *joinReq) {
	fenced := old.id
	if old.join != nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Version = old.joinVersion
		resp.MemberID = fenced
		resp.ErrorCode = kerr.FencedInstanceID.Code
		old.join(resp)
		old.join = nil
	}
	if old.sync != nil {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = kerr.FencedInstanceID.Code
		old.sync(resp)
		old.sync = nil
	}
	prev := *old
	g.replaceMember(old, id)
	m := old
	m.clientID, m.clientHost = j.clientID, j.clientHost
	m.sessionTimeout, m.rebalanceTimeout = j.session, j.rebalance
	m.protocols = j.protocols
	m.joinVersion = j.version
	c.heartbeat(g, m)

	// As Kafka does, only a change of the group's protocol forces a rebalance: the
	// metadata of a restarted client often differs (a cooperative member no longer lists
	// the partitions it owned) while its subscription does not.
	switch {
	case g.state == Stable && g.selectProtocol() == g.protocol:
		gen := g.generation
		c.append(g, []record{groupMetadataRecord(g.name, g.metadataValue(c.cfg.Clock.Now(), nil))}, func(err error) {
			if c.groups[g.name] != g || g.members[id] != m {
				j.fail(id, kerr.UnknownMemberID.Code)
				return
			}
			if err != nil {
				// Put the old ID back: the new one was never recorded.
				g.replaceMember(m, fenced)
				m.clientID, m.clientHost = prev.clientID, prev.clientHost
				m.sessionTimeout, m.rebalanceTimeout = prev.sessionTimeout, prev.rebalanceTimeout
				m.protocols = prev.protocols
				j.fail("", appendErrorCode(err))
				return
			}
			if g.generation != gen {
				// A rebalance started meanwhile: the member joins it.
				m.join = j.reply
				c.maybeCompleteJoin(g)
				return
			}
			resp := c.joinAnswer(g, m, j.version)
			resp.SkipAssignment = m.id == g.leader && j.version >= 9
			j.reply(resp)
		})
	case g.state == PreparingRebalance:
		m.join = j.reply
	default:
		// CompletingRebalance: the leader may be assigning to the old ID, so start over.
		// Stable with other protocols: the assignment must change.
		m.join = j.reply
		c.prepareRebalance(g)
	}
}

// maybePrepareRebalance starts a rebalance unless one is already under way.
func (c *Coordinator) maybePrepareRebalance(g *group) {
	switch g.state {
	case Stable, CompletingRebalance, Empty:
		c.prepareRebalance(g)
	}
}

// prepareRebalance moves g to PreparingRebalance: members must rejoin within the rebalance
// timeout. An empty group first waits InitialRebalanceDelay for more members.
func (c *Coordinator) prepareRebalance(g *group) {
	if g.state == CompletingRebalance {
		c.resetAssignments(g, kerr.RebalanceInProgress.Code)
	}
	d := g.rebalanceTimeout()
	g.delaying = false
	if g.state == Empty && c.cfg.InitialRebalanceDelay > 0 {
		d = min(d, c.cfg.InitialRebalanceDelay)
		g.delaying = true
	}
	g.transition(PreparingRebalance, c.cfg.Clock.Now())
	c.armRebalance(g, d)
	c.maybeCompleteJoin(g)
}

func (c *Coordinator) armRebalance(g *group, d time.Duration) {
	if g.rebalance != nil {
		g.rebalance.Stop()
	}
	g.rebalanceToken++
	token := g.rebalanceToken
	g.rebalance = c.after(d, func() {
		if c.groups[g.name] != g || g.rebalanceToken != token || g.state != PreparingRebalance {
			return
		}
		if g.delaying {
			g.delaying = false
			if !g.allJoined() {
				c.armRebalance(g, g.rebalanceTimeout())
				return
			}
		}
		c.completeJoin(g)
	})
}

// maybeCompleteJoin ends the join phase once every member has rejoined.
func (c *Coordinator) maybeCompleteJoin(g *group) {
	if g.state == PreparingRebalance && !g.delaying && g.allJoined() {
		c.completeJoin(g)
	}
}

// completeJoin ends the join phase: members that did not rejoin are removed, the next
// generation starts with the protocol the members chose, and every join is answered.
func (c *Coordinator) completeJoin(g *group) {
	if g.rebalance != nil {
		g.rebalance.Stop()
		g.rebalance = nil
	}
	g.rebalanceToken++
	for _, id := range append([]string(nil), g.order...) {
		if m := g.members[id]; m.join == nil {
			g.removeMember(id)
		}
	}
	now := c.cfg.Clock.Now()
	g.generation++
	if len(g.members) == 0 {
		g.protocol = ""
		g.transition(Empty, now)
		gen := g.generation
		c.append(g, []record{groupMetadataRecord(g.name, g.metadataValue(now, nil))}, func(err error) {
			if err != nil && c.groups[g.name] == g {
				c.logger.Warn("recording empty group failed",
					zapGroup(g.name), zapGeneration(gen), zapError(err))
			}
		})
		return
	}
	g.protocol = g.selectProtocol()
	g.transition(CompletingRebalance, now)
	for _, id := range g.order {
		m := g.members[id]
		resp := c.joinAnswer(g, m, m.joinVersion)
		m.join(resp)
		m.join = nil
		m.isNew = false
		c.heartbeat(g, m)
	}
}

// resetAssignments answers every waiting SyncGroup with code and clears the assignments.
func (c *Coordinator) resetAssignments(g *group, code int16) {
	for _, m := range g.members {
		m.assignment = nil
		if m.sync != nil {
			resp := kmsg.NewPtrSyncGroupResponse()
			resp.ErrorCode = code
			m.sync(resp)
			m.sync = nil
		}
	}
}

// failWaiting answers every waiting join and sync of g with code.
func (c *Coordinator) failWaiting(g *group, code int16) {
	for _, m := range g.members {
		if m.join != nil {
			resp := kmsg.NewPtrJoinGroupResponse()
			resp.Version = m.joinVersion
			resp.MemberID = m.id
			resp.ErrorCode = code
			m.join(resp)
			m.join = nil
		}
	}
	c.resetAssignments(g, code)
}

// heartbeat records that m is alive and (re)arms its session timeout.
func (c *Coordinator) heartbeat(g *group, m *member) {
	m.lastHeartbeat = c.cfg.Clock.Now()
	c.armSession(g, m, m.sessionTimeout)
}

func (c *Coordinator) armSession(g *group, m *member, d time.Duration) {
	if m.heartbeat != nil {
		m.heartbeat.Stop()
	}
	m.heartbeatToken++
	token := m.heartbeatToken
	m.heartbeat = c.after(d, func() {
		if c.groups[g.name] != g || g.members[m.id] != m || m.heartbeatToken != token {
			return
		}
		now := c.cfg.Clock.Now()
		switch {
		case m.join != nil && m.isNew:
			// A new member waiting for its first generation gets a longer grace.
			if left := m.lastHeartbeat.Add(newMemberJoinTimeout).Sub(now); left > 0 {
				c.armSession(g, m, left)
				return
			}
		case m.join != nil || m.sync != nil:
			// A member waiting for an answer cannot heartbeat.
			c.armSession(g, m, m.sessionTimeout)
			return
		default:
			if left := m.lastHeartbeat.Add(m.sessionTimeout).Sub(now); left > 0 {
				c.armSession(g, m, left)
				return
			}
		}
		c.logger.Info("member session expired", zapGroup(g.name), zapMember(m.id))
		c.removeMemberAndUpdate(g, m)
	})
}

// removeMemberAndUpdate removes m (after a leave or a session timeout) and rebalances.
func (c *Coordinator) removeMemberAndUpdate(g *group, m *member) {
	if m.join != nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Version = m.joinVersion
		resp.MemberID = m.id
		resp.ErrorCode = kerr.UnknownMemberID.Code
		m.join(resp)
		m.join = nil
	}
	if m.sync != nil {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = kerr.UnknownMemberID.Code
		m.sync(resp)
		m.sync = nil
	}
	g.removeMember(m.id)
	switch g.state {
	case Stable, CompletingRebalance:
		c.prepareRebalance(g)
	case PreparingRebalance:
		c.maybeCompleteJoin(g)
	}
}

// SyncGroup answers a SyncGroup request. The leader's request carries the assignment;
// every member's request waits until the assignment is durable, or nil when ctx ends.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp, ok := ask(ctx, c, func(reply func(*kmsg.SyncGroupResponse)) { c.syncGroup(req, reply) })
	if !ok {
		if ctx.Err() != nil {
			return nil
		}
		resp = kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = kerr.NotCoordinator.Code
	}
	resp.Version = req.Version
	return resp
}

func (c *Coordinator) syncGroup(req *kmsg.SyncGroupRequest, reply func(*kmsg.SyncGroupResponse)) {
	fail := func(code int16) {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = code
		reply(resp)
	}
	if _, code := c.shardOf(req.Group); code != 0 {
		fail(code)
		return
	}
	instanceID := req.InstanceID
	if req.Version < 3 {
		instanceID = nil
	}
	g := c.groups[req.Group]
	switch {
	case g == nil:
		fail(kerr.UnknownMemberID.Code)
		return
	case g.state == Dead:
		fail(kerr.CoordinatorNotAvailable.Code)
		return
	}
	if code := g.validateMember(req.MemberID, instanceID); code != 0 {
		fail(code)
		return
	}
	switch {
	case req.Generation != g.generation:
		fail(kerr.IllegalGeneration.Code)
		return
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	m := g.members[req.MemberID]
	switch g.state {
	case Empty:
		fail(kerr.UnknownMemberID.Code)
	case PreparingRebalance:
		fail(kerr.RebalanceInProgress.Code)
	case Stable:
		c.heartbeat(g, m)
		reply(c.syncAnswer(g, m))
	case CompletingRebalance:
		if m.sync != nil {
			old := m.sync
			resp := kmsg.NewPtrSyncGroupResponse()
			resp.ErrorCode = kerr.RebalanceInProgress.Code
			old(resp)
		}
		m.sync = reply
		if m.id != g.leader {
			return
		}
		assignments := make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			if g.members[a.MemberID] != nil {
				assignments[a.MemberID] = a.MemberAssignment
			}
		}
		gen := g.generation
		rec := groupMetadataRecord(g.name, g.metadataValue(c.cfg.Clock.Now(), assignments))
		c.append(g, []record{rec}, func(err error) {
			if c.groups[g.name] != g || g.state != CompletingRebalance || g.generation != gen {
				return // a new rebalance answered the waiting syncs already
			}
			if err != nil {
				c.resetAssignments(g, appendErrorCode(err))
				c.prepareRebalance(g)
				return
			}
			for _, id := range g.order {
				o := g.members[id]
				o.assignment = assignments[id]
				if o.assignment == nil {
					o.assignment = []byte{}
				}
			}
			g.transition(Stable, c.cfg.Clock.Now())
			for _, id := range g.order {
				o := g.members[id]
				if o.sync != nil {
					c.heartbeat(g, o)
					o.sync(c.syncAnswer(g, o))
					o.sync = nil
				}
			}
		})
	}
}

func (c *Coordinator) syncAnswer(g *group, m *member) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType = &pt
	resp.Protocol = &p
	resp.MemberAssignment = m.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp
}

// Heartbeat answers a Heartbeat request.
func (c *Coordinator) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	code, ok := ask(ctx, c, func(reply func(int16)) { reply(c.heartbeatGroup(req)) })
	if !ok {
		code = kerr.NotCoordinator.Code
	}
	resp := kmsg.NewPtrHeartbeatResponse()
	resp.Version = req.Version
	resp.ErrorCode = code
	return resp
}

func (c *Coordinator) heartbeatGroup(req *kmsg.HeartbeatRequest) int16 {
	if _, code := c.shardOf(req.Group); code != 0 {
		return code
	}
	instanceID := req.InstanceID
	if req.Version < 3 {
		instanceID = nil
	}
	g := c.groups[req.Group]
	switch {
	case g == nil:
		return kerr.UnknownMemberID.Code
	case g.state == Dead:
		return kerr.CoordinatorNotAvailable.Code
	case g.state == Empty:
		return kerr.UnknownMemberID.Code
	}
	if code := g.validateMember(req.MemberID, instanceID); code != 0 {
		return code
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	c.heartbeat(g, g.members[req.MemberID])
	if g.state == PreparingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// LeaveGroup answers a LeaveGroup request: one member (v0-v2) or several, each by member
// ID or by group.instance.id (v3+).
func (c *Coordinator) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp, ok := ask(ctx, c, func(reply func(*kmsg.LeaveGroupResponse)) { reply(c.leaveGroup(req)) })
	if !ok {
		resp = kmsg.NewPtrLeaveGroupResponse()
		resp.ErrorCode = kerr.NotCoordinator.Code
	}
	resp.Version = req.Version
	if req.Version < 3 {
		if resp.ErrorCode == 0 && len(resp.Members) == 1 {
			resp.ErrorCode = resp.Members[0].ErrorCode
		}
		resp.Members = nil
	}
	return resp
}

func (c *Coordinator) leaveGroup(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := kmsg.NewPtrLeaveGroupResponse()
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	if _, code := c.shardOf(req.Group); code != 0 {
		resp.ErrorCode = code
		return resp
	}
	g := c.groups[req.Group]
	if g != nil && g.state == Dead {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	for _, l := range leaving {
		out := kmsg.LeaveGroupResponseMember{MemberID: l.MemberID, InstanceID: l.InstanceID}
		out.ErrorCode = c.leaveOne(g, l.MemberID, l.InstanceID)
		resp.Members = append(resp.Members, out)
	}
	return resp
}

func (c *Coordinator) leaveOne(g *group, memberID string, instanceID *string) int16 {
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	if instanceID != nil {
		cur, ok := g.static[*instanceID]
		switch {
		case !ok:
			return kerr.UnknownMemberID.Code
		case memberID != "" && memberID != cur:
			return kerr.FencedInstanceID.Code
		}
		memberID = cur
	}
	if t, ok := g.pending[memberID]; ok {
		t.Stop()
		delete(g.pending, memberID)
		c.maybeCompleteJoin(g)
		return 0
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	c.removeMemberAndUpdate(g, m)
	return 0
}
