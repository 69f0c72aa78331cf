package replication

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// fileSM is a small partition-like state machine for tests: entries appended to a file
// (length-prefixed, no fsync on Apply), offsets dense from 0. Snapshot is the next offset;
// Restore truncates the file back to it.
type fileSM struct {
	mu        sync.Mutex
	path      string
	f         *os.File
	positions []int64 // file position of each entry
	size      int64
	committed uint64
	terms     []uint64
	caughtUp  int // WriteData calls
	// failApply makes this many next Applies fail as a full disk would: nothing written,
	// a result that says the failure is the replica's own.
	failApply int
}

// localFailure is the result of an Apply that failed for the replica's own reason.
type localFailure struct{ err error }

func (f localFailure) ApplyFailed() error { return f.err }

func openFileSM(t testing.TB, path string) *fileSM {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	sm := &fileSM{path: path, f: f}
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	for pos := 0; pos+4 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[pos:]))
		if pos+4+n > len(data) {
			break
		}
		sm.positions = append(sm.positions, int64(pos))
		pos += 4 + n
		sm.size = int64(pos)
	}
	return sm
}

func (s *fileSM) Apply(index, term uint64, entry []byte) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failApply > 0 {
		s.failApply--
		return localFailure{fmt.Errorf("apply %d: %w", index, syscall.ENOSPC)}
	}
	buf := binary.BigEndian.AppendUint32(nil, uint32(len(entry)))
	buf = append(buf, entry...)
	if _, err := s.f.WriteAt(buf, s.size); err != nil {
		return err
	}
	off := int64(len(s.positions))
	s.positions = append(s.positions, s.size)
	s.size += int64(len(buf))
	s.terms = append(s.terms, term)
	return off
}

func (s *fileSM) Commit(index uint64) {
	s.mu.Lock()
	s.committed = index
	s.mu.Unlock()
}

func (s *fileSM) Sync() error { return s.f.Sync() }

func (s *fileSM) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return binary.BigEndian.AppendUint64(nil, uint64(len(s.positions))), nil
}

func (s *fileSM) Restore(snap []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	if snap != nil {
		if len(snap) != 8 {
			return fmt.Errorf("bad snapshot %x", snap)
		}
		n = binary.BigEndian.Uint64(snap)
	}
	if n > uint64(len(s.positions)) {
		return fmt.Errorf("snapshot at %d, have %d entries", n, len(s.positions))
	}
	if n < uint64(len(s.positions)) {
		s.size = s.positions[n]
		s.positions = s.positions[:n]
		if err := s.f.Truncate(s.size); err != nil {
			return err
		}
	}
	return nil
}

// fileSM is a DataStateMachine: positions are entry numbers.

func (s *fileSM) SnapshotEnd(snap []byte) (int64, error) {
	if snap == nil {
		return 0, nil
	}
	if len(snap) != 8 {
		return 0, fmt.Errorf("bad snapshot %x", snap)
	}
	return int64(binary.BigEndian.Uint64(snap)), nil
}

func (s *fileSM) DataBounds() (int64, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return 0, int64(len(s.positions))
}

func (s *fileSM) ReadData(pos, upTo int64, maxBytes int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pos >= int64(len(s.positions)) || pos >= upTo {
		return nil, nil
	}
	end := min(upTo, int64(len(s.positions)))
	var out []byte
	for i := pos; i < end && (len(out) == 0 || len(out) < maxBytes); i++ {
		to := s.size
		if i+1 < int64(len(s.positions)) {
			to = s.positions[i+1]
		}
		b := make([]byte, to-s.positions[i])
		if _, err := s.f.ReadAt(b, s.positions[i]); err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

func (s *fileSM) WriteData(pos int64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pos != int64(len(s.positions)) {
		return fmt.Errorf("write data at %d, end is %d", pos, len(s.positions))
	}
	if _, err := s.f.WriteAt(data, s.size); err != nil {
		return err
	}
	for p := 0; p+4 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[p:]))
		s.positions = append(s.positions, s.size+int64(p))
		s.terms = append(s.terms, 0)
		p += 4 + n
	}
	s.size += int64(len(data))
	s.caughtUp++
	return nil
}

func (s *fileSM) entries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.positions))
	for i, pos := range s.positions {
		end := s.size
		if i+1 < len(s.positions) {
			end = s.positions[i+1]
		}
		b := make([]byte, end-pos)
		s.f.ReadAt(b, pos)
		out = append(out, string(b[4:]))
	}
	return out
}

func (s *fileSM) close() { s.f.Close() }

