package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(&command{
		path:  "cluster info",
		short: "show nodes (address, liveness, controller), partition leaders and, with --admin, disk space and data groups",
		setup: func(fs *pflag.FlagSet) runFunc {
			admin := fs.String("admin", envOr("SLUICE_ADMIN", ""), "a node's admin HTTP `host:port` (env SLUICE_ADMIN); adds the Raft view: controller and data groups")
			internal := fs.Bool("internal", false, "include internal topics in the partition list")
			return func(e *env, args []string) error {
				if len(args) != 0 {
					return usagef("cluster info", "takes no arguments, got %q", args)
				}
				return clusterInfo(e, *admin, *internal)
			}
		},
	})
}

type nodeOut struct {
	NodeID     int32  `json:"node_id"`
	Address    string `json:"address"`
	Rack       string `json:"rack,omitempty"`
	Alive      bool   `json:"alive"`
	Error      string `json:"error,omitempty"`
	Controller bool   `json:"controller"`
	Leaders    int    `json:"leaders"`
	Replicas   int    `json:"replicas"`
	Removing   bool   `json:"removing,omitempty"` // from --admin: being removed from the cluster
	// Disk, from --admin: the node's free space and whether it refuses writes for lack of
	// it; absent when the admin view does not know (no --admin, an older node, a node
	// not heard from).
	Disk *diskOut `json:"disk,omitempty"`
}

// diskOut is a node's data directory file system, as the admin view reports it.
type diskOut struct {
	FreeBytes    int64 `json:"free_bytes"`
	MinFreeBytes int64 `json:"min_free_bytes"` // writes are refused below it; 0: no minimum
	// WritesRefused: FreeBytes is below MinFreeBytes, and the node answers produce
	// requests with KAFKA_STORAGE_ERROR.
	WritesRefused bool `json:"writes_refused"`
	// ApplyFailing: the data groups in which a committed entry keeps failing to apply
	// on the node; it is tried again until it applies.
	ApplyFailing []string `json:"apply_failing,omitempty"`
}

// known says whether the node reported its disk (all zeros: it did not).
func (d diskOut) known() bool {
	return d.FreeBytes != 0 || d.MinFreeBytes != 0 || d.WritesRefused || len(d.ApplyFailing) > 0
}

// refusal explains, for the ERROR column, why the node refuses writes.
func (d *diskOut) refusal() string {
	if d == nil || !d.WritesRefused {
		return ""
	}
	return fmt.Sprintf("writes refused: disk short of space, %s free, under the %s kept free (--min-free-bytes)",
		humanBytes(float64(d.FreeBytes)), humanBytes(float64(d.MinFreeBytes)))
}

// applyFailure explains, for the ERROR column, the groups whose entries keep failing to
// apply on the node.
func (d *diskOut) applyFailure() string {
	if d == nil || len(d.ApplyFailing) == 0 {
		return ""
	}
	return fmt.Sprintf("a committed entry keeps failing to apply in data group %s (retried until it applies)",
		strings.Join(d.ApplyFailing, ", "))
}

type leaderOut struct {
	Topic       string  `json:"topic"`
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Group       string  `json:"group,omitempty"` // the data group carrying it, from --admin
	Error       string  `json:"error,omitempty"`
}

type clusterOut struct {
	ClusterID  string          `json:"cluster_id"`
	Controller int32           `json:"controller"`
	Nodes      []nodeOut       `json:"nodes"`
	Summary    summaryOut      `json:"summary"`
	Partitions []leaderOut     `json:"partitions"`
	Admin      json.RawMessage `json:"admin,omitempty"`
	AdminError string          `json:"admin_error,omitempty"`
}

// summaryOut counts the partitions shown, and those an operator looks at first.
type summaryOut struct {
	Partitions      int `json:"partitions"`
	Leaderless      int `json:"leaderless"`       // no leader: not served
	UnderReplicated int `json:"under_replicated"` // fewer in-sync replicas than replicas
	// NotPreferred: led by a replica other than the first (sluice cluster elect-leaders
	// hands them back; a cluster does by itself unless --auto-leader-rebalance=false).
	NotPreferred int `json:"not_preferred"`
}

