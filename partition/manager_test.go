package partition

import (
	"context"
	"os"
	"path/filepath"
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
