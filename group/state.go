package group

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// State is a group's state, named as Kafka names it in DescribeGroups and ListGroups.
type State int8

// The states of a group.
const (
	// Empty: no members; the group may still have committed offsets.
	Empty State = iota
	// PreparingRebalance: waiting for the members to rejoin.
	PreparingRebalance
	// CompletingRebalance: the members have joined; waiting for the leader's assignment.
	CompletingRebalance
	// Stable: every member has its assignment and heartbeats.
	Stable
	// Dead: the group was deleted or moved away; it is about to disappear.
	Dead
)

var stateNames = [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}

func (s State) String() string { return stateNames[s] }

// parseState reads a state name, ignoring case, as ListGroups' filter does.
func parseState(name string) (State, bool) {
	for i, n := range stateNames {
		if strings.EqualFold(n, name) {
			return State(i), true
		}
	}
	return 0, false
}

// protocol is one assignment protocol a member supports, with its metadata.
type protocol struct {
	name     string
	metadata []byte
}

// member is one member of a group.
type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	protocolType     string
	protocols        []protocol // in the member's order of preference
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	assignment       []byte

	// isNew is true from a member's first join until its first join answer.
	isNew bool
	// joinVersion is the version of the pending JoinGroup, to shape its answer.
	joinVersion int16
	// join and sync answer the member's waiting JoinGroup and SyncGroup; nil when none
	// waits.
	join func(*kmsg.JoinGroupResponse)
	sync func(*kmsg.SyncGroupResponse)

	// lastHeartbeat is when the member last showed it is alive; heartbeat fires the
	// session timeout check, and heartbeatToken tells the current timer from stale ones.
	lastHeartbeat  time.Time
	heartbeat      Timer
	heartbeatToken uint64
}

func (m *member) metadataFor(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

func (m *member) supports(name string) bool {
	return slices.ContainsFunc(m.protocols, func(p protocol) bool { return p.name == name })
}

func sameProtocols(a, b []protocol) bool {
	return slices.EqualFunc(a, b, func(x, y protocol) bool {
		return x.name == y.name && bytes.Equal(x.metadata, y.metadata)
	})
}

// offsetEntry is one committed offset.
type offsetEntry struct {
	offset          int64
	leaderEpoch     int32
	metadata        string
	commitTimestamp int64 // milliseconds
}

type topicPartition struct {
	topic     string
	partition int32
}

// group is one consumer group. It is owned by the coordinator's run goroutine.
type group struct {
	name         string
	shard        int32 // the __consumer_offsets partition holding it
	state        State
	stateTime    time.Time // when state last changed
	protocolType string    // "" until the first member joins (or for commit-only groups)
	protocol     string    // the chosen protocol of the current generation
	generation   int32
	leader       string // member ID of the leader, "" when none

	members map[string]*member
	order   []string // member IDs in join order: the first joined leads
	// static maps group.instance.id to the member ID that holds it.
	static map[string]string
	// pending holds member IDs handed out with MEMBER_ID_REQUIRED and not yet used.
	pending map[string]Timer

	offsets map[topicPartition]offsetEntry
	// writes counts appends in flight for this group; a group is not forgotten while any is.
	writes int

	rebalance Timer // fires the end of the join phase
	// rebalanceToken tells a stale rebalance timer from the current one.
	rebalanceToken uint64
	// delaying is true during the initial rebalance delay of a group that was empty.
	delaying bool
}

func newGroup(name string, shard int32, now time.Time) *group {
	return &group{
		name:      name,
		shard:     shard,
		state:     Empty,
		stateTime: now,
		members:   make(map[string]*member),
		static:    make(map[string]string),
		pending:   make(map[string]Timer),
		offsets:   make(map[topicPartition]offsetEntry),
	}
}

func (g *group) transition(s State, now time.Time) {
	g.state = s
	g.stateTime = now
}

func (g *group) addMember(m *member) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	g.members[m.id] = m
	g.order = append(g.order, m.id)
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	if g.leader == "" {
		g.leader = m.id
	}
}

