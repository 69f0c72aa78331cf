package replication

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSM records what the replicator does to it. Sync takes syncDelay and can be made to
// fail or block.
type fakeSM struct {
	mu         sync.Mutex
	applied    []uint64
	committed  uint64
	syncedUpTo uint64 // the last index applied when a successful Sync began
	syncs      int
	syncErr    error
	syncDelay  time.Duration
	block      chan struct{} // when non-nil, Sync waits for it to close
	concurrent bool
}

func (f *fakeSM) Apply(index, term uint64, entry []byte) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, index)
	return string(entry)
}

func (f *fakeSM) Commit(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index > f.committed {
		f.committed = index
	}
}

func (f *fakeSM) Sync() error {
	f.mu.Lock()
	upTo := uint64(len(f.applied))
	block, delay, err := f.block, f.syncDelay, f.syncErr
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	time.Sleep(delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	if err == nil && upTo > f.syncedUpTo {
		f.syncedUpTo = upTo
	}
	return err
}

func (f *fakeSM) Snapshot() ([]byte, error) { return nil, nil }
func (f *fakeSM) Restore([]byte) error      { return nil }

type concurrentSM struct{ *fakeSM }

func (concurrentSM) SyncConcurrently() bool { return true }

func (f *fakeSM) state() (applied int, committed, synced uint64, syncs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applied), f.committed, f.syncedUpTo, f.syncs
}

// Concurrent writes share fsyncs, and every acknowledged write was covered by one.
func TestLocalGroupCommit(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		t.Run(map[bool]string{false: "serialised", true: "concurrent"}[concurrent], func(t *testing.T) {
			r := NewLocalReplicator(LocalConfig{NodeID: 1})
			defer r.Close()
			f := &fakeSM{syncDelay: 2 * time.Millisecond}
			var sm StateMachine = f
			if concurrent {
				sm = concurrentSM{f}
			}
			if err := r.Register("k", sm); err != nil {
				t.Fatal(err)
			}
			const writers, each = 20, 10
			var wg sync.WaitGroup
			var uncovered atomic.Int64
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						res, err := r.Replicate(context.Background(), "k", []byte("e"))
						if err != nil || res != "e" {
							t.Errorf("replicate: %v %v", res, err)
							return
						}
						// Acknowledged: an fsync that began after this entry's Apply.
						f.mu.Lock()
						if f.syncedUpTo == 0 || f.committed == 0 {
							uncovered.Add(1)
						}
						f.mu.Unlock()
					}
				}()
			}
			wg.Wait()
			applied, committed, synced, syncs := f.state()
			if applied != writers*each || committed != writers*each || synced != writers*each {
				t.Fatalf("applied %d, committed %d, synced %d; want %d each", applied, committed, synced, writers*each)
			}
			if uncovered.Load() != 0 {
				t.Fatalf("%d writes acknowledged before any fsync", uncovered.Load())
			}
			if syncs >= writers*each/2 {
				t.Fatalf("%d fsyncs for %d writes: no group commit", syncs, writers*each)
			}
			if ld := r.Leadership("k"); ld.Leader != 1 || !ld.Local || ld.Epoch != 0 {
				t.Fatalf("leadership %+v", ld)
			}
			if ld := r.Leadership("other"); ld.Local {
				t.Fatalf("leadership of an unregistered key %+v", ld)
			}
		})
	}
}