func summarize(ps []leaderOut) summaryOut {
	s := summaryOut{Partitions: len(ps)}
	for _, p := range ps {
		if p.Leader < 0 {
			s.Leaderless++
		}
		if len(p.ISR) < len(p.Replicas) {
			s.UnderReplicated++
		}
		if p.Leader >= 0 && len(p.Replicas) > 0 && p.Leader != p.Replicas[0] {
			s.NotPreferred++
		}
	}
	return s
}

// cell is the summary for the table: the count, then what needs a look, or that nothing
// does.
func (s summaryOut) cell() string {
	var issues []string
	if s.Leaderless > 0 {
		issues = append(issues, fmt.Sprintf("%d without a leader", s.Leaderless))
	}
	if s.UnderReplicated > 0 {
		issues = append(issues, fmt.Sprintf("%d under-replicated", s.UnderReplicated))
	}
	if len(issues) == 0 && s.NotPreferred == 0 {
		return fmt.Sprintf("%d (all led, all replicas in sync)", s.Partitions)
	}
	if len(issues) == 0 {
		issues = append(issues, "all led, all replicas in sync")
	}
	if s.NotPreferred > 0 {
		issues = append(issues, fmt.Sprintf("%d not led by their preferred replica", s.NotPreferred))
	}
	return fmt.Sprintf("%d (%s)", s.Partitions, strings.Join(issues, ", "))
}

func clusterInfo(e *env, admin string, internal bool) error {
	cl, err := e.connect()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	var md struct {
		cluster    string
		controller int32
	}
	meta, err := e.admin.Metadata(ctx)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	md.cluster, md.controller = meta.Cluster, meta.Controller
	// DescribeCluster, where served, names the controller too; it wins over Metadata.
	dreq := kmsg.NewPtrDescribeClusterRequest()
	if resp, err := dreq.RequestWith(ctx, cl); err == nil && kerr.ErrorForCode(resp.ErrorCode) == nil {
		if resp.ControllerID >= 0 {
			md.controller = resp.ControllerID
		}
		if resp.ClusterID != "" {
			md.cluster = resp.ClusterID
		}
	}
	out := clusterOut{ClusterID: md.cluster, Controller: md.controller, Nodes: []nodeOut{}, Partitions: []leaderOut{}}
	byID := map[int32]int{}
	for _, b := range meta.Brokers {
		n := nodeOut{NodeID: b.NodeID, Address: fmt.Sprintf("%s:%d", b.Host, b.Port), Controller: b.NodeID == md.controller}
		if b.Rack != nil {
			n.Rack = *b.Rack
		}
		byID[b.NodeID] = len(out.Nodes)
		out.Nodes = append(out.Nodes, n)
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].NodeID < out.Nodes[j].NodeID })
	for i, n := range out.Nodes {
		byID[n.NodeID] = i
	}
	// Liveness: each node must answer ApiVersions on its own connection.
	var wg sync.WaitGroup
	for i := range out.Nodes {
		wg.Add(1)
		go func(n *nodeOut) {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, min(e.timeout, 3*time.Second))
			defer cancel()
			_, err := cl.Broker(int(n.NodeID)).Request(pctx, kmsg.NewPtrApiVersionsRequest())
			n.Alive = err == nil
			if err != nil {
				n.Error = err.Error()
			}
		}(&out.Nodes[i])
	}
	wg.Wait()
	if !internal {
		meta.Topics.FilterInternal()
	}
	leads, replicas := map[int32]int{}, map[int32]int{}
	for _, t := range meta.Topics.Sorted() {
		for _, p := range t.Partitions.Sorted() {
			lo := leaderOut{Topic: t.Topic, Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: nonNil(p.Replicas), ISR: nonNil(p.ISR)}
			if p.Err != nil {
				lo.Error = p.Err.Error()
			}
			out.Partitions = append(out.Partitions, lo)
			leads[p.Leader]++
			for _, r := range p.Replicas {
				replicas[r]++
			}
		}
	}
	// A node that is down drops out of Metadata's broker list but stays in replica lists and
	// in the admin view: show it as down rather than not at all.
	missing := map[int32]string{}
	for _, p := range out.Partitions {
		for _, r := range p.Replicas {
			if _, ok := byID[r]; !ok {
				missing[r] = ""
			}
		}
	}
	var adminView *adminCluster
	if admin != "" {
		raw, err := fetchAdminCluster(ctx, admin)
		if err != nil {
			out.AdminError = err.Error()
		} else {
			out.Admin = raw
			var c adminCluster
			if json.Unmarshal(raw, &c) == nil {
				adminView = &c
				groups := map[string]string{}
				for _, p := range c.Partitions {
					groups[fmt.Sprintf("%s/%d", p.Topic, p.Partition)] = p.Group
				}
				for i, p := range out.Partitions {
					out.Partitions[i].Group = groups[fmt.Sprintf("%s/%d", p.Topic, p.Partition)]
				}
			}
		}
	}
	if adminView != nil {
		for _, n := range adminView.Nodes {
			if _, ok := byID[n.ID]; !ok {
				missing[n.ID] = n.KafkaAddr
			}
		}
	}
	for id, addr := range missing {
		out.Nodes = append(out.Nodes, nodeOut{NodeID: id, Address: addr, Error: "not in the brokers' metadata: down or not registered", Controller: id == md.controller})
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].NodeID < out.Nodes[j].NodeID })
	removing := map[int32]bool{}
	disks := map[int32]*diskOut{}
	if adminView != nil {
		for _, n := range adminView.Nodes {
			removing[n.ID] = n.Removing
			if n.Disk.known() {
				d := n.Disk
				disks[n.ID] = &d
			}
		}
	}
	for i := range out.Nodes {
		out.Nodes[i].Leaders, out.Nodes[i].Replicas = leads[out.Nodes[i].NodeID], replicas[out.Nodes[i].NodeID]
		out.Nodes[i].Removing = removing[out.Nodes[i].NodeID]
		out.Nodes[i].Disk = disks[out.Nodes[i].NodeID]
	}
	out.Summary = summarize(out.Partitions)
	if e.json() {
		return writeJSON(e.stdout, out)
	}
	return printCluster(e.stdout, out, admin)
}

