package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/admin"
	"github.com/sluicemq/sluice/replication"
)

// cluster info --admin against a real node's admin endpoint: a node whose disk has less
// free space than it keeps free says so in its row; one with room shows its free space.
func TestClusterInfoDiskRefused(t *testing.T) {
	b := fakeCluster(t) // one broker, node 0
	for _, tc := range []struct {
		min     int64
		refused bool
	}{{1 << 62, true}, {1, false}} {
		dir := t.TempDir()
		lc, err := replication.OpenLocalController(dir, replication.Node{ID: 0, KafkaAddr: b})
		if err != nil {
			t.Fatal(err)
		}
		lr := replication.NewLocalReplicator(replication.LocalConfig{NodeID: 0, Dir: dir, MinFreeBytes: tc.min})
		s, err := admin.Start(admin.Config{Listen: "127.0.0.1:0", NodeID: 0, Controller: lc, Replicator: lr, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
		if err != nil {
			t.Fatal(err)
		}
		addr := s.Addr().String()

		out := mustRun(t, b, "", "cluster", "info", "--admin", addr)
		var header, row string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "NODE ") && strings.Contains(line, "ADDRESS") {
				header = line
			}
			if strings.HasPrefix(line, "0 ") && row == "" {
				row = line
			}
		}
		if !strings.Contains(header, "DISK-FREE") || !strings.Contains(row, "iB") {
			t.Fatalf("min %d: no free space in node 0's row:\n%s", tc.min, out)
		}
		if tc.refused && (!strings.Contains(row, "writes refused: disk short of space, ") || !strings.HasSuffix(row, "under the 4.0 EiB kept free (--min-free-bytes)")) {
			t.Fatalf("min %d: node 0's row does not say it refuses writes:\n%s", tc.min, out)
		}
		if !tc.refused && strings.Contains(out, "writes refused") {
			t.Fatalf("min %d: a node with room said to refuse writes:\n%s", tc.min, out)
		}

		var js clusterOut
		if err := json.Unmarshal([]byte(mustRun(t, b, "", "cluster", "info", "--admin", addr, "--format", "json")), &js); err != nil {
			t.Fatal(err)
		}
		if len(js.Nodes) != 1 || js.Nodes[0].Disk == nil {
			t.Fatalf("min %d: json nodes %+v, want node 0 with its disk", tc.min, js.Nodes)
		}
		if d := js.Nodes[0].Disk; d.FreeBytes <= 0 || d.MinFreeBytes != tc.min || d.WritesRefused != tc.refused {
			t.Fatalf("min %d: json disk %+v, want free > 0, min %d, refused %v", tc.min, *d, tc.min, tc.refused)
		}
		s.Close()
		lr.Close()
		lc.Close()
	}
}

// cluster info --admin shows each node's disk from the admin view (a refusing node that
// is not in the brokers' metadata too, "-" for one that does not report it), the data
// groups whose entries keep failing to apply on another node, and a data group's apply
// failure on this one. The view is a replication.ClusterStatus, encoded as the admin
// endpoint encodes it.
func TestClusterInfoNodesDiskAndApplyFailure(t *testing.T) {
	b := fakeCluster(t)
	st := replication.ClusterStatus{
		NodeID:     0,
		Controller: replication.ControllerStatus{Leader: 0, Term: 2, State: "Leader"},
		Nodes: []replication.NodeStatus{
			{ID: 0, KafkaAddr: b, Alive: true, Controller: true,
				Disk: replication.DiskStatus{FreeBytes: 50 << 30, MinFreeBytes: 1 << 30}},
			{ID: 1, KafkaAddr: "127.0.0.1:19092", Alive: true,
				Disk: replication.DiskStatus{FreeBytes: 5 << 20, MinFreeBytes: 1 << 30, WritesRefused: true,
					ApplyFailing: []string{"g1-2-0"}}},
			{ID: 2, KafkaAddr: "127.0.0.1:29092"}, // an older node: no disk reported
		},
		Groups: []replication.GroupStatus{
			{Name: "g0-1-2", Members: []replication.NodeID{0, 1, 2}, Leader: 0, Term: 3, Local: true, State: "Leader",
				ApplyFailure: "apply 7f/0 at index 12: no space left on device"},
			{Name: "g1-2-0", Members: []replication.NodeID{1, 2, 0}, Leader: 1, Term: 3, Local: true, State: "Follower"},
		},
	}
	doc, err := json.Marshal(&st)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(doc) }))
	defer srv.Close()

	out := mustRun(t, b, "", "cluster", "info", "--admin", srv.URL)
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			if _, seen := rows[f[0]]; !seen {
				rows[f[0]] = line
			}
		}
	}
	for _, c := range []struct{ row, want string }{
		{"NODE", "DISK-FREE  ERROR"},
		{"0", "50.0 GiB   -"},
		{"1", "5.0 MiB    writes refused: disk short of space, 5.0 MiB free, under the 1.0 GiB kept free (--min-free-bytes); " +
			"a committed entry keeps failing to apply in data group g1-2-0 (retried until it applies); not in the brokers' metadata"},
		{"2", "-          not in the brokers' metadata"},
		{"GROUP", "APPLIED  APPLY-FAILURE"},
		{"g0-1-2", "apply 7f/0 at index 12: no space left on device"},
	} {
		if !strings.Contains(rows[c.row], c.want) {
			t.Fatalf("row %s lacks %q:\n%s", c.row, c.want, out)
		}
	}
	if strings.Contains(rows["g1-2-0"], "no space") {
		t.Fatalf("a healthy group shows an apply failure:\n%s", out)
	}
	if !strings.Contains(out, "A group with an APPLY-FAILURE has a committed entry that keeps failing to apply on node 0") {
		t.Fatalf("no explanation of APPLY-FAILURE:\n%s", out)
	}

	var js clusterOut
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "cluster", "info", "--admin", srv.URL, "--format", "json")), &js); err != nil {
		t.Fatal(err)
	}
	disks := map[int32]*diskOut{}
	for _, n := range js.Nodes {
		disks[n.NodeID] = n.Disk
	}
	if d := disks[1]; len(js.Nodes) != 3 || d == nil || !d.WritesRefused || d.FreeBytes != 5<<20 || d.MinFreeBytes != 1<<30 ||
		!slices.Equal(d.ApplyFailing, []string{"g1-2-0"}) {
		t.Fatalf("json nodes: %+v; want node 1 refusing with 5 MiB free, failing to apply in g1-2-0", js.Nodes)
	}
	if d := disks[0]; d == nil || d.WritesRefused || d.FreeBytes != 50<<30 {
		t.Fatalf("json node 0 disk: %+v", d)
	}
	if disks[2] != nil {
		t.Fatalf("json node 2 disk: %+v, want none (not reported)", *disks[2])
	}
}