func (g *group) removeMember(id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	if m.heartbeat != nil {
		m.heartbeat.Stop()
	}
	delete(g.members, id)
	g.order = slices.DeleteFunc(g.order, func(s string) bool { return s == id })
	if m.instanceID != nil && g.static[*m.instanceID] == id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == id {
		g.leader = ""
		if len(g.order) > 0 {
			g.leader = g.order[0]
		}
	}
}

// replaceMember gives the static member old a new member ID.
func (g *group) replaceMember(old *member, newID string) {
	delete(g.members, old.id)
	i := slices.Index(g.order, old.id)
	g.order[i] = newID
	if g.leader == old.id {
		g.leader = newID
	}
	old.id = newID
	g.members[newID] = old
	g.static[*old.instanceID] = newID
}

// candidates returns the protocols every member supports, in the order the first member
// prefers them.
func (g *group) candidates() []string {
	if len(g.order) == 0 {
		return nil
	}
	var out []string
	for _, p := range g.members[g.order[0]].protocols {
		all := true
		for _, m := range g.members {
			if !m.supports(p.name) {
				all = false
				break
			}
		}
		if all {
			out = append(out, p.name)
		}
	}
	return out
}

// supports reports whether a member with these protocols may join: in an empty group
// anything non-empty does; otherwise the protocol type must match and at least one of its
// protocols must be supported by every member.
func (g *group) supports(protocolType string, protocols []protocol) bool {
	if len(g.members) == 0 {
		return protocolType != "" && len(protocols) > 0
	}
	if protocolType != g.protocolType {
		return false
	}
	cands := g.candidates()
	return slices.ContainsFunc(protocols, func(p protocol) bool { return slices.Contains(cands, p.name) })
}

// selectProtocol picks the protocol of the next generation as Kafka does: among the
// protocols every member supports, each member votes for the one it prefers most, and the
// one with the most votes wins (ties go to the first member's preference).
func (g *group) selectProtocol() string {
	cands := g.candidates()
	if len(cands) == 0 {
		return ""
	}
	votes := make(map[string]int, len(cands))
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(cands, p.name) {
				votes[p.name]++
				break
			}
		}
	}
	best := cands[0]
	for _, c := range cands[1:] {
		if votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

// allJoined reports whether every member has a join waiting and no member ID handed out
// with MEMBER_ID_REQUIRED is still to come back.
func (g *group) allJoined() bool {
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return len(g.pending) == 0
}

// rebalanceTimeout is the longest rebalance timeout of the members.
func (g *group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// subscribedTopics returns the topics a "consumer" group's members subscribe to, and false
// when that cannot be known (another protocol type, or metadata that does not decode).
func (g *group) subscribedTopics() (map[string]bool, bool) {
	if g.protocolType != "consumer" || g.protocol == "" {
		return nil, false
	}
	topics := make(map[string]bool)
	for _, m := range g.members {
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			return nil, false
		}
		for _, t := range meta.Topics {
			topics[t] = true
		}
	}
	return topics, true
}

// metadataValue is the group's GroupMetadataValue record as of now. Assignments come from
// assignments when it is not nil, from the members otherwise.
func (g *group) metadataValue(now time.Time, assignments map[string][]byte) *kmsg.GroupMetadataValue {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		p := g.protocol
		v.Protocol = &p
	}
	if g.leader != "" {
		l := g.leader
		v.Leader = &l
	}
	v.CurrentStateTimestamp = now.UnixMilli()
	for _, id := range g.order {
		m := g.members[id]
		assignment := m.assignment
		if assignments != nil {
			assignment = assignments[id]
			if assignment == nil {
				assignment = []byte{}
			}
		}
		v.Members = append(v.Members, kmsg.GroupMetadataValueMember{
			MemberID:               m.id,
			InstanceID:             m.instanceID,
			ClientID:               m.clientID,
			ClientHost:             m.clientHost,
			RebalanceTimeoutMillis: int32(m.rebalanceTimeout.Milliseconds()),
			SessionTimeoutMillis:   int32(m.sessionTimeout.Milliseconds()),
			Subscription:           m.metadataFor(g.protocol),
			Assignment:             assignment,
		})
	}
	return &v
}
