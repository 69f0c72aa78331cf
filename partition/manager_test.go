package partition

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/replication"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The manager follows the controller: it opens partitions of new topics, applies config
// changes, enforces retention, and removes deleted topics' data.
func TestManagerFollowsController(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ctrl, err := replication.OpenLocalController(dir, replication.Node{ID: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	repl := replication.NewLocalReplicator(replication.LocalConfig{})
	defer repl.Close()
	now := time.Now()
	m, err := NewManager(ManagerConfig{DataDir: dir, Controller: ctrl, Replicator: repl,
		RetentionInterval: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	topic, err := ctrl.CreateTopic(ctx, replication.TopicSpec{Name: "r", Partitions: 2,
		Configs: map[string]string{"segment.bytes": "1024"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "partitions open", func() bool {
		_, a := m.Get("r", 0)
		_, b := m.Get("r", 1)
		return a && b && m.AppliedVersion() == ctrl.State().Version
	})
	p, _ := m.Get("r", 0)
	for i := 0; i < 20; i++ {
		if _, err := p.Produce(ctx, testBatch(10, -1, -1, -1, now.Add(-48*time.Hour).UnixMilli())); err != nil {
			t.Fatal(err)
		}
	}
	if p.LogStartOffset() != 0 || p.HighWatermark() != 200 {
		t.Fatalf("start %d hw %d", p.LogStartOffset(), p.HighWatermark())
	}

	// retention.ms of a day: the two-day-old segments go, the active one stays.
	if err := ctrl.AlterConfigs(ctx, "r", map[string]*string{"retention.ms": strPtr("86400000")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new config", func() bool {
		p, ok := m.Get("r", 0)
		return ok && p.Config().RetentionMs == 86400000
	})
	p, _ = m.Get("r", 0)
	m.enforceRetention()
	if p.LogStartOffset() == 0 || p.HighWatermark() != 200 {
		t.Fatalf("after retention: start %d hw %d", p.LogStartOffset(), p.HighWatermark())
	}
	if _, err := p.Read(0, 1<<20); err == nil {
		t.Fatal("read below the log start offset succeeded")
	}

	// Delete: partitions closed, directories gone.
	if err := ctrl.DeleteTopic(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "partitions closed", func() bool {
		_, ok := m.Get("r", 0)
		return !ok && !repl.Leadership(Key(topic.ID, 0)).Local
	})
	waitFor(t, "partition directories removed", func() bool {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				return false
			}
		}
		return true
	})
	if _, err := os.Stat(filepath.Join(dir, "r-0")); !os.IsNotExist(err) {
		t.Fatalf("r-0 still on disk: %v", err)
	}
}

func strPtr(s string) *string { return &s }

// watchedReplicator is a real LocalReplicator that runs onRegister and onUnregister before
// it registers or unregisters a partition, fails the registrations refuse says to, and
// reports every key led here, as a Raft data group this node leads reports the keys of
// partitions not yet registered.
type watchedReplicator struct {
	*replication.LocalReplicator
	onRegister   func(p *Partition)
	onUnregister func(key string)
	refuse       atomic.Pointer[string] // the topic whose registrations fail
}

var errRefused = errors.New("registration refused by the test")

func (r *watchedReplicator) Register(key string, sm replication.StateMachine) error {
	p := sm.(*Partition)
	r.onRegister(p)
	if topic := r.refuse.Load(); topic != nil && *topic == p.Topic() {
		return errRefused
	}
	return r.LocalReplicator.Register(key, sm)
}

func (r *watchedReplicator) Unregister(key string) {
	r.onUnregister(key)
	r.LocalReplicator.Unregister(key)
}

func (r *watchedReplicator) Leadership(key string) replication.Leadership {
	ld := r.LocalReplicator.Leadership(key)
	ld.Local = true
	return ld
}

// A partition is in the manager whenever the replicator has it: stored before it is
// registered, unregistered before it is taken out. Until it is registered it does not
// serve, even where the replicator already says its group is led here; a failed
// registration leaves nothing behind.
func TestManagerStoresBeforeRegistering(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ctrl, err := replication.OpenLocalController(dir, replication.Node{ID: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	repl := &watchedReplicator{LocalReplicator: replication.NewLocalReplicator(replication.LocalConfig{})}
	defer repl.Close()

	var mp atomic.Pointer[Manager]
	var mu sync.Mutex
	var problems []string
	registered := map[string]*Partition{} // by topic-partition, the partitions Register was given
	problem := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	repl.onRegister = func(p *Partition) {
		name := fmt.Sprintf("%s-%d", p.Topic(), p.Index())
		mu.Lock()
		registered[name] = p
		mu.Unlock()
		m := mp.Load()
		if m == nil {
			return // NewManager's first reconcile: no topic yet
		}
		if got, ok := m.Get(p.Topic(), p.Index()); !ok || got != p {
			problem("%s registered before the manager has it", name)
		}
		if p.Leadership().Local {
			problem("%s serves before it is registered", name)
		}
	}
	repl.onUnregister = func(key string) {
		m := mp.Load()
		if m == nil {
			return
		}
		for _, p := range m.Partitions() {
			if p.Key() == key {
				if p.Leadership().Local {
					problem("%s-%d serves while it is unregistered", p.Topic(), p.Index())
				}
				return
			}
		}
		problem("%s unregistered after the manager let it go", key)
	}
	checkProblems := func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(problems) > 0 {
			t.Fatal(strings.Join(problems, "; "))
		}
	}

	m, err := NewManager(ManagerConfig{DataDir: dir, Controller: ctrl, Replicator: repl, RetentionInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mp.Store(m)
	defer m.Close()

	if _, err := ctrl.CreateTopic(ctx, replication.TopicSpec{Name: "t", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "t's partitions open and led here", func() bool {
		for i := range int32(3) {
			if p, ok := m.Get("t", i); !ok || !p.Leadership().Local {
				return false
			}
		}
		return true
	})
	checkProblems()

	// A registration that fails takes the partition out of the manager again, closed.
	refused := "f"
	repl.refuse.Store(&refused)
	topicF, err := ctrl.CreateTopic(ctx, replication.TopicSpec{Name: "f", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	var failed *Partition
	waitFor(t, "f-0's failed registration undone", func() bool {
		mu.Lock()
		failed = registered["f-0"]
		mu.Unlock()
		_, ok := m.Get("f", 0)
		return failed != nil && failed.closed.Load() && !ok
	})
	if repl.LocalReplicator.Leadership(Key(topicF.ID, 0)).Local {
		t.Fatal("f-0 is registered after its registration failed")
	}
	if _, err := failed.Produce(ctx, testBatch(1, -1, -1, -1, time.Now().UnixMilli())); !errors.Is(err, ErrClosed) {
		t.Fatalf("produce to the partition whose registration failed: %v, want ErrClosed", err)
	}
	// Once registrations succeed again, the next reconcile (here on the next metadata
	// change) opens it.
	repl.refuse.Store(nil)
	if _, err := ctrl.CreateTopic(ctx, replication.TopicSpec{Name: "g", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "f-0 and g-0 open and led here", func() bool {
		f, okF := m.Get("f", 0)
		g, okG := m.Get("g", 0)
		return okF && okG && f != failed && f.Leadership().Local && g.Leadership().Local
	})
	checkProblems()

	// Deleting a topic and closing the manager unregister before they let go.
	if err := ctrl.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "t's partitions closed", func() bool {
		_, ok := m.Get("t", 0)
		return !ok
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(m.Partitions()); n != 0 {
		t.Fatalf("%d partitions left after Close", n)
	}
	checkProblems()
}
