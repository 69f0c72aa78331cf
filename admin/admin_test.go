package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/internal/testnode"
	"github.com/sluicemq/sluice/replication"
)

// startCluster starts a one-node Raft cluster. Its Raft address must be known before it
// binds it (it is in Peers): the port is one free a moment ago, below the kernel's
// ephemeral range, and another is tried if some other process took it meanwhile.
func startCluster(t *testing.T, logger *zap.Logger) *replication.Cluster {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c, err := replication.StartCluster(replication.ClusterConfig{
			NodeID:          1,
			Peers:           []replication.Peer{{ID: 1, RaftAddr: testnode.FreeAddr(t)}},
			KafkaAddr:       "127.0.0.1:9092",
			Dir:             t.TempDir(),
			ElectionTimeout: 200 * time.Millisecond,
			Logger:          logger,
		})
		if err == nil {
			return c
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			t.Fatal(err)
		}
		t.Logf("start the cluster again with another Raft address: %v", err)
	}
}

// serveCluster starts a one-node Raft cluster and the admin server on it, both closed when
// the test ends, and returns the cluster and the server's base URL.
func serveCluster(t *testing.T) (*replication.Cluster, string) {
	t.Helper()
	logger := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	c := startCluster(t, logger)
	t.Cleanup(func() { c.Close() })
	s, err := Start(Config{Listen: "127.0.0.1:0", NodeID: 1, Controller: c.Controller, Replicator: c.Replicator, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return c, "http://" + s.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, _ := request(t, http.MethodGet, url)
	return code, body
}

// request sends an empty request; it returns the answer's status, body and content type.
func request(t *testing.T, method, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
}

// TestAdminOnSingleNodeRaftCluster serves a one-node Raft cluster's status.
func TestAdminOnSingleNodeRaftCluster(t *testing.T) {
	c, base := serveCluster(t)

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
		"sluice_partitions_leaderless 0\n",
		"sluice_partitions_under_replicated 0\n",
		"sluice_partitions_not_preferred_leader 0\n",
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

	// The real controller's refusals: no node 9; node 1's groups have nowhere to go.
	if code, a := post(t, base+"/v1/cluster/nodes/9/remove"); code != http.StatusNotFound || !strings.Contains(a.Error, "not in the cluster") {
		t.Fatalf("remove an unknown node: %d %+v", code, a)
	}
	if code, a := post(t, base+"/v1/cluster/nodes/1/remove"); code != http.StatusConflict || !strings.Contains(a.Error, "add a node first") {
		t.Fatalf("remove the only node: %d %+v", code, a)
	}
	st = replication.ClusterStatus{}
	if _, body := get(t, base+"/v1/cluster"); json.Unmarshal([]byte(body), &st) != nil || len(st.Nodes) != 1 || st.Nodes[0].Removing {
		t.Fatalf("a refused removal changed the cluster: %s", body)
	}
	// One node: nothing to spread.
	var ra struct {
		Status string                          `json:"status"`
		Moves  map[string][]replication.NodeID `json:"moves"`
	}
	if code := postJSON(t, base+"/v1/cluster/rebalance", &ra); code != http.StatusOK || ra.Status != "balanced" || ra.Moves == nil || len(ra.Moves) != 0 {
		t.Fatalf("rebalance one node: %d %+v", code, ra)
	}
}

func post(t *testing.T, url string) (int, removeAnswer) {
	t.Helper()
	var a removeAnswer
	return postJSON(t, url, &a), a
}

// postJSON POSTs to url and decodes the JSON answer into ans; it returns the status.
func postJSON(t *testing.T, url string, ans any) int {
	t.Helper()
	code, body := postBody(t, url)
	if err := json.Unmarshal([]byte(body), ans); err != nil {
		t.Fatalf("POST %s: body: %v\n%s", url, err, body)
	}
	return code
}

// postBody POSTs to url; it returns the status and the body, which must be JSON.
func postBody(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, ct := request(t, http.MethodPost, url)
	if ct != "application/json" {
		t.Fatalf("POST %s: content type %q", url, ct)
	}
	return code, strings.TrimSpace(body)
}

// startLocal serves the admin endpoint of a single node, with ctrl wrapping its real
// local controller when not nil.
func startLocal(t *testing.T, wrap func(*replication.LocalController) replication.Controller) string {
	t.Helper()
	lc, err := replication.OpenLocalController(t.TempDir(), replication.Node{ID: 1, KafkaAddr: "127.0.0.1:9092"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	lr := replication.NewLocalReplicator(replication.LocalConfig{NodeID: 1})
	t.Cleanup(func() { lr.Close() })
	var ctrl replication.Controller = lc
	if wrap != nil {
		ctrl = wrap(lc)
	}
	s, err := Start(Config{Listen: "127.0.0.1:0", NodeID: 1, Controller: ctrl, Replicator: lr, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return "http://" + s.Addr().String()
}

// TestChangesSingleNode: a single node's controller cannot remove nodes or rebalance, and
// says so.
func TestChangesSingleNode(t *testing.T) {
	base := startLocal(t, nil)
	code, a := post(t, base+"/v1/cluster/nodes/1/remove")
	if code != http.StatusBadRequest || a.NodeID != 1 || !strings.Contains(a.Error, "not part of a Raft cluster") {
		t.Fatalf("remove on a single node: %d %+v", code, a)
	}
	var ra map[string]any
	code = postJSON(t, base+"/v1/cluster/rebalance", &ra)
	if msg, _ := ra["error"].(string); code != http.StatusBadRequest || len(ra) != 1 || !strings.Contains(msg, "not part of a Raft cluster") {
		t.Fatalf("rebalance on a single node: %d %+v", code, ra)
	}
}

// changeStub is the node's real local controller with a RemoveNode and a Rebalance that
// answer err (and moves) and record their calls: it checks how the endpoints map the
// controller's answers to HTTP.
type changeStub struct {
	*replication.LocalController
	err   error
	moves map[string][]replication.NodeID
	calls chan changeCall
}

type changeCall struct {
	op       string
	id       replication.NodeID
	deadline time.Time
}

func (r *changeStub) RemoveNode(ctx context.Context, id replication.NodeID) error {
	d, _ := ctx.Deadline()
	r.calls <- changeCall{"remove", id, d}
	return r.err
}

func (r *changeStub) Rebalance(ctx context.Context) (map[string][]replication.NodeID, error) {
	d, _ := ctx.Deadline()
	r.calls <- changeCall{"rebalance", -1, d}
	return r.moves, r.err
}

func startStub(t *testing.T) (*changeStub, string) {
	stub := &changeStub{calls: make(chan changeCall, 1)}
	base := startLocal(t, func(lc *replication.LocalController) replication.Controller {
		stub.LocalController = lc
		return stub
	})
	return stub, base
}

// call takes the stub's one call, which must be op and bounded by ChangeTimeout.
func (r *changeStub) call(t *testing.T, op string, start time.Time) changeCall {
	t.Helper()
	var c changeCall
	select {
	case c = <-r.calls:
	default:
		t.Fatalf("the endpoint did not call %s", op)
	}
	if c.op != op {
		t.Fatalf("the endpoint called %s, want %s", c.op, op)
	}
	if c.deadline.IsZero() || c.deadline.Before(start.Add(ChangeTimeout-time.Second)) || c.deadline.After(time.Now().Add(ChangeTimeout)) {
		t.Fatalf("%s's context deadline %v, want about %v from %v", op, c.deadline, ChangeTimeout, start)
	}
	return c
}

// TestRemoveNodeStatus maps RemoveNode's answers to HTTP statuses and messages.
func TestRemoveNodeStatus(t *testing.T) {
	stub, base := startStub(t)
	for _, tc := range []struct {
		err  error
		code int
		want string // in the message
	}{
		{nil, http.StatusAccepted, "being removed"},
		{fmt.Errorf("controller: %w", replication.ErrUnknownNode), http.StatusNotFound, "not in the cluster"},
		{fmt.Errorf("remove node: %w", replication.ErrNotEnoughNodes), http.StatusConflict, "add a node first"},
		{fmt.Errorf("remove node: %w: already removing", replication.ErrInvalid), http.StatusBadRequest, "already removing"},
		{fmt.Errorf("controller: %w: no leader known", replication.ErrNotLeader), http.StatusServiceUnavailable, "no leader known"},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, "retry"},
		{errors.New("disk on fire"), http.StatusInternalServerError, "disk on fire"},
	} {
		stub.err = tc.err
		start := time.Now()
		code, a := post(t, base+"/v1/cluster/nodes/3/remove")
		if call := stub.call(t, "remove", start); call.id != 3 {
			t.Fatalf("RemoveNode(%d), want 3", call.id)
		}
		msg := a.Error
		if tc.err == nil {
			msg = a.Message
			if a.Status != "removing" || a.Error != "" {
				t.Fatalf("success answer %+v", a)
			}
		}
		if code != tc.code || a.NodeID != 3 || !strings.Contains(msg, tc.want) {
			t.Errorf("RemoveNode error %v: %d %+v, want %d with %q", tc.err, code, a, tc.code, tc.want)
		}
	}
	// A malformed ID never reaches the controller.
	for _, id := range []string{"x", "-1", "99999999999"} {
		if code, a := post(t, base+"/v1/cluster/nodes/"+id+"/remove"); code != http.StatusBadRequest || !strings.Contains(a.Error, "not a non-negative integer") {
			t.Errorf("node ID %q: %d %+v", id, code, a)
		}
	}
	select {
	case c := <-stub.calls:
		t.Fatalf("RemoveNode(%d) called for a malformed ID", c.id)
	default:
	}
	if code, _ := get(t, base+"/v1/cluster/nodes/3/remove"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET on the remove endpoint: %d", code)
	}
}

// TestRebalanceStatus maps Rebalance's answers to HTTP statuses and JSON bodies.
func TestRebalanceStatus(t *testing.T) {
	stub, base := startStub(t)
	rebalance := func(t *testing.T) (int, string) {
		t.Helper()
		start := time.Now()
		code, body := postBody(t, base+"/v1/cluster/rebalance")
		stub.call(t, "rebalance", start)
		return code, body
	}

	// Moves started: 202 with them, as group -> new members.
	stub.moves = map[string][]replication.NodeID{"g1-2-3": {1, 2, 4}, "g2-3-1": {2, 4, 1}}
	code, body := rebalance(t)
	var a struct {
		Status  string                          `json:"status"`
		Moves   map[string][]replication.NodeID `json:"moves"`
		Message string                          `json:"message"`
		Error   *string                         `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if code != http.StatusAccepted || a.Status != "rebalancing" || a.Error != nil ||
		fmt.Sprint(a.Moves) != "map[g1-2-3:[1 2 4] g2-3-1:[2 4 1]]" || !strings.Contains(a.Message, "2 data groups are moving") {
		t.Fatalf("rebalance with moves: %d %s", code, body)
	}

	// Nothing to move (an empty map, or none at all): 200, and "moves" is {} not null.
	for _, moves := range []map[string][]replication.NodeID{{}, nil} {
		stub.moves = moves
		code, body := rebalance(t)
		if code != http.StatusOK || !strings.HasPrefix(body, `{"status":"balanced","moves":{},"message":"the data groups are already balanced`) {
			t.Fatalf("rebalance with no moves (%#v): %d %s", moves, code, body)
		}
	}

	// Errors: the same mapping as removing a node; the body is {"error": …} alone.
	stub.moves = map[string][]replication.NodeID{"g1-2-3": {1, 2, 4}}
	for _, tc := range []struct {
		err  error
		code int
		want string
	}{
		{fmt.Errorf("controller: %w: no leader known", replication.ErrNotLeader), http.StatusServiceUnavailable, "rebalance the data groups: the controller did not confirm it"},
		{fmt.Errorf("controller: %w", replication.ErrOutcomeUnknown), http.StatusServiceUnavailable, "else retry"},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, "else retry"},
		{fmt.Errorf("rebalance: %w: a removal is under way", replication.ErrInvalid), http.StatusBadRequest, "cannot rebalance the data groups: rebalance: replication: invalid request: a removal is under way"},
		{errors.New("disk on fire"), http.StatusInternalServerError, "rebalance the data groups: disk on fire"},
	} {
		stub.err = tc.err
		code, body := rebalance(t)
		var e map[string]string
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if code != tc.code || len(e) != 1 || !strings.Contains(e["error"], tc.want) {
			t.Errorf("Rebalance error %v: %d %s, want %d with %q", tc.err, code, body, tc.code, tc.want)
		}
	}
	if code, _ := get(t, base+"/v1/cluster/rebalance"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET on the rebalance endpoint: %d", code)
	}
	select {
	case c := <-stub.calls:
		t.Fatalf("%s called by a GET", c.op)
	default:
	}
}
