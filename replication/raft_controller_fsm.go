package replication

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// DataGroup is a data Raft group as the controller knows it.
type DataGroup struct {
	Name string
	// Members are the nodes in the group, the preferred leader first. They change when a
	// node is removed from the cluster or the groups are rebalanced.
	Members []NodeID
	// ReplicationFactor is len(Members); partitions of topics with this factor go here.
	ReplicationFactor int
	// Generation counts the moves of the group (raft_membership.go); a member joins a
	// group of generation 0 by bootstrapping it with Members, any later one by being
	// added by its leader.
	Generation int `json:",omitempty"`
	// Joining are Members still copying the group's data; Removing are former members
	// that keep their copy until the group's Raft configuration is Members.
	Joining  []NodeID `json:",omitempty"`
	Removing []NodeID `json:",omitempty"`
}

// GroupLeader is the leader of a data group as last reported to the controller.
type GroupLeader struct {
	Leader NodeID
	Term   uint64
}

// ctrlData is the controller FSM's state, as stored in its snapshots.
type ctrlData struct {
	Version        uint64
	ClusterID      string
	Nodes          map[NodeID]*Node
	Topics         map[string]*Topic
	Groups         map[string]*DataGroup
	GroupLeaders   map[string]GroupLeader
	NextProducerID int64
	// Applied is the index of the last command applied (in snapshots only; see
	// ctrlFSM.applied).
	Applied uint64 `json:",omitempty"`
}

// ctrlCommand is one controller log entry (JSON). The leader prepares everything that is
// not deterministic (topic IDs, placement); Apply only validates against the state and
// applies, so every replica ends in the same state.
type ctrlCommand struct {
	Op string `json:"op"`

	ClusterID  string                 `json:"cluster_id,omitempty"`
	Node       *Node                  `json:"node,omitempty"`
	Alive      map[NodeID]bool        `json:"alive,omitempty"`
	Topic      *Topic                 `json:"topic,omitempty"`
	Name       string                 `json:"name,omitempty"`
	Partitions []PartitionAssignment  `json:"partitions,omitempty"`
	NewGroups  []*DataGroup           `json:"new_groups,omitempty"`
	Configs    map[string]*string     `json:"configs,omitempty"`
	Count      int64                  `json:"count,omitempty"`
	Leaders    map[string]GroupLeader `json:"leaders,omitempty"`
	// Moves are the new members of the groups a removed node leaves (remove_node) or
	// that a rebalance moves (move_groups).
	Moves map[string][]NodeID `json:"moves,omitempty"`
	// Group and Generation name one move (caught_up, group_moved); NodeID the node.
	Group      string `json:"group,omitempty"`
	Generation int    `json:"generation,omitempty"`
	NodeID     NodeID `json:"node_id,omitempty"`
}

const (
	opInit             = "init"
	opNode             = "node"
	opAlive            = "alive"
	opCreateTopic      = "create_topic"
	opDeleteTopic      = "delete_topic"
	opCreatePartitions = "create_partitions"
	opAlterConfigs     = "alter_configs"
	opAllocPIDs        = "alloc_pids"
	opGroupLeaders     = "group_leaders"
	opRemoveNode       = "remove_node"
	opMoveGroups       = "move_groups"
	opCaughtUp         = "caught_up"
	opGroupMoved       = "group_moved"
	opForgetNode       = "forget_node"
)

// ctrlResult is what Apply returns to the leader's caller.
type ctrlResult struct {
	Err   error
	Value int64
	Topic *Topic
}

// ctrlFSM is the controller group's state machine. Apply runs on raft's FSM goroutine;
// readers take the published view with view().
type ctrlFSM struct {
	mu       sync.Mutex // guards data and published; held only in memory
	data     *ctrlData
	onChange func(*ctrlData) // called after each change, under mu; must not block
	// applied is the index of the last command this FSM has applied. raft's own
	// AppliedIndex runs ahead of the FSM (it counts entries handed to it).
	applied atomic.Uint64
}

func newCtrlFSM(onChange func(*ctrlData)) *ctrlFSM {
	return &ctrlFSM{data: emptyCtrlData(), onChange: onChange}
}

func emptyCtrlData() *ctrlData {
	return &ctrlData{
		Nodes:  map[NodeID]*Node{},
		Topics: map[string]*Topic{},
		Groups: map[string]*DataGroup{},

		GroupLeaders: map[string]GroupLeader{},
	}
}

