package replication

import (
	"slices"
	"sort"

	"github.com/hashicorp/raft"
)

// ClusterStatus is one node's view of the cluster for operators (the admin endpoint's
// GET /v1/cluster). Everything in it is a snapshot taken when it was built.
type ClusterStatus struct {
	NodeID     NodeID            `json:"node_id"`
	ClusterID  string            `json:"cluster_id"`
	Version    uint64            `json:"metadata_version"`
	Controller ControllerStatus  `json:"controller"`
	Nodes      []NodeStatus      `json:"nodes"`
	Groups     []GroupStatus     `json:"groups"`
	Partitions []PartitionStatus `json:"partitions"`
	// Disk is this node's data directory file system as its free-space check sees it
	// now; nil when the node has no data directory to look at.
	Disk *DiskStatus `json:"disk,omitempty"`
}

// ControllerStatus describes the controller group as this node sees it.
type ControllerStatus struct {
	Leader NodeID `json:"leader"` // -1 when unknown
	// The fields below are this node's Raft state in the controller group (empty on a
	// single node).
	Term         uint64 `json:"term,omitempty"`
	State        string `json:"state,omitempty"` // Leader, Follower, Candidate
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
}

// NodeStatus is one node of the cluster.
type NodeStatus struct {
	ID         NodeID `json:"node_id"`
	KafkaAddr  string `json:"kafka_addr"`
	RaftAddr   string `json:"raft_addr,omitempty"`
	Alive      bool   `json:"alive"`
	Controller bool   `json:"controller"`
	Leads      int    `json:"leads"` // partitions it leads
	// Removing: an operator asked to remove the node and its groups are moving off it.
	Removing bool `json:"removing,omitempty"`
	// Disk: the node's free space and whether it refuses writes for lack of it, as it
	// last told the controller leader in its heartbeat (this node's own is current).
	// Zeros when unknown: not heard from lately, or a node that does not report it.
	Disk DiskStatus `json:"disk"`
}