// testNode is an in-process cluster node: mux, controller, replicator, and a tiny
// partition manager registering a fileSM for every partition placed on the node.
type testNode struct {
	t    testing.TB
	cfg  ClusterConfig
	mux  *Mux
	ctrl *RaftController
	repl *RaftReplicator

	mu   sync.Mutex
	sms  map[string]*fileSM
	stop chan struct{}
	done chan struct{}
}

func startTestNode(t testing.TB, cfg ClusterConfig) *testNode {
	t.Helper()
	n := &testNode{t: t, cfg: cfg, sms: map[string]*fileSM{}, stop: make(chan struct{}), done: make(chan struct{})}
	cn := startCtrlNode(t, cfg)
	n.mux, n.ctrl = cn.mux, cn.ctrl
	repl, err := NewRaftReplicator(cfg, n.mux, n.ctrl)
	if err != nil {
		t.Fatal(err)
	}
	n.repl = repl
	go n.manage()
	return n
}

func (n *testNode) manage() {
	defer close(n.done)
	for {
		ch := n.ctrl.Changed()
		st := n.ctrl.State()
		for _, topic := range st.Topics {
			for _, p := range topic.Partitions {
				key := partitionKey(topic.ID, p.Partition)
				mine := false
				for _, r := range p.Replicas {
					mine = mine || r == n.cfg.NodeID
				}
				n.mu.Lock()
				_, have := n.sms[key]
				n.mu.Unlock()
				if !mine || have {
					continue
				}
				dir := filepath.Join(n.cfg.Dir, "sm")
				os.MkdirAll(dir, 0o755)
				sm := openFileSM(n.t, filepath.Join(dir, fmt.Sprintf("%x-%d", topic.ID[:4], p.Partition)))
				if err := n.repl.Register(key, sm); err != nil {
					n.t.Errorf("node %d register %s: %v", n.cfg.NodeID, key, err)
					sm.close()
					continue
				}
				n.mu.Lock()
				n.sms[key] = sm
				n.mu.Unlock()
			}
		}
		select {
		case <-n.stop:
			return
		case <-ch:
		}
	}
}

func (n *testNode) sm(key string) *fileSM {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sms[key]
}

func (n *testNode) close() {
	close(n.stop)
	<-n.done
	n.repl.Close()
	n.ctrl.Close()
	n.mux.Close()
	n.mu.Lock()
	for _, sm := range n.sms {
		sm.close()
	}
	n.mu.Unlock()
}

type testCluster struct {
	t     testing.TB
	cfgs  []ClusterConfig
	nodes []*testNode
}

