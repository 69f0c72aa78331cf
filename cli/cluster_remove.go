package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		path:  "cluster remove-node",
		args:  "ID",
		short: "remove a node from a Raft cluster: its data groups move to other nodes, then it leaves (with --wait, follow the moves)",
		setup: func(fs *pflag.FlagSet) runFunc {
			f := addChangeFlags(fs, ", best another than the one removed", "wait until the node has left the cluster, printing each data group's move", "the node has left")
			return func(e *env, args []string) error {
				if len(args) != 1 {
					return usagef("cluster remove-node", "expects one node ID, got %q", args)
				}
				id, err := strconv.ParseInt(args[0], 10, 32)
				if err != nil || id < 0 {
					return usagef("cluster remove-node", "node ID %q is not a non-negative integer", args[0])
				}
				if err := f.check("cluster remove-node"); err != nil {
					return err
				}
				return removeNode(e, *f.admin, int32(id), *f.wait, f.timeout(e))
			}
		},
	})
}

// removeAnswer is the admin endpoint's answer to POST /v1/cluster/nodes/{id}/remove.
type removeAnswer struct {
	NodeID  int32  `json:"node_id"`
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// removeOut is remove-node's JSON output.
type removeOut struct {
	NodeID  int32    `json:"node_id"`
	Status  string   `json:"status"` // "removing", or with --wait "removed"
	Message string   `json:"message,omitempty"`
	Groups  []string `json:"groups,omitempty"` // with --wait: the groups that moved off it
	Seconds float64  `json:"seconds,omitempty"`
}

func removeNode(e *env, admin string, id int32, wait bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	start := time.Now()
	var ans removeAnswer
	path := fmt.Sprintf("/v1/cluster/nodes/%d/remove", id)
	if _, err := postAdmin(ctx, admin, path, fmt.Sprintf("remove node %d", id), "node removal", &ans, 202); err != nil {
		return err
	}
	if !wait {
		if e.json() {
			return writeJSON(e.stdout, removeOut{NodeID: id, Status: ans.Status, Message: ans.Message})
		}
		fmt.Fprintf(e.stdout, "Node %d is being removed: its data groups move to other nodes, then it leaves the cluster.\n", id)
		fmt.Fprintf(e.stdout, "Follow it with 'sluice cluster remove-node %d --wait --admin %s' or 'sluice cluster info --admin %s'.\n", id, admin, admin)
		return nil
	}
	progress := progressOut(e)
	fmt.Fprintf(progress, "node %d: removing; waiting for its data groups to move (up to %v)\n", id, timeout)
	w := &removeWatch{groupWatch: newGroupWatch(progress), id: id}
	done, err := followMoves(ctx, e, admin, w)
	if err != nil {
		return err
	}
	if !done {
		pending := w.pending()
		if pending == "" {
			pending = "no data group is left on it, but the node has not left yet"
		}
		return fmt.Errorf("node %d is still in the cluster after %v: %s; the moves go on in the background ('sluice cluster info --admin %s' shows them)",
			id, timeout.Round(time.Second), pending, admin)
	}
	took := time.Since(start)
	if e.json() {
		return writeJSON(e.stdout, removeOut{NodeID: id, Status: "removed", Groups: w.moved, Seconds: took.Seconds()})
	}
	fmt.Fprintf(e.stdout, "node %d has left the cluster (%d data groups moved) after %v\n", id, len(w.moved), took.Round(100*time.Millisecond))
	return nil
}

// removeWatch follows the removal of node id: each of its data groups' moves, until the
// node has left.
type removeWatch struct {
	*groupWatch
	id    int32
	noted bool
}

// update takes one view; it returns true once the node is gone: not among the nodes and
// in no group.
func (w *removeWatch) update(c *adminCluster) bool {
	if c.NodeID == w.id && !w.noted {
		w.noted = true
		fmt.Fprintf(w.out, "note: --admin is node %d's own endpoint, whose view may stop changing once it leaves; another node's is better\n", w.id)
	}
	present := false
	for _, n := range c.Nodes {
		if n.ID == w.id {
			present = true
		}
	}
	moving := w.groups(c, func(g *adminGroup) string { return moveState(g, w.id) }, "moved off node "+strconv.Itoa(int(w.id)))
	return !present && moving == 0
}

// moveState says where group g is in moving off node id: "" when the node is not in it.
func moveState(g *adminGroup, id int32) string {
	if !slices.Contains(g.Members, id) && !slices.Contains(g.Joining, id) && !slices.Contains(g.Removing, id) {
		return ""
	}
	if st := moveProgress(g); st != "" {
		return st
	}
	return fmt.Sprintf("waiting to move off %d", id)
}
