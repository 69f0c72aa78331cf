package replication

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// Every node reports its disk in its controller heartbeat and the controller leader
// answers each heartbeat with all of them, so any node's Status says which node refuses
// writes for lack of space. A node whose heartbeat carries no disk (an older node) or
// that is no longer heard from shows zeros.
func TestStatusShowsEveryNodesDisk(t *testing.T) {
	const refusing = NodeID(2)
	c := newTestCluster(t, 3, func(cfg *ClusterConfig) {
		if cfg.NodeID == refusing {
			cfg.MinFreeBytes = 1 << 62
		}
	})
	wantMin := func(id NodeID) int64 {
		if id == refusing {
			return 1 << 62
		}
		return 1 << 30 // the default
	}

	// Each node's own disk, current.
	for _, n := range c.nodes {
		id := n.cfg.NodeID
		st := Status(id, n.ctrl, n.repl)
		if st.Disk == nil {
			t.Fatalf("node %d: no disk in its status", id)
		}
		if d := *st.Disk; d.FreeBytes <= 0 || d.MinFreeBytes != wantMin(id) || d.WritesRefused != (id == refusing) {
			t.Fatalf("node %d's own disk: %+v, want free > 0, min %d, refused %v", id, d, wantMin(id), id == refusing)
		}
	}

	// known says whether a node's row shows a reported disk, and checks it is the right one.
	known := func(t *testing.T, ns NodeStatus) bool {
		t.Helper()
		if reflect.DeepEqual(ns.Disk, DiskStatus{}) {
			return false
		}
		if d := ns.Disk; d.FreeBytes <= 0 || d.MinFreeBytes != wantMin(ns.ID) || d.WritesRefused != (ns.ID == refusing) {
			t.Fatalf("node %d's disk: %+v, want free > 0, min %d, refused %v", ns.ID, d, wantMin(ns.ID), ns.ID == refusing)
		}
		return true
	}
	// waitView waits until every running node's Status shows a reported disk exactly for
	// the nodes in want, and for itself (its own disk is always current).
	waitView := func(what string, want map[NodeID]bool) {
		t.Helper()
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			var last *ClusterStatus
			deadline := time.Now().Add(15 * time.Second)
			for {
				last = Status(n.cfg.NodeID, n.ctrl, n.repl)
				ok := len(last.Nodes) == 3
				for _, ns := range last.Nodes {
					ok = ok && known(t, ns) == (want[ns.ID] || ns.ID == n.cfg.NodeID)
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					b, _ := json.Marshal(last.Nodes)
					t.Fatalf("%s: node %d's view never showed it: %s", what, n.cfg.NodeID, b)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	waitView("every node's disk, node 2 refusing writes", map[NodeID]bool{1: true, 2: true, 3: true})

	// Node 3's heartbeats stop carrying its disk, as an older node's: zeros for it.
	n3 := c.nodes[2]
	fn := n3.ctrl.diskFn.Load()
	n3.ctrl.diskFn.Store(nil)
	waitView("a node that does not report its disk", map[NodeID]bool{1: true, 2: true})
	n3.ctrl.diskFn.Store(fn)
	waitView("the node reports its disk again", map[NodeID]bool{1: true, 2: true, 3: true})

	// A node no longer heard from: zeros for it once its last report is LivenessTimeout old.
	n3.close()
	c.nodes[2] = nil
	waitView("a stopped node", map[NodeID]bool{1: true, 2: true})
}

func TestSpaceGuardStatus(t *testing.T) {
	dir := t.TempDir()
	if st := (*spaceGuard)(nil).status(); !reflect.DeepEqual(st, DiskStatus{}) {
		t.Fatalf("no guard: %+v, want zeros", st)
	}
	if st := newSpaceGuard(dir, -1).status(); st.FreeBytes <= 0 || st.MinFreeBytes != 0 || st.WritesRefused {
		t.Fatalf("check off: %+v, want the free space, min 0, not refused", st)
	}
	if st := newSpaceGuard(dir, 1).status(); st.FreeBytes <= 0 || st.MinFreeBytes != 1 || st.WritesRefused {
		t.Fatalf("1 byte kept free: %+v", st)
	}
	g := newSpaceGuard(dir, 1<<62)
	if st := g.status(); st.FreeBytes <= 0 || st.MinFreeBytes != 1<<62 || !st.WritesRefused {
		t.Fatalf("4 EiB kept free: %+v, want refused", st)
	}
	// A directory never looked at: unknown, and not refused (check lets writes through).
	if st := newSpaceGuard(dir+"/missing", 1<<62).status(); !reflect.DeepEqual(st, DiskStatus{MinFreeBytes: 1 << 62}) {
		t.Fatalf("no look succeeded: %+v, want free 0, not refused", st)
	}
	// status looks again once the last look expired, without a write to make it look.
	now := time.Now()
	g.now = func() time.Time { return now }
	g.look(now)
	g.free.Store(5)
	if st := g.status(); st.FreeBytes != 5 || !st.WritesRefused {
		t.Fatalf("within the last look's lifetime: %+v, want the last look's 5 bytes", st)
	}
	g.min = 1
	if st := g.status(); st.FreeBytes != 5 || st.WritesRefused {
		t.Fatalf("5 bytes free, 1 kept free: %+v, want not refused", st)
	}
	now = now.Add(spaceCheckEvery)
	if st := g.status(); st.FreeBytes <= 5 {
		t.Fatalf("after the look expired: %+v, want a new look", st)
	}
}

// The single-node replicator reports its disk in Status, on this node and its row.
func TestLocalStatusShowsDisk(t *testing.T) {
	dir := t.TempDir()
	ctrl, err := OpenLocalController(dir, Node{ID: 7, KafkaAddr: "127.0.0.1:9092"})
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	for _, tc := range []struct {
		min     int64
		wantMin int64
		refused bool
	}{{1 << 62, 1 << 62, true}, {1, 1, false}, {-1, 0, false}} {
		r := NewLocalReplicator(LocalConfig{NodeID: 7, Dir: dir, MinFreeBytes: tc.min})
		st := Status(7, ctrl, r)
		r.Close()
		what := fmt.Sprintf("%d bytes kept free", tc.min)
		if st.Disk == nil || st.Disk.FreeBytes <= 0 || st.Disk.MinFreeBytes != tc.wantMin || st.Disk.WritesRefused != tc.refused {
			t.Fatalf("%s: this node's disk %+v, want free > 0, min %d, refused %v", what, st.Disk, tc.wantMin, tc.refused)
		}
		if len(st.Nodes) != 1 || !reflect.DeepEqual(st.Nodes[0].Disk, *st.Disk) {
			t.Fatalf("%s: nodes %+v, want node 7 with disk %+v", what, st.Nodes, *st.Disk)
		}
	}
	// Without a data directory there is nothing to look at.
	r := NewLocalReplicator(LocalConfig{NodeID: 7})
	defer r.Close()
	if st := Status(7, ctrl, r); st.Disk != nil || !reflect.DeepEqual(st.Nodes[0].Disk, DiskStatus{}) {
		t.Fatalf("no data directory: disk %+v, row %+v; want none", st.Disk, st.Nodes[0].Disk)
	}
}