// GroupStatus is one data group.
type GroupStatus struct {
	Name    string   `json:"name"`
	Members []NodeID `json:"members"` // preferred leader first
	// While the group moves (a node is being removed): Joining are members that are
	// still copying the group's data, Removing the nodes it is moving off, which keep
	// their copy until the move is done.
	Joining  []NodeID `json:"joining,omitempty"`
	Removing []NodeID `json:"removing,omitempty"`
	Leader   NodeID   `json:"leader"` // -1 when unknown
	Term     uint64   `json:"term"`
	// Local is true when this node runs the group; the Raft fields below are then its own.
	Local        bool   `json:"local"`
	State        string `json:"state,omitempty"`
	Ready        bool   `json:"ready,omitempty"` // leader and barrier done: serving
	LastIndex    uint64 `json:"last_index,omitempty"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	Partitions   int    `json:"partitions"`
	// ApplyFailure: while a committed entry keeps failing to apply on this node (its
	// disk is full, a write failed), why; the entry is tried again until it applies, and
	// meanwhile the group refuses new entries if this node leads it. Empty when none.
	ApplyFailure string `json:"apply_failure,omitempty"`
}

// PartitionStatus is one partition and where it lives.
type PartitionStatus struct {
	Topic       string   `json:"topic"`
	Partition   int32    `json:"partition"`
	Group       string   `json:"group,omitempty"`
	Leader      NodeID   `json:"leader"`
	LeaderEpoch int32    `json:"leader_epoch"`
	Replicas    []NodeID `json:"replicas"`
	ISR         []NodeID `json:"isr"` // the live replicas
}

// groupReporter is implemented by replicators that run Raft groups.
type groupReporter interface {
	groupStatuses() []GroupStatus
}

// controllerReporter is implemented by controllers that run a Raft group.
type controllerReporter interface {
	controllerStatus() ControllerStatus
}

// diskReporter is implemented by replicators that check their disk's free space; ok is
// false when there is no data directory to look at.
type diskReporter interface {
	diskStatus() (st DiskStatus, ok bool)
}

// nodeDiskReporter is implemented by controllers that learn the other nodes' disks.
type nodeDiskReporter interface {
	nodeDisks() map[NodeID]DiskStatus
}

// Status builds self's view of the cluster from its controller and replicator (Raft or
// single-node).
func Status(self NodeID, ctrl Controller, repl Replicator) *ClusterStatus {
	st := ctrl.State()
	out := &ClusterStatus{
		NodeID:     self,
		ClusterID:  st.ClusterID,
		Version:    st.Version,
		Controller: ControllerStatus{Leader: st.ControllerID},
		Nodes:      []NodeStatus{},
		Groups:     []GroupStatus{},
		Partitions: []PartitionStatus{},
	}
	if cr, ok := ctrl.(controllerReporter); ok {
		out.Controller = cr.controllerStatus()
	}
	alive := map[NodeID]bool{}
	for _, n := range st.Nodes {
		alive[n.ID] = n.Alive
	}
	leads := map[NodeID]int{}
	groupParts := map[string]int{}
	names := make([]string, 0, len(st.Topics))
	for name := range st.Topics {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := st.Topics[name]
		for _, p := range t.Partitions {
			l := repl.Leadership(partitionKey(t.ID, p.Partition))
			ps := PartitionStatus{
				Topic: name, Partition: p.Partition, Group: p.Group,
				Leader: l.Leader, LeaderEpoch: l.Epoch,
				Replicas: slices.Clone(p.Replicas), ISR: []NodeID{},
			}
			if len(ps.Replicas) == 0 {
				ps.Replicas = []NodeID{self}
			}
			for _, r := range ps.Replicas {
				if alive[r] {
					ps.ISR = append(ps.ISR, r)
				}
			}
			if l.Leader >= 0 {
				leads[l.Leader]++
			}
			groupParts[p.Group]++
			out.Partitions = append(out.Partitions, ps)
		}
	}
	if dr, ok := repl.(diskReporter); ok {
		if d, ok := dr.diskStatus(); ok {
			out.Disk = &d
		}
	}
	var disks map[NodeID]DiskStatus
	if nr, ok := ctrl.(nodeDiskReporter); ok {
		disks = nr.nodeDisks()
	}
	for _, n := range st.Nodes {
		ns := NodeStatus{
			ID: n.ID, KafkaAddr: n.KafkaAddr, RaftAddr: n.RaftAddr, Alive: n.Alive,
			Controller: n.ID == out.Controller.Leader, Leads: leads[n.ID], Removing: n.Removing,
			Disk: disks[n.ID],
		}
		if n.ID == self && out.Disk != nil {
			ns.Disk = *out.Disk
		}
		out.Nodes = append(out.Nodes, ns)
	}
	if gr, ok := repl.(groupReporter); ok {
		out.Groups = gr.groupStatuses()
		for i := range out.Groups {
			out.Groups[i].Partitions = groupParts[out.Groups[i].Name]
		}
	}
	return out
}

func (c *RaftController) controllerStatus() ControllerStatus {
	leader, _ := c.Leader()
	return ControllerStatus{
		Leader:       leader,
		Term:         c.raft.CurrentTerm(),
		State:        c.raft.State().String(),
		CommitIndex:  c.raft.CommitIndex(),
		AppliedIndex: c.raft.AppliedIndex(),
	}
}

func (r *RaftReplicator) groupStatuses() []GroupStatus {
	known := r.ctrl.Groups()
	leaders := r.ctrl.GroupLeaders()
	r.mu.Lock()
	running := make(map[string]*dataGroup, len(r.groups))
	for name, g := range r.groups {
		running[name] = g
	}
	r.mu.Unlock()
	out := make([]GroupStatus, 0, len(known))
	for name, dg := range known {
		gs := GroupStatus{Name: name, Members: slices.Clone(dg.Members), Leader: -1,
			Joining: slices.Clone(dg.Joining), Removing: slices.Clone(dg.Removing)}
		if g, ok := running[name]; ok {
			l := g.leadership()
			gs.Leader, gs.Term, gs.Local = l.Leader, g.raft.CurrentTerm(), true
			gs.State = g.raft.State().String()
			gs.Ready = g.raft.State() == raft.Leader && g.ready()
			gs.LastIndex = g.raft.LastIndex()
			gs.CommitIndex = g.raft.CommitIndex()
			gs.AppliedIndex = g.appliedIndex()
			if err := g.fsm.applyFailure(); err != nil {
				gs.ApplyFailure = err.Error()
			}
		} else if gl, ok := leaders[name]; ok {
			gs.Leader, gs.Term = gl.Leader, gl.Term
		}
		out = append(out, gs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *RaftReplicator) diskStatus() (DiskStatus, bool) {
	st := r.space.status()
	r.mu.Lock()
	for name, g := range r.groups {
		if g.fsm.applyFailure() != nil {
			st.ApplyFailing = append(st.ApplyFailing, name)
		}
	}
	r.mu.Unlock()
	sort.Strings(st.ApplyFailing)
	return st, r.space != nil
}
