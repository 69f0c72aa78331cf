package admin

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/replication"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestAdminOnSingleNodeRaftCluster serves a one-node Raft cluster's status.
func TestAdminOnSingleNodeRaftCluster(t *testing.T) {
	logger := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	c, err := replication.StartCluster(replication.ClusterConfig{
		NodeID:          1,
		Peers:           []replication.Peer{{ID: 1, RaftAddr: freeAddr(t)}},
		KafkaAddr:       "127.0.0.1:9092",
		Dir:             t.TempDir(),
		ElectionTimeout: 200 * time.Millisecond,
		Logger:          logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := Start(Config{Listen: "127.0.0.1:0", NodeID: 1, Controller: c.Controller, Replicator: c.Replicator, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr().String()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Controller.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz after a leader: %d", code)
	}
	if _, err := c.Controller.CreateTopic(ctx, replication.TopicSpec{Name: "orders", Partitions: 3, ReplicationFactor: -1}); err != nil {
		t.Fatal(err)
	}
	var st replication.ClusterStatus
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, base+"/v1/cluster")
		if code != 200 {
			t.Fatalf("/v1/cluster: %d %s", code, body)
		}
		st = replication.ClusterStatus{}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("decode /v1/cluster: %v\n%s", err, body)
		}
		ready := len(st.Groups) > 0 && st.Groups[0].Ready && len(st.Partitions) == 3
		for _, p := range st.Partitions {
			ready = ready && p.Leader == 1
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster status never showed a serving group: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.NodeID != 1 || st.ClusterID == "" || st.Controller.Leader != 1 || st.Controller.State != "Leader" {
		t.Fatalf("status header: %+v", st)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].KafkaAddr != "127.0.0.1:9092" || !st.Nodes[0].Alive || !st.Nodes[0].Controller || st.Nodes[0].Leads != 3 {
		t.Fatalf("nodes: %+v", st.Nodes)
	}
	g := st.Groups[0]
	if g.Name != "g1" || len(g.Members) != 1 || g.Partitions != 3 || !g.Local || g.Term == 0 {
		t.Fatalf("group: %+v", g)
	}
	for _, p := range st.Partitions {
		if p.Topic != "orders" || p.Group != "g1" || len(p.ISR) != 1 || p.LeaderEpoch <= 0 {
			t.Fatalf("partition: %+v", p)
		}
	}

	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		"# TYPE sluice_up gauge\nsluice_up 1\n",
		"sluice_controller_leader 1\n",
		`sluice_node_alive{node="1"} 1`,
		`sluice_raft_group_is_leader{group="g1"} 1`,
		`sluice_raft_group_partitions{group="g1"} 3`,
		"sluice_partitions 3\n",
		"# TYPE sluice_raft_commitTime_ms_count counter",
		"sluice_raft_fsm_applyBatch_ms_sum ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// Each metric family's HELP appears once.
	seen := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# HELP ") {
			name := strings.Fields(line)[2]
			if seen[name] {
				t.Errorf("HELP for %s twice", name)
			}
			seen[name] = true
		}
	}
	if code, _ := get(t, base+"/nope"); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
}