func printCluster(w io.Writer, out clusterOut, admin string) error {
	t := newTable(w)
	t.row("CLUSTER-ID", out.ClusterID)
	t.row("CONTROLLER", controllerCell(out.Controller))
	alive := 0
	for _, n := range out.Nodes {
		if n.Alive {
			alive++
		}
	}
	t.row("NODES", fmt.Sprintf("%d (%d up)", len(out.Nodes), alive))
	t.row("PARTITIONS", out.Summary.cell())
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	withDisk := false
	for _, n := range out.Nodes {
		withDisk = withDisk || n.Disk != nil
	}
	header := []string{"NODE", "ADDRESS", "STATUS", "CONTROLLER", "LEADERS", "REPLICAS"}
	if withDisk {
		header = append(header, "DISK-FREE")
	}
	t = newTable(w, append(header, "ERROR")...)
	for _, n := range out.Nodes {
		status, ctrl := "down", ""
		if n.Alive {
			status = "up"
		}
		if n.Removing {
			status += ", removing"
		}
		if n.Controller {
			ctrl = "yes"
		}
		row := []any{n.NodeID, n.Address, status, ctrl, n.Leaders, n.Replicas}
		if withDisk {
			free := ""
			if n.Disk != nil {
				free = humanBytes(float64(n.Disk.FreeBytes))
			}
			row = append(row, free)
		}
		var errs []string
		for _, e := range []string{n.Disk.refusal(), n.Disk.applyFailure(), n.Error} {
			if e != "" {
				errs = append(errs, e)
			}
		}
		t.row(append(row, strings.Join(errs, "; "))...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(out.Partitions) > 0 {
		fmt.Fprintln(w)
		withGroups := false
		for _, p := range out.Partitions {
			withGroups = withGroups || p.Group != ""
		}
		if withGroups {
			t = newTable(w, "TOPIC", "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "GROUP", "ERROR")
		} else {
			t = newTable(w, "TOPIC", "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "ERROR")
		}
		for _, p := range out.Partitions {
			if withGroups {
				t.row(p.Topic, p.Partition, controllerCell(p.Leader), p.LeaderEpoch, p.Replicas, p.ISR, p.Group, p.Error)
			} else {
				t.row(p.Topic, p.Partition, controllerCell(p.Leader), p.LeaderEpoch, p.Replicas, p.ISR, p.Error)
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	switch {
	case admin == "":
		fmt.Fprintln(w, "Raft view (data groups, their leaders and members): not in the Kafka APIs; add --admin HOST:PORT (a node's admin address) to show it.")
	case out.AdminError != "":
		fmt.Fprintf(w, "Raft view from %s: unavailable: %s\n", admin, out.AdminError)
	default:
		return printAdminCluster(w, admin, out.Admin)
	}
	return nil
}

func controllerCell(id int32) string {
	if id < 0 {
		return "none"
	}
	return fmt.Sprint(id)
}

// fetchAdminCluster GETs /v1/cluster from a node's admin HTTP endpoint.
func fetchAdminCluster(ctx context.Context, admin string) (json.RawMessage, error) {
	u := adminURL(admin, "/v1/cluster")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("admin url %q: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("GET %s: the answer is not JSON", u)
	}
	return json.RawMessage(body), nil
}

// adminCluster is the document a node's admin endpoint serves at GET /v1/cluster.
type adminCluster struct {
	NodeID     int32  `json:"node_id"`
	ClusterID  string `json:"cluster_id"`
	Version    uint64 `json:"metadata_version"`
	Controller struct {
		Leader       int32  `json:"leader"`
		Term         uint64 `json:"term"`
		State        string `json:"state"`
		CommitIndex  uint64 `json:"commit_index"`
		AppliedIndex uint64 `json:"applied_index"`
	} `json:"controller"`
	Nodes      []adminNode  `json:"nodes"`
	Groups     []adminGroup `json:"groups"`
	Partitions []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Group     string `json:"group"`
	} `json:"partitions"`
}

// adminNode is a node in the admin view.
type adminNode struct {
	ID         int32   `json:"node_id"`
	KafkaAddr  string  `json:"kafka_addr"`
	RaftAddr   string  `json:"raft_addr"`
	Alive      bool    `json:"alive"`
	Controller bool    `json:"controller"`
	Leads      int     `json:"leads"`
	Removing   bool    `json:"removing"` // an operator asked to remove it; its groups move off
	Disk       diskOut `json:"disk"`     // zeros when unknown
}

// adminGroup is a data group in the admin view. While it moves (a node is being removed),
// Joining are members still copying its data and Removing the nodes it moves off.
type adminGroup struct {
	Name         string  `json:"name"`
	Members      []int32 `json:"members"`
	Joining      []int32 `json:"joining"`
	Removing     []int32 `json:"removing"`
	Leader       int32   `json:"leader"`
	Term         uint64  `json:"term"`
	Local        bool    `json:"local"`
	State        string  `json:"state"`
	Ready        bool    `json:"ready"`
	CommitIndex  uint64  `json:"commit_index"`
	AppliedIndex uint64  `json:"applied_index"`
	Partitions   int     `json:"partitions"`
	// ApplyFailure: why a committed entry keeps failing to apply on the node that answered
	// (it is tried again until it applies; the group refuses writes meanwhile if led there).
	ApplyFailure string `json:"apply_failure"`
}

// moving says whether the group is changing members.
func (g *adminGroup) moving() bool { return len(g.Joining) > 0 || len(g.Removing) > 0 }

// movingCell is the MOVING column of the groups table: "joining 4, removing 3".
func (g *adminGroup) movingCell() string {
	var parts []string
	if len(g.Joining) > 0 {
		parts = append(parts, "joining "+joinInt32s(g.Joining))
	}
	if len(g.Removing) > 0 {
		parts = append(parts, "removing "+joinInt32s(g.Removing))
	}
	return strings.Join(parts, ", ")
}

// printAdminCluster shows the admin endpoint's view of the cluster: the controller group,
// the nodes as the controller sees them, and the data groups.
func printAdminCluster(w io.Writer, admin string, raw json.RawMessage) error {
	var c adminCluster
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("decode the answer of %s: %w", admin, err)
	}
	fmt.Fprintf(w, "Raft view from %s (node %d, metadata version %d):\n\n", admin, c.NodeID, c.Version)
	t := newTable(w)
	ctrl := controllerCell(c.Controller.Leader)
	if c.Controller.Term > 0 {
		ctrl += fmt.Sprintf(" (term %d)", c.Controller.Term)
	}
	t.row("CONTROLLER-LEADER", ctrl)
	if c.Controller.State != "" {
		t.row("THIS-NODE", fmt.Sprintf("%s, commit %d, applied %d", c.Controller.State, c.Controller.CommitIndex, c.Controller.AppliedIndex))
	}
	if err := t.flush(); err != nil {
		return err
	}
	var removing []int32
	for _, n := range c.Nodes {
		if n.Removing {
			removing = append(removing, n.ID)
		}
	}
	if len(c.Nodes) > 0 {
		fmt.Fprintln(w)
		header := []string{"NODE", "KAFKA", "RAFT", "ALIVE", "CONTROLLER", "LEADS"}
		if len(removing) > 0 {
			header = append(header, "REMOVING")
		}
		t = newTable(w, header...)
		for _, n := range c.Nodes {
			alive, ctl := "no", ""
			if n.Alive {
				alive = "yes"
			}
			if n.Controller {
				ctl = "leader"
			}
			row := []any{n.ID, n.KafkaAddr, n.RaftAddr, alive, ctl, n.Leads}
			if len(removing) > 0 {
				rm := ""
				if n.Removing {
					rm = "yes"
				}
				row = append(row, rm)
			}
			t.row(row...)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(c.Groups) == 0 {
		fmt.Fprintln(w, "No data groups: a single node without Raft.")
		return nil
	}
	moving, failing := 0, 0
	for i := range c.Groups {
		if c.Groups[i].moving() {
			moving++
		}
		if c.Groups[i].ApplyFailure != "" {
			failing++
		}
	}
	header := []string{"GROUP", "LEADER", "TERM", "MEMBERS", "PARTITIONS", "LOCAL-STATE", "READY", "COMMIT", "APPLIED"}
	if moving > 0 {
		header = append(header, "MOVING")
	}
	if failing > 0 {
		header = append(header, "APPLY-FAILURE")
	}
	t = newTable(w, header...)
	for i := range c.Groups {
		g := &c.Groups[i]
		state, ready, commit, applied := "-", "-", "-", "-"
		if g.Local {
			state, ready = g.State, "no"
			if g.Ready {
				ready = "yes"
			}
			commit, applied = fmt.Sprint(g.CommitIndex), fmt.Sprint(g.AppliedIndex)
		}
		row := []any{g.Name, controllerCell(g.Leader), g.Term, g.Members, g.Partitions, state, ready, commit, applied}
		if moving > 0 {
			row = append(row, g.movingCell())
		}
		if failing > 0 {
			row = append(row, g.ApplyFailure)
		}
		t.row(row...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(removing) > 0 || moving > 0 {
		fmt.Fprintln(w)
		if len(removing) > 0 {
			fmt.Fprintf(w, "Removing node %s: %d data groups moving. ", joinInt32s(removing), moving)
		} else {
			fmt.Fprintf(w, "%d data groups moving. ", moving)
		}
		fmt.Fprintln(w, "A joining member is copying the group's data; a removing one keeps its copy until the move is done, then leaves.")
	}
	if failing > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "A group with an APPLY-FAILURE has a committed entry that keeps failing to apply on node %d: it is tried again until it applies, and meanwhile the group refuses writes if node %d leads it.\n", c.NodeID, c.NodeID)
	}
	return nil
}