// Each index is acknowledged only after a Sync that covered it.
func TestLocalAckAfterSync(t *testing.T) {
	r := NewLocalReplicator(LocalConfig{})
	defer r.Close()
	f := &fakeSM{}
	r.Register("k", f)
	for i := 1; i <= 50; i++ {
		if _, err := r.Replicate(context.Background(), "k", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, committed, synced, _ := f.state(); synced < uint64(i) || committed < uint64(i) {
			t.Fatalf("write %d acknowledged with synced %d committed %d", i, synced, committed)
		}
	}
}

func TestLocalSyncErrorPoisons(t *testing.T) {
	var reported atomic.Int64
	r := NewLocalReplicator(LocalConfig{OnSyncError: func(string, error) { reported.Add(1) }})
	defer r.Close()
	f := &fakeSM{syncErr: errors.New("disk on fire")}
	r.Register("k", f)
	if _, err := r.Replicate(context.Background(), "k", []byte("x")); !errors.Is(err, ErrSyncFailed) {
		t.Fatalf("first write: %v, want ErrSyncFailed", err)
	}
	f.mu.Lock()
	f.syncErr = nil
	f.mu.Unlock()
	if _, err := r.Replicate(context.Background(), "k", []byte("x")); !errors.Is(err, ErrSyncFailed) {
		t.Fatalf("after a failed sync: %v, want ErrSyncFailed", err)
	}
	if _, committed, _, _ := f.state(); committed != 0 {
		t.Fatalf("committed %d after a failed sync", committed)
	}
	if reported.Load() != 1 {
		t.Fatalf("OnSyncError called %d times", reported.Load())
	}
}

func TestLocalUnregisterAndCancel(t *testing.T) {
	r := NewLocalReplicator(LocalConfig{})
	defer r.Close()
	f := &fakeSM{block: make(chan struct{})}
	r.Register("k", concurrentSM{f}) // the second write applies while the first syncs
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	go func() { _, err := r.Replicate(context.Background(), "k", []byte("a")); errc <- err }() // runs the blocked sync
	waitForCond(t, func() bool { a, _, _, _ := f.state(); return a == 1 })
	go func() { _, err := r.Replicate(ctx, "k", []byte("b")); errc <- err }()
	waitForCond(t, func() bool { a, _, _, _ := f.state(); return a == 2 })
	cancel()
	if err := <-errc; !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("cancelled wait: %v", err)
	}
	r.Unregister("k")
	close(f.block)
	<-errc // the syncing caller finishes: committed or unregistered, either way it returns
	if _, err := r.Replicate(context.Background(), "k", []byte("c")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after unregister: %v", err)
	}
}