func newTestCluster(t testing.TB, n int, tweak func(*ClusterConfig)) *testCluster {
	c := &testCluster{t: t, cfgs: testClusterConfigs(t, n)}
	for i := range c.cfgs {
		if tweak != nil {
			tweak(&c.cfgs[i])
		}
	}
	c.nodes = make([]*testNode, n)
	for i := range c.cfgs {
		c.nodes[i] = startTestNode(t, c.cfgs[i])
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n != nil {
				n.close()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range c.nodes {
		if err := n.ctrl.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *testCluster) any() *testNode {
	for _, n := range c.nodes {
		if n != nil {
			return n
		}
	}
	return nil
}

// leaderOf waits until some running node leads key and is ready, and returns it.
func (c *testCluster) leaderOf(key string, timeout time.Duration) *testNode {
	c.t.Helper()
	var leader *testNode
	waitFor(c.t, timeout, "a ready leader for "+key, func() bool {
		for _, n := range c.nodes {
			if n != nil && n.repl.Leadership(key).Local {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// produce replicates value to key at its leader, following leadership changes.
func (c *testCluster) produce(key, value string) int64 {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		leader := c.leaderOf(key, 20*time.Second)
		res, err := leader.repl.Replicate(context.Background(), key, []byte(value))
		if err == nil {
			off, ok := res.(int64)
			if !ok {
				c.t.Fatalf("replicate %s result %#v", key, res)
			}
			return off
		}
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			c.t.Fatalf("replicate %s=%s: %v", key, value, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *testCluster) createTopic(name string, partitions int32) []string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic, err := c.any().ctrl.CreateTopic(ctx, TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: -1})
	if err != nil {
		c.t.Fatal(err)
	}
	var keys []string
	for _, p := range topic.Partitions {
		keys = append(keys, partitionKey(topic.ID, p.Partition))
	}
	return keys
}

// converge waits until every running replica of key holds exactly want.
func (c *testCluster) converge(key string, want []string) {
	c.t.Helper()
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		waitFor(c.t, 20*time.Second, fmt.Sprintf("node %d holds %d entries of %s", n.cfg.NodeID, len(want), key), func() bool {
			sm := n.sm(key)
			if sm == nil {
				return false
			}
			got := sm.entries()
			if len(got) > len(want) {
				c.t.Fatalf("node %d %s has %d entries, more than the %d written: %q", n.cfg.NodeID, key, len(got), len(want), got)
			}
			if len(got) < len(want) {
				return false
			}
			for i := range got {
				if got[i] != want[i] {
					c.t.Fatalf("node %d %s entry %d = %q, want %q", n.cfg.NodeID, key, i, got[i], want[i])
				}
			}
			return true
		})
	}
}

func TestRaftReplicatorReplicates(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	keys := c.createTopic("orders", 6)
	want := map[string][]string{}
	for i := range 30 {
		key := keys[i%len(keys)]
		v := fmt.Sprintf("v%d", i)
		off := c.produce(key, v)
		if off != int64(len(want[key])) {
			t.Fatalf("%s: offset %d, want %d", key, off, len(want[key]))
		}
		want[key] = append(want[key], v)
	}
	for _, key := range keys {
		c.converge(key, want[key])
	}
	// Leadership: every node agrees on each key's leader and epoch; followers refuse.
	for _, key := range keys {
		leader := c.leaderOf(key, 10*time.Second)
		l := leader.repl.Leadership(key)
		for _, n := range c.nodes {
			waitFor(t, 5*time.Second, "followers agree on the leader", func() bool {
				nl := n.repl.Leadership(key)
				return nl.Leader == l.Leader && nl.Epoch == l.Epoch
			})
			if n != leader {
				if _, err := n.repl.Replicate(context.Background(), key, []byte("x")); !errors.Is(err, ErrNotLeader) {
					t.Fatalf("replicate at follower %d: %v, want ErrNotLeader", n.cfg.NodeID, err)
				}
			}
		}
	}
	if _, err := c.any().repl.Replicate(context.Background(), "nope/0", []byte("x")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	// Leadership spreads: the preferred leaders take over, one group per node.
	waitFor(t, 30*time.Second, "leaders spread over the three nodes", func() bool {
		leaders := map[NodeID]bool{}
		for _, key := range keys {
			leaders[c.any().repl.Leadership(key).Leader] = true
		}
		return len(leaders) == 3
	})
	// Group leaders reach the controller, so every node can answer for any group.
	st := c.any().ctrl.GroupLeaders()
	waitFor(t, 10*time.Second, "group leaders in the metadata", func() bool {
		st = c.any().ctrl.GroupLeaders()
		return len(st) == 3
	})
}

func TestRaftReplicatorFailoverAndCatchUp(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	keys := c.createTopic("events", 3)
	want := map[string][]string{}
	write := func(n int, tag string) {
		for i := range n {
			key := keys[i%len(keys)]
			v := fmt.Sprintf("%s-%d", tag, i)
			c.produce(key, v)
			want[key] = append(want[key], v)
		}
	}
	write(15, "a")
	// Stop the leader of the first key: a new leader takes over, writes continue.
	victim := c.leaderOf(keys[0], 10*time.Second)
	vid := victim.cfg.NodeID
	victim.close()
	c.nodes[vid-1] = nil
	write(15, "b")
	for _, key := range keys {
		c.converge(key, want[key])
	}
	// The stopped node comes back with its data and catches up.
	c.nodes[vid-1] = startTestNode(t, c.cfgs[vid-1])
	write(6, "c")
	for _, key := range keys {
		c.converge(key, want[key])
	}
}

func TestRaftReplicatorSnapshotRestart(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *ClusterConfig) {
		cfg.TrailingLogs = 4
	})
	keys := c.createTopic("snap", 2)
	want := map[string][]string{}
	for i := range 20 {
		key := keys[i%2]
		v := fmt.Sprintf("s%d", i)
		c.produce(key, v)
		want[key] = append(want[key], v)
	}
	for _, key := range keys {
		c.converge(key, want[key])
	}
	// Snapshot every group on every node, compacting the log head.
	for _, n := range c.nodes {
		n.repl.mu.Lock()
		groups := n.repl.groups
		n.repl.mu.Unlock()
		for _, g := range groups {
			if err := g.raft.Snapshot().Error(); err != nil {
				t.Fatalf("node %d snapshot %s: %v", n.cfg.NodeID, g.name, err)
			}
		}
	}
	for i := 20; i < 30; i++ {
		key := keys[i%2]
		v := fmt.Sprintf("s%d", i)
		c.produce(key, v)
		want[key] = append(want[key], v)
	}
	for _, key := range keys {
		c.converge(key, want[key])
	}
	// Restart every node: partitions are cut back to the snapshot and the rest replayed,
	// so nothing is lost or doubled.
	for i, n := range c.nodes {
		n.close()
		c.nodes[i] = nil
	}
	for i := range c.nodes {
		c.nodes[i] = startTestNode(t, c.cfgs[i])
	}
	for _, key := range keys {
		c.converge(key, want[key])
	}
	for i := 30; i < 36; i++ {
		key := keys[i%2]
		v := fmt.Sprintf("s%d", i)
		if off := c.produce(key, v); off != int64(len(want[key])) {
			t.Fatalf("offset after restart %d, want %d", off, len(want[key]))
		}
		want[key] = append(want[key], v)
	}
	for _, key := range keys {
		c.converge(key, want[key])
	}
}

func TestGroupFSMRegisterAfterRestore(t *testing.T) {
	dir := t.TempDir()
	expectAll := func(string, uint64, <-chan struct{}) (bool, bool) { return true, true }
	never := func(string) bool { return false }
	f := newGroupFSM("g", zapNop(), expectAll, never)
	a := openFileSM(t, filepath.Join(dir, "a"))
	defer a.close()
	for i := range 3 {
		a.Apply(uint64(i+1), 1, []byte(fmt.Sprint(i)))
	}
	// A snapshot names a and b; only a is registered when it is restored.
	snap := encodeGroupSnapshot(map[string][]byte{
		"a": binary.BigEndian.AppendUint64(nil, 2),
		"b": binary.BigEndian.AppendUint64(nil, 1),
	})
	if err := f.register("a", a); err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if got := a.entries(); len(got) != 2 {
		t.Fatalf("a after restore: %q, want cut back to 2", got)
	}
	// b registers later, with entries past its snapshot on disk: cut back to 1.
	b := openFileSM(t, filepath.Join(dir, "b"))
	defer b.close()
	for i := range 4 {
		b.Apply(uint64(i+1), 1, []byte(fmt.Sprint(i)))
	}
	if err := f.register("b", b); err != nil {
		t.Fatal(err)
	}
	if got := b.entries(); len(got) != 1 {
		t.Fatalf("b after late register: %q, want 1 entry", got)
	}
	// A state machine registered with no snapshot state starts empty.
	c := openFileSM(t, filepath.Join(dir, "c"))
	defer c.close()
	c.Apply(1, 1, []byte("stale"))
	if err := f.register("c", c); err != nil {
		t.Fatal(err)
	}
	if got := c.entries(); len(got) != 0 {
		t.Fatalf("c: %q, want empty", got)
	}
	// Entries route by key; an unregistered key that is not expected is dropped.
	res := f.Apply(&raft.Log{Index: 10, Term: 2, Type: raft.LogCommand, Data: []byte("x"), Extensions: encodeEntryHeader(0, "b")})
	if res != int64(1) {
		t.Fatalf("apply to b: %v", res)
	}
	f.expect = func(string, uint64, <-chan struct{}) (bool, bool) { return false, true }
	if res := f.Apply(&raft.Log{Index: 11, Term: 2, Type: raft.LogCommand, Data: []byte("x"), Extensions: encodeEntryHeader(0, "zz")}); !errors.Is(res.(error), ErrUnknownKey) {
		t.Fatalf("apply to unknown key: %v", res)
	}
	// The next snapshot carries every key, registered or not.
	f.unregister("c")
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bytes.Buffer
	s.Persist(&memSink{Buffer: &sink})
	state, err := decodeGroupSnapshot(bufioReader(&sink))
	if err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint64(state[appliedKey]) != 11 {
		t.Fatalf("snapshot covers up to %v, want 11", state[appliedKey])
	}
	delete(state, appliedKey)
	if len(state) != 3 || binary.BigEndian.Uint64(state["b"]) != 2 || binary.BigEndian.Uint64(state["a"]) != 2 || binary.BigEndian.Uint64(state["c"]) != 0 {
		t.Fatalf("snapshot state %v", state)
	}
}

func zapNop() *zap.Logger { return zap.NewNop() }

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

// memSink is a raft.SnapshotSink into memory.
type memSink struct{ *bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

// A follower that was down while the leader snapshotted and dropped the log entries it
// missed gets the snapshot, copies the missing data from the leader, and converges.
func TestRaftReplicatorCatchUpAfterSnapshot(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *ClusterConfig) {
		cfg.GroupsPerNode = 1
		cfg.TrailingLogs = 2
	})
	keys := c.createTopic("far", 2)
	want := map[string][]string{}
	write := func(n int, tag string) {
		for i := range n {
			key := keys[i%2]
			v := fmt.Sprintf("%s-%d", tag, i)
			c.produce(key, v)
			want[key] = append(want[key], v)
		}
	}
	write(10, "a")
	for _, key := range keys {
		c.converge(key, want[key])
	}
	leader := c.leaderOf(keys[0], 10*time.Second)
	var follower *testNode
	for _, n := range c.nodes {
		if n != leader {
			follower = n
		}
	}
	fid := follower.cfg.NodeID
	follower.close()
	c.nodes[fid-1] = nil
	write(40, "b")
	// Snapshot on the running nodes: their logs keep only the last 2 entries.
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		n.repl.mu.Lock()
		for _, g := range n.repl.groups {
			if err := g.raft.Snapshot().Error(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		}
		n.repl.mu.Unlock()
	}
	c.nodes[fid-1] = startTestNode(t, c.cfgs[fid-1])
	write(6, "c")
	for _, key := range keys {
		c.converge(key, want[key])
	}
	copied := 0
	for _, key := range keys {
		copied += c.nodes[fid-1].sm(key).caughtUp
	}
	if copied == 0 {
		t.Fatal("the restarted follower converged without copying data: the test did not exercise catch-up")
	}
}

// Entries submitted without waiting keep their order and share replication rounds.
func TestRaftReplicatorSubmitKeepsOrder(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *ClusterConfig) { cfg.GroupsPerNode = 1 })
	keys := c.createTopic("pipelined", 1)
	leader := c.leaderOf(keys[0], 20*time.Second)
	c.produce(keys[0], "first") // wait until every replica has registered
	var waits []func() (any, error)
	var want []string
	want = append(want, "first")
	for i := range 50 {
		v := fmt.Sprintf("p%d", i)
		waits = append(waits, leader.repl.Submit(context.Background(), keys[0], []byte(v)))
		want = append(want, v)
	}
	for i, wait := range waits {
		res, err := wait()
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if res != int64(i+1) {
			t.Fatalf("entry %d applied at offset %v", i, res)
		}
	}
	c.converge(keys[0], want)
	// A follower refuses at once.
	for _, n := range c.nodes {
		if n != leader {
			if _, err := n.repl.Submit(context.Background(), keys[0], []byte("x"))(); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("submit at a follower: %v", err)
			}
		}
	}
}

// TestRaftReplicatorTrailingBytes: large entries shrink the entries kept behind a
// snapshot to about TrailingBytes (at least minTrailingLogs), on every replica.
func TestRaftReplicatorTrailingBytes(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *ClusterConfig) {
		cfg.TrailingLogs = 1000
		cfg.TrailingBytes = 64 << 10
	})
	keys := c.createTopic("big", 1)
	value := strings.Repeat("x", 8<<10)
	var want []string
	for i := range 200 {
		v := fmt.Sprintf("%d-%s", i, value)
		c.produce(keys[0], v)
		want = append(want, v)
	}
	c.converge(keys[0], want)
	groups := func(n *testNode) []*dataGroup {
		n.repl.mu.Lock()
		defer n.repl.mu.Unlock()
		var out []*dataGroup
		for _, g := range n.repl.groups {
			if last, _ := g.logs.LastIndex(); last > 200 {
				out = append(out, g)
			}
		}
		return out
	}
	for _, n := range c.nodes {
		gs := groups(n)
		if len(gs) != 1 {
			t.Fatalf("node %d: %d groups carry the entries, want 1", n.cfg.NodeID, len(gs))
		}
		g := gs[0]
		waitFor(t, 10*time.Second, "trailing entries bounded by bytes", func() bool {
			return g.raft.ReloadableConfig().TrailingLogs == minTrailingLogs
		})
		if err := g.raft.Snapshot().Error(); err != nil {
			t.Fatalf("node %d snapshot: %v", n.cfg.NodeID, err)
		}
		first, _ := g.logs.FirstIndex()
		last, _ := g.logs.LastIndex()
		// Compaction drops whole segments, so a little more than the bound may stay.
		if kept := last - first + 1; kept < minTrailingLogs || kept > 2*minTrailingLogs {
			t.Fatalf("node %d: %d entries kept after the snapshot (first %d, last %d), want about %d", n.cfg.NodeID, kept, first, last, minTrailingLogs)
		}
	}
	// Still whole after a restart of every node.
	for i, n := range c.nodes {
		n.close()
		c.nodes[i] = nil
	}
	for i := range c.nodes {
		c.nodes[i] = startTestNode(t, c.cfgs[i])
	}
	c.converge(keys[0], want)
}
