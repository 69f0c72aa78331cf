package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testnode"
)

// TestCLIClusterInfo: `sluice cluster info` against three nodes answers an operator's
// first questions (which nodes are up, who is controller, whether every partition is led
// and fully replicated, who leads what, which data groups exist) and notices a killed
// node.
func TestCLIClusterInfo(t *testing.T) {
	c := testnode.StartCluster(t, testnode.ClusterConfig{Nodes: 3, AdminFlag: "--admin-listen", Args: []string{"--raft-election-timeout", "500ms"}})
	n1, n3 := c.Nodes[0], c.Nodes[2]
	type info struct {
		Controller int32 `json:"controller"`
		Nodes      []struct {
			NodeID  int32  `json:"node_id"`
			Address string `json:"address"`
			Alive   bool   `json:"alive"`
			Leaders int    `json:"leaders"`
		} `json:"nodes"`
		Summary struct {
			Partitions      int `json:"partitions"`
			Leaderless      int `json:"leaderless"`
			UnderReplicated int `json:"under_replicated"`
			NotPreferred    int `json:"not_preferred"`
		} `json:"summary"`
		Partitions []struct {
			Topic    string  `json:"topic"`
			Leader   int32   `json:"leader"`
			Replicas []int32 `json:"replicas"`
			Group    string  `json:"group"`
		} `json:"partitions"`
		Admin *struct {
			Controller struct {
				Leader int32 `json:"leader"`
			} `json:"controller"`
			Nodes []struct {
				ID    int32 `json:"node_id"`
				Alive bool  `json:"alive"`
			} `json:"nodes"`
			Groups []struct {
				Name    string  `json:"name"`
				Leader  int32   `json:"leader"`
				Members []int32 `json:"members"`
			} `json:"groups"`
			Partitions []struct {
				Topic string `json:"topic"`
			} `json:"partitions"`
		} `json:"admin"`
		AdminError string `json:"admin_error"`
	}
	clusterInfo := func(via *testnode.Node) (info, error) {
		p := runProg(t, 60*time.Second, "", testnode.Binary(t), "cluster", "info", "--brokers", via.Addr, "--admin", via.AdminAddr, "--format", "json")
		var i info
		if p.code != 0 {
			return i, &exitError{p}
		}
		return i, json.Unmarshal([]byte(p.stdout), &i)
	}
	testnode.WaitForErr(t, 60*time.Second, func() error {
		p := sluice(t, n1, "", "topic", "create", "spread", "-p", "6", "-r", "3", "--if-not-exists")
		if p.code != 0 {
			return &exitError{p}
		}
		return nil
	})
	var got info
	testnode.WaitFor(t, 60*time.Second, func() bool {
		i, err := clusterInfo(n1)
		if err != nil || len(i.Nodes) != 3 || i.Controller < 0 || i.Admin == nil || len(i.Admin.Groups) == 0 {
			return false
		}
		leaders, spread := 0, 0
		for _, p := range i.Partitions {
			if p.Topic == "spread" && p.Leader >= 0 && p.Group != "" {
				spread++
			}
		}
		for _, n := range i.Nodes {
			if !n.Alive {
				return false
			}
			leaders += n.Leaders
		}
		got = i
		// Leadership settles on the preferred replicas (the first leaders, or the
		// hand-back a few seconds after).
		return spread == 6 && leaders >= 6 && i.Summary.NotPreferred == 0
	})
	for _, g := range got.Admin.Groups {
		if len(g.Members) != 3 {
			t.Fatalf("data group %s has members %v, want 3", g.Name, g.Members)
		}
	}
	if s := got.Summary; s.Partitions != 6 || s.Leaderless != 0 || s.UnderReplicated != 0 || s.NotPreferred != 0 {
		t.Fatalf("summary %+v, want 6 partitions, all led and in sync", s)
	}
	// Polled, as the table is another look: leadership may move meanwhile (and back).
	var table string
	testnode.WaitForErr(t, 60*time.Second, func() error {
		table = mustSluice(t, n1, "", "cluster", "info", "--admin", n1.AdminAddr)
		for _, want := range []string{"NODES       3 (3 up)", "PARTITIONS  6 (all led, all replicas in sync)", "CONTROLLER-LEADER", "GROUP", "MEMBERS", n3.Addr} {
			if !strings.Contains(table, want) {
				return fmt.Errorf("cluster info lacks %q:\n%s", want, table)
			}
		}
		return nil
	})

	// Kill node 3: asked through node 1, it shows as down, every partition (each has a
	// replica on it) as under-replicated, and those node 3 led as not led by their
	// preferred replica.
	if err := n3.Kill(); err != nil {
		t.Fatal(err)
	}
	var afterKill info
	preferred3 := 0
	testnode.WaitForErr(t, 60*time.Second, func() error {
		i, err := clusterInfo(n1)
		if err != nil {
			return err
		}
		if i.Admin == nil || i.Summary.UnderReplicated != 6 || i.Summary.Leaderless != 0 {
			return fmt.Errorf("summary %+v (admin view: %v)", i.Summary, i.Admin != nil)
		}
		kafkaDown, raftDown := false, false
		for _, n := range i.Nodes {
			kafkaDown = kafkaDown || (n.NodeID == int32(n3.ID) && !n.Alive)
		}
		for _, n := range i.Admin.Nodes {
			raftDown = raftDown || (n.ID == int32(n3.ID) && !n.Alive)
		}
		if !kafkaDown || !raftDown {
			return fmt.Errorf("node 3 down in Metadata: %v, in the admin view: %v", kafkaDown, raftDown)
		}
		preferred3 = 0
		for _, p := range i.Partitions {
			if p.Topic == "spread" && len(p.Replicas) > 0 && p.Replicas[0] == int32(n3.ID) {
				preferred3++
			}
		}
		if preferred3 == 0 || i.Summary.NotPreferred != preferred3 {
			return fmt.Errorf("node 3 is the preferred leader of %d partitions; summary %+v", preferred3, i.Summary)
		}
		afterKill = i
		return nil
	})
	table = mustSluice(t, n1, "", "cluster", "info", "--admin", n1.AdminAddr)
	if !strings.Contains(table, "3 (2 up)") || !strings.Contains(table, n3.Addr) || !strings.Contains(table, "down") {
		t.Fatalf("cluster info after a kill:\n%s", table)
	}
	// The admin endpoint's metrics count the same, with the internal topic's partitions
	// (each also has a replica on node 3).
	testnode.WaitForErr(t, 60*time.Second, func() error {
		resp, err := http.Get("http://" + n1.AdminAddr + "/metrics")
		if err != nil {
			return err
		}
		metrics, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		for _, want := range []string{"sluice_partitions_leaderless 0\n", fmt.Sprintf("sluice_partitions_under_replicated %d\n", len(afterKill.Admin.Partitions))} {
			if !strings.Contains(string(metrics), want) {
				return fmt.Errorf("metrics after the kill of node 3 lack %q", want)
			}
		}
		if !strings.Contains(string(metrics), "sluice_partitions_not_preferred_leader ") || strings.Contains(string(metrics), "sluice_partitions_not_preferred_leader 0\n") {
			return errors.New("metrics after the kill of node 3: no partition counted as not led by its preferred replica")
		}
		return nil
	})
	// The table's partitions come from Metadata, which any node may answer from its own
	// view of which nodes are alive: poll until it shows the kill too.
	wantLine := fmt.Sprintf("PARTITIONS  6 (6 under-replicated, %d not led by their preferred replica)", preferred3)
	testnode.WaitFor(t, 60*time.Second, func() bool {
		table = mustSluice(t, n1, "", "cluster", "info")
		return strings.Contains(table, wantLine)
	})
	// Without --admin the dead node still shows, from the replica lists.
	table = mustSluice(t, n1, "", "cluster", "info")
	if !strings.Contains(table, "3 (2 up)") || !strings.Contains(table, "--admin") {
		t.Fatalf("cluster info without --admin after a kill:\n%s", table)
	}
}

// exitError is a program that exited non-zero.
type exitError struct{ p proc }

func (e *exitError) Error() string {
	return "exit " + strings.TrimSpace(e.p.stderr)
}
