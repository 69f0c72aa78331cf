package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// metricValue returns the value of the sample named name (with its labels, if any) in a
// /metrics body.
func metricValue(body, name string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func mustMetric(t *testing.T, body, name string) float64 {
	t.Helper()
	v, ok := metricValue(body, name)
	if !ok {
		t.Fatalf("metrics lack %s:\n%s", name, body)
	}
	return v
}

// A single node whose disk has less free space than it keeps free says so in /metrics and
// /v1/cluster; one with room says that too; one with no data directory to look at has no
// disk gauges.
func TestDiskMetricsSingleNode(t *testing.T) {
	for _, tc := range []struct {
		min     int64
		refused float64
	}{{1 << 62, 1}, {1, 0}} {
		t.Run(fmt.Sprint(tc.min), func(t *testing.T) {
			dir := t.TempDir()
			lc, err := replication.OpenLocalController(dir, replication.Node{ID: 1, KafkaAddr: "127.0.0.1:9092"})
			if err != nil {
				t.Fatal(err)
			}
			defer lc.Close()
			lr := replication.NewLocalReplicator(replication.LocalConfig{NodeID: 1, Dir: dir, MinFreeBytes: tc.min})
			defer lr.Close()
			s, err := Start(Config{Listen: "127.0.0.1:0", NodeID: 1, Controller: lc, Replicator: lr, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			base := "http://" + s.Addr().String()

			_, body := get(t, base+"/metrics")
			if free := mustMetric(t, body, "sluice_disk_free_bytes"); free <= 0 {
				t.Fatalf("sluice_disk_free_bytes %v, want > 0", free)
			}
			if min := mustMetric(t, body, "sluice_disk_min_free_bytes"); min != float64(tc.min) {
				t.Fatalf("sluice_disk_min_free_bytes %v, want %d", min, tc.min)
			}
			if r := mustMetric(t, body, "sluice_writes_refused"); r != tc.refused {
				t.Fatalf("sluice_writes_refused %v, want %v", r, tc.refused)
			}
			if !strings.Contains(body, "# TYPE sluice_writes_refused gauge\n") {
				t.Fatalf("sluice_writes_refused is not a gauge:\n%s", body)
			}
			var st replication.ClusterStatus
			if _, body := get(t, base+"/v1/cluster"); json.Unmarshal([]byte(body), &st) != nil || st.Disk == nil || len(st.Nodes) != 1 {
				t.Fatalf("/v1/cluster: %s", body)
			}
			if st.Disk.WritesRefused != (tc.refused == 1) || st.Disk.MinFreeBytes != tc.min || !reflect.DeepEqual(st.Nodes[0].Disk, *st.Disk) {
				t.Fatalf("/v1/cluster disk %+v, node 1's %+v; want refused %v, min %d, alike", *st.Disk, st.Nodes[0].Disk, tc.refused == 1, tc.min)
			}
		})
	}
	// No data directory: no disk gauges rather than a free space of 0.
	_, body := get(t, startLocal(t, nil)+"/metrics")
	for _, name := range []string{"sluice_disk_free_bytes", "sluice_disk_min_free_bytes", "sluice_writes_refused"} {
		if strings.Contains(body, name) {
			t.Fatalf("metrics of a node with no data directory have %s:\n%s", name, body)
		}
	}
}

// failingSM fails its applies for a reason of its own while fail is set, as a partition
// on a full disk does.
type failingSM struct {
	mu      sync.Mutex
	fail    bool
	applied int
}

type ownFailure struct{ err error }

func (f ownFailure) ApplyFailed() error { return f.err }

func (s *failingSM) Apply(index, term uint64, entry []byte) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return ownFailure{fmt.Errorf("append at index %d: %w", index, syscall.ENOSPC)}
	}
	s.applied++
	return int64(s.applied - 1)
}

func (s *failingSM) setFail(fail bool) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

func (s *failingSM) Commit(uint64)             {}
func (s *failingSM) Sync() error               { return nil }
func (s *failingSM) Snapshot() ([]byte, error) { return nil, nil }
func (s *failingSM) Restore([]byte) error      { return nil }

// A data group whose committed entry keeps failing to apply shows
// sluice_raft_group_apply_failing 1 and the reason in /v1/cluster, until the entry applies.
func TestApplyFailingMetric(t *testing.T) {
	c, base := serveCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Controller.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	topic, err := c.Controller.CreateTopic(ctx, replication.TopicSpec{Name: "full", Partitions: 1, ReplicationFactor: -1})
	if err != nil {
		t.Fatal(err)
	}
	key := partition.Key(topic.ID, 0)
	sm := &failingSM{}
	if err := c.Replicator.Register(key, sm); err != nil {
		t.Fatal(err)
	}
	defer c.Replicator.Unregister(key)
	replicate := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		for {
			_, err := c.Replicator.Replicate(ctx, key, []byte("e"))
			if !errors.Is(err, replication.ErrNotLeader) || ctx.Err() != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := replicate(20 * time.Second); err != nil {
		t.Fatalf("replicate: %v", err)
	}
	group := topic.Partitions[0].Group
	failing := fmt.Sprintf("sluice_raft_group_apply_failing{group=%q}", group)
	// status polls /metrics and /v1/cluster until the gauge reads want.
	status := func(want float64) replication.GroupStatus {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, body := get(t, base+"/metrics")
			if v, ok := metricValue(body, failing); ok && v == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never read %v:\n%s", failing, want, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var st replication.ClusterStatus
		_, body := get(t, base+"/v1/cluster")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		for _, g := range st.Groups {
			if g.Name == group {
				return g
			}
		}
		t.Fatalf("/v1/cluster has no group %s: %s", group, body)
		return replication.GroupStatus{}
	}
	if g := status(0); g.ApplyFailure != "" {
		t.Fatalf("healthy group: apply failure %q", g.ApplyFailure)
	}
	// A cluster node's disk gauges: its free space, the default 1 GiB kept free.
	_, body := get(t, base+"/metrics")
	if free, min, refused := mustMetric(t, body, "sluice_disk_free_bytes"), mustMetric(t, body, "sluice_disk_min_free_bytes"), mustMetric(t, body, "sluice_writes_refused"); free <= 0 || min != 1<<30 || refused != 0 {
		t.Fatalf("disk gauges: free %v, min %v, refused %v; want free > 0, min 1 GiB, not refused", free, min, refused)
	}

	sm.setFail(true)
	if err := replicate(300 * time.Millisecond); !errors.Is(err, replication.ErrOutcomeUnknown) {
		t.Fatalf("replicate while the entry cannot apply: %v, want ErrOutcomeUnknown", err)
	}
	if g := status(1); !strings.Contains(g.ApplyFailure, syscall.ENOSPC.Error()) {
		t.Fatalf("group while its entry cannot apply: apply failure %q, want the reason (%v)", g.ApplyFailure, syscall.ENOSPC)
	}
	sm.setFail(false)
	if g := status(0); g.ApplyFailure != "" {
		t.Fatalf("group once the entry applied: apply failure %q", g.ApplyFailure)
	}
}