// view returns the current state. It is immutable: Apply replaces, never modifies.
func (f *ctrlFSM) view() *ctrlData {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.data
}

func (f *ctrlFSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	var cmd ctrlCommand
	if err := json.Unmarshal(l.Data, &cmd); err != nil {
		f.applied.Store(l.Index)
		return &ctrlResult{Err: fmt.Errorf("controller: decode command at %d: %w: %v", l.Index, ErrInvalid, err)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	next, res := applyCtrl(f.data, &cmd)
	if next != nil {
		next.Version = l.Index
		f.data = next
		if f.onChange != nil {
			f.onChange(next)
		}
	}
	f.applied.Store(l.Index)
	return res
}

// applyCtrl applies cmd to d and returns the new state (nil when nothing changed). d is not
// modified.
func applyCtrl(d *ctrlData, cmd *ctrlCommand) (*ctrlData, *ctrlResult) {
	next := *d
	switch cmd.Op {
	case opInit:
		if d.ClusterID != "" || cmd.ClusterID == "" {
			return nil, &ctrlResult{}
		}
		next.ClusterID = cmd.ClusterID
	case opNode:
		if cmd.Node == nil || cmd.Node.ID < 0 {
			return nil, &ctrlResult{Err: fmt.Errorf("controller: register node: %w", ErrInvalid)}
		}
		n := *cmd.Node
		old, ok := d.Nodes[n.ID]
		if ok {
			n.Removing = old.Removing // only remove_node sets it
		}
		if ok && *old == n {
			return nil, &ctrlResult{}
		}
		next.Nodes = maps.Clone(d.Nodes)
		next.Nodes[n.ID] = &n
	case opAlive:
		next.Nodes = maps.Clone(d.Nodes)
		changed := false
		for id, alive := range cmd.Alive {
			old, ok := d.Nodes[id]
			if !ok || old.Alive == alive {
				continue
			}
			n := *old
			n.Alive = alive
			next.Nodes[id] = &n
			changed = true
		}
		if !changed {
			return nil, &ctrlResult{}
		}
	case opCreateTopic:
		t := cmd.Topic
		if t == nil || validTopicName(t.Name) != nil || len(t.Partitions) == 0 {
			return nil, &ctrlResult{Err: fmt.Errorf("controller: create topic: %w", ErrInvalid)}
		}
		if _, ok := d.Topics[t.Name]; ok {
			return nil, &ctrlResult{Err: fmt.Errorf("controller: create topic %q: %w", t.Name, ErrTopicExists)}
		}
		next.Topics = maps.Clone(d.Topics)
		next.Topics[t.Name] = t
		next.Groups = addGroups(d.Groups, cmd.NewGroups)
		return &next, &ctrlResult{Topic: t}
	case opDeleteTopic:
		if _, ok := d.Topics[cmd.Name]; !ok {
			return nil, &ctrlResult{Err: fmt.Errorf("controller: delete topic %q: %w", cmd.Name, ErrUnknownTopic)}
		}
		next.Topics = maps.Clone(d.Topics)
		delete(next.Topics, cmd.Name)
	case opCreatePartitions:
		old, ok := d.Topics[cmd.Name]
		if !ok {
			return nil, &ctrlResult{Err: fmt.Errorf("controller: create partitions %q: %w", cmd.Name, ErrUnknownTopic)}
		}
		// The leader placed the partitions after the ones it saw; anything else raced.
		for i, p := range cmd.Partitions {
			if p.Partition != int32(len(old.Partitions)+i) {
				return nil, &ctrlResult{Err: fmt.Errorf("controller: create partitions %q: %w: partition count changed meanwhile", cmd.Name, ErrInvalid)}
			}
		}
		t := *old
		t.Partitions = append(slices.Clone(old.Partitions), cmd.Partitions...)
		next.Topics = maps.Clone(d.Topics)
		next.Topics[t.Name] = &t
		next.Groups = addGroups(d.Groups, cmd.NewGroups)
	case opAlterConfigs:
		old, ok := d.Topics[cmd.Name]
		if !ok {
			return nil, &ctrlResult{Err: fmt.Errorf("controller: alter configs %q: %w", cmd.Name, ErrUnknownTopic)}
		}
		t := *old
		t.Configs = maps.Clone(old.Configs)
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		for k, v := range cmd.Configs {
			if v == nil {
				delete(t.Configs, k)
			} else {
				t.Configs[k] = *v
			}
		}
		next.Topics = maps.Clone(d.Topics)
		next.Topics[t.Name] = &t
	case opAllocPIDs:
		if cmd.Count <= 0 {
			return nil, &ctrlResult{Err: fmt.Errorf("controller: allocate producer IDs: %w", ErrInvalid)}
		}
		first := d.NextProducerID
		next.NextProducerID += cmd.Count
		return &next, &ctrlResult{Value: first}
	case opGroupLeaders:
		changed := false
		for g, l := range cmd.Leaders {
			if old, ok := d.GroupLeaders[g]; ok && old.Term >= l.Term {
				continue
			}
			if !changed {
				next.GroupLeaders = maps.Clone(d.GroupLeaders)
				if next.GroupLeaders == nil {
					next.GroupLeaders = map[string]GroupLeader{}
				}
				changed = true
			}
			next.GroupLeaders[g] = l
		}
		if !changed {
			return nil, &ctrlResult{}
		}
	case opRemoveNode, opMoveGroups, opCaughtUp, opGroupMoved, opForgetNode:
		return applyMembership(d, cmd)
	default:
		return nil, &ctrlResult{Err: fmt.Errorf("controller: unknown command %q: %w", cmd.Op, ErrInvalid)}
	}
	return &next, &ctrlResult{}
}

func addGroups(old map[string]*DataGroup, add []*DataGroup) map[string]*DataGroup {
	if len(add) == 0 {
		return old
	}
	m := maps.Clone(old)
	for _, g := range add {
		if _, ok := m[g.Name]; !ok {
			m[g.Name] = g
		}
	}
	return m
}

func (f *ctrlFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	d := *f.data
	d.Applied = f.applied.Load()
	f.mu.Unlock()
	b, err := json.Marshal(&d)
	if err != nil {
		return nil, fmt.Errorf("controller snapshot: %w", err)
	}
	return bytesSnapshot(b), nil
}

func (f *ctrlFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	d := emptyCtrlData()
	if err := json.NewDecoder(rc).Decode(d); err != nil {
		return fmt.Errorf("controller restore: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = d
	f.applied.Store(d.Applied)
	if f.onChange != nil {
		f.onChange(d)
	}
	return nil
}

// bytesSnapshot is an FSMSnapshot of bytes taken in Snapshot.
type bytesSnapshot []byte

func (s bytesSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s bytesSnapshot) Release() {}

// validTopicName applies Kafka's rules: 1-249 characters of [a-zA-Z0-9._-], not "." or "..".
func validTopicName(name string) error {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return fmt.Errorf("topic name %q: %w", name, ErrInvalid)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q: %w: character %q", name, ErrInvalid, c)
		}
	}
	return nil
}

// clusterState builds the public view of d.
func (d *ctrlData) clusterState(controller NodeID) *ClusterState {
	st := &ClusterState{
		Version:      d.Version,
		ClusterID:    d.ClusterID,
		ControllerID: controller,
		Topics:       d.Topics,
	}
	for _, n := range d.Nodes {
		st.Nodes = append(st.Nodes, *n)
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].ID < st.Nodes[j].ID })
	return st
}

// sentinelCodes name the errors that cross the forwarding RPC.
var sentinelCodes = map[string]error{
	"not_leader":                     ErrNotLeader,
	"unknown_key":                    ErrUnknownKey,
	"outcome_unknown":                ErrOutcomeUnknown,
	"topic_exists":                   ErrTopicExists,
	"unknown_topic":                  ErrUnknownTopic,
	"invalid":                        ErrInvalid,
	"not_enough_nodes":               ErrNotEnoughNodes,
	"unknown_node":                   ErrUnknownNode,
	"transport_closed":               ErrTransportClosed,
	"controller_closed":              ErrControllerClosed,
	"election_not_needed":            ErrElectionNotNeeded,
	"preferred_leader_not_available": ErrPreferredLeaderNotAvailable,
}

func errorCode(err error) string {
	for code, s := range sentinelCodes {
		if errors.Is(err, s) {
			return code
		}
	}
	return ""
}
