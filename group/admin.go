package group

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator returns the node that coordinates group key: the leader of its
// __consumer_offsets partition. It returns COORDINATOR_NOT_AVAILABLE when that partition
// has no leader yet.
func (c *Coordinator) FindCoordinator(key string) (node int32, code int16) {
	node = c.log.Leader(Partition(key, c.cfg.Partitions)).Node
	if node < 0 {
		return -1, kerr.CoordinatorNotAvailable.Code
	}
	return node, 0
}

// ListGroups answers a ListGroups request with the groups this node coordinates, those in
// the states of StatesFilter (v4+) when it is not empty. While a partition is loading the
// answer carries COORDINATOR_LOAD_IN_PROGRESS, as Kafka's does.
func (c *Coordinator) ListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp, ok := ask(ctx, c, func(reply func(*kmsg.ListGroupsResponse)) { reply(c.listGroups(req)) })
	if !ok {
		resp = kmsg.NewPtrListGroupsResponse()
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	}
	resp.Version = req.Version
	return resp
}

func (c *Coordinator) listGroups(req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := kmsg.NewPtrListGroupsResponse()
	c.checkLeadership() // list only groups this node coordinates now
	for _, s := range c.shards {
		if s.state == shardLoading {
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		}
	}
	var filter []State
	if req.Version >= 4 {
		for _, name := range req.StatesFilter {
			if s, ok := parseState(name); ok {
				filter = append(filter, s)
			}
		}
		if len(req.StatesFilter) > 0 && len(filter) == 0 {
			return resp
		}
	}
	for _, g := range c.groups {
		if g.state == Dead || (len(filter) > 0 && !slices.Contains(filter, g.state)) {
			continue
		}
		resp.Groups = append(resp.Groups, kmsg.ListGroupsResponseGroup{
			Group:        g.name,
			ProtocolType: g.protocolType,
			GroupState:   g.state.String(),
		})
	}
	slices.SortFunc(resp.Groups, func(a, b kmsg.ListGroupsResponseGroup) int {
		switch {
		case a.Group < b.Group:
			return -1
		case a.Group > b.Group:
			return 1
		}
		return 0
	})
	return resp
}

// DescribeGroups answers a DescribeGroups request. An unknown group is described as Dead
// with no error, as Kafka does.
func (c *Coordinator) DescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp, ok := ask(ctx, c, func(reply func(*kmsg.DescribeGroupsResponse)) { reply(c.describeGroups(req)) })
	if !ok {
		resp = kmsg.NewPtrDescribeGroupsResponse()
		for _, name := range req.Groups {
			g := kmsg.NewDescribeGroupsResponseGroup()
			g.Group = name
			g.ErrorCode = kerr.NotCoordinator.Code
			resp.Groups = append(resp.Groups, g)
		}
	}
	resp.Version = req.Version
	return resp
}

// authorizedGroupOperations is READ, DELETE and DESCRIBE (bits 3, 6, 8): there are no
// ACLs, so a client may do all of them.
const authorizedGroupOperations = 1<<3 | 1<<6 | 1<<8

func (c *Coordinator) describeGroups(req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := kmsg.NewPtrDescribeGroupsResponse()
	for _, name := range req.Groups {
		out := kmsg.NewDescribeGroupsResponseGroup()
		out.Group = name
		if req.IncludeAuthorizedOperations {
			out.AuthorizedOperations = authorizedGroupOperations
		}
		if _, code := c.shardOf(name); code != 0 {
			out.ErrorCode = code
			resp.Groups = append(resp.Groups, out)
			continue
		}
		g := c.groups[name]
		if g == nil {
			out.State = Dead.String()
			resp.Groups = append(resp.Groups, out)
			continue
		}
		out.State = g.state.String()
		out.ProtocolType = g.protocolType
		if g.state == Stable {
			out.Protocol = g.protocol
		}
		for _, id := range g.order {
			m := g.members[id]
			dm := kmsg.DescribeGroupsResponseGroupMember{
				MemberID:   m.id,
				InstanceID: m.instanceID,
				ClientID:   m.clientID,
				ClientHost: m.clientHost,
			}
			if g.state == Stable {
				dm.ProtocolMetadata = m.metadataFor(g.protocol)
				dm.MemberAssignment = m.assignment
			}
			out.Members = append(out.Members, dm)
		}
		resp.Groups = append(resp.Groups, out)
	}
	return resp
}

// DeleteGroups answers a DeleteGroups request: each group that has no members loses its
// offsets and metadata (NON_EMPTY_GROUP otherwise), once the tombstones are durable.
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp, ok := ask(ctx, c, func(reply func(*kmsg.DeleteGroupsResponse)) { c.deleteGroups(req, reply) })
	if !ok {
		resp = kmsg.NewPtrDeleteGroupsResponse()
		for _, name := range req.Groups {
			resp.Groups = append(resp.Groups, kmsg.DeleteGroupsResponseGroup{Group: name, ErrorCode: kerr.NotCoordinator.Code})
		}
	}
	resp.Version = req.Version
	return resp
}

func (c *Coordinator) deleteGroups(req *kmsg.DeleteGroupsRequest, reply func(*kmsg.DeleteGroupsResponse)) {
	resp := kmsg.NewPtrDeleteGroupsResponse()
	resp.Groups = make([]kmsg.DeleteGroupsResponseGroup, len(req.Groups))
	waiting := 1 // released after the loop, so the reply waits for every append
	done := func() {
		waiting--
		if waiting == 0 {
			reply(resp)
		}
	}
	for i, name := range req.Groups {
		out := &resp.Groups[i]
		out.Group = name
		if name == "" {
			out.ErrorCode = kerr.InvalidGroupID.Code
			continue
		}
		if _, code := c.shardOf(name); code != 0 {
			out.ErrorCode = code
			continue
		}
		g := c.groups[name]
		switch {
		case g == nil || g.state == Dead:
			out.ErrorCode = kerr.GroupIDNotFound.Code
			continue
		case g.state != Empty || len(g.pending) > 0:
			out.ErrorCode = kerr.NonEmptyGroup.Code
			continue
		}
		var records []record
		for tp := range g.offsets {
			records = append(records, offsetTombstone(name, tp.topic, tp.partition))
		}
		records = append(records, groupTombstone(name))
		g.transition(Dead, c.cfg.Clock.Now())
		waiting++
		c.append(g, records, func(err error) {
			if c.groups[name] == g {
				if err != nil {
					g.transition(Empty, c.cfg.Clock.Now())
				} else {
					delete(c.groups, name)
				}
			}
			out.ErrorCode = appendErrorCode(err)
			done()
		})
	}
	done()
}