func TestLocalFsyncModes(t *testing.T) {
	for _, mode := range []FsyncMode{FsyncInterval, FsyncNever} {
		r := NewLocalReplicator(LocalConfig{Fsync: mode, FsyncInterval: 10 * time.Millisecond})
		f := &fakeSM{}
		r.Register("k", f)
		for i := 0; i < 5; i++ {
			r.Replicate(context.Background(), "k", []byte("x"))
		}
		if _, committed, _, _ := f.state(); committed != 5 {
			t.Fatalf("%v: committed %d, want 5 at once", mode, committed)
		}
		if mode == FsyncInterval {
			waitForCond(t, func() bool { _, _, synced, _ := f.state(); return synced == 5 })
		} else if _, _, _, syncs := f.state(); syncs != 0 {
			t.Fatalf("never: %d syncs", syncs)
		}
		r.Close()
	}
	for s, want := range map[string]FsyncMode{"always": FsyncAlways, "interval": FsyncInterval, "never": FsyncNever} {
		if got, err := ParseFsyncMode(s); err != nil || got != want || got.String() != s {
			t.Fatalf("ParseFsyncMode(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseFsyncMode("sometimes"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad mode: %v", err)
	}
}

func waitForCond(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLocalController(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	node := Node{ID: 3, KafkaAddr: "127.0.0.1:9999"}
	c, err := OpenLocalController(dir, node)
	if err != nil {
		t.Fatal(err)
	}
	st0 := c.State()
	if st0.ClusterID == "" || st0.ControllerID != 3 || len(st0.Nodes) != 1 || !st0.Nodes[0].Alive {
		t.Fatalf("initial state %+v", st0)
	}
	changed := c.Changed()
	topic, err := c.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 3, ReplicationFactor: -1, Configs: map[string]string{"retention.ms": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by CreateTopic")
	}
	if topic.ID == ([16]byte{}) || len(topic.Partitions) != 3 || topic.Partitions[2].Replicas[0] != 3 {
		t.Fatalf("topic %+v", topic)
	}
	if st0.Topics["t"] != nil {
		t.Fatal("an old state changed")
	}
	for _, tc := range []struct {
		spec TopicSpec
		want error
	}{
		{TopicSpec{Name: "t", Partitions: 1}, ErrTopicExists},
		{TopicSpec{Name: "u", Partitions: 0}, ErrInvalid},
		{TopicSpec{Name: "u", Partitions: 1, ReplicationFactor: 2}, ErrNotEnoughNodes},
	} {
		if _, err := c.CreateTopic(ctx, tc.spec); !errors.Is(err, tc.want) {
			t.Errorf("create %+v: %v, want %v", tc.spec, err, tc.want)
		}
	}
	if err := c.CreatePartitions(ctx, "t", 5); err != nil {
		t.Fatal(err)
	}
	if err := c.CreatePartitions(ctx, "t", 5); !errors.Is(err, ErrInvalid) {
		t.Fatalf("same count: %v", err)
	}
	v := "2"
	if err := c.AlterConfigs(ctx, "t", map[string]*string{"retention.ms": nil, "segment.ms": &v}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx, TopicSpec{Name: "gone", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTopic(ctx, "gone"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("delete twice: %v", err)
	}
	first, err := c.AllocateProducerIDs(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.CreateTopic(ctx, TopicSpec{Name: "late", Partitions: 1}); err == nil {
		t.Fatal("change after Close succeeded")
	}

	// Everything survives a reopen; producer IDs never repeat.
	c2, err := OpenLocalController(dir, node)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	st := c2.State()
	got := st.Topics["t"]
	if got == nil || got.ID != topic.ID || len(got.Partitions) != 5 || got.Configs["segment.ms"] != "2" || got.Configs["retention.ms"] != "" {
		t.Fatalf("topic after reopen %+v", got)
	}
	if st.Topics["gone"] != nil || st.ClusterID != st0.ClusterID || st.Version != c.State().Version {
		t.Fatalf("state after reopen: %+v", st)
	}
	next, err := c2.AllocateProducerIDs(ctx, 10)
	if err != nil || next < first+100 {
		t.Fatalf("producer ids after reopen start at %d (%v), the last block was %d..%d", next, err, first, first+99)
	}
}

func TestLocalControllerCorruptFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, LocalControllerFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocalController(dir, Node{}); !errors.Is(err, ErrCorruptMetadata) {
		t.Fatalf("corrupt metadata: %v", err)
	}
	// A temp file left by a crash is ignored and removed.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, LocalControllerFile+".tmp"), []byte("junk"), 0o644)
	if _, err := OpenLocalController(dir2, Node{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir2, LocalControllerFile+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("temp file left: %v", err)
	}
}

// Below MinFreeBytes of free space the single-node replicator refuses entries before
// applying them.
func TestLocalRefusesWhenShortOfSpace(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		min     int64
		refused bool
	}{{1 << 62, true}, {1, false}, {-1, false}} {
		r := NewLocalReplicator(LocalConfig{NodeID: 1, Dir: dir, MinFreeBytes: tc.min})
		f := &fakeSM{}
		if err := r.Register("k", f); err != nil {
			t.Fatal(err)
		}
		_, err := r.Replicate(context.Background(), "k", []byte("e"))
		applied, _, _, _ := f.state()
		if tc.refused && (!errors.Is(err, ErrStorage) || applied != 0) {
			t.Errorf("%d bytes kept free: %v, %d applied; want ErrStorage, nothing applied", tc.min, err, applied)
		}
		if !tc.refused && (err != nil || applied != 1) {
			t.Errorf("%d bytes kept free: %v, %d applied; want the entry applied", tc.min, err, applied)
		}
		r.Close()
	}
}
