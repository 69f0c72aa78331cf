package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		path:  "cluster remove-node",
		args:  "ID",
		short: "remove a node from a Raft cluster: its data groups move to other nodes, then it leaves (with --wait, follow the moves)",
		setup: func(fs *pflag.FlagSet) runFunc {
			admin := fs.String("admin", envOr("SLUICE_ADMIN", ""), "admin HTTP `host:port` of a node of the cluster, best another than the one removed (env SLUICE_ADMIN); required")
			wait := fs.Bool("wait", false, "wait until the node has left the cluster, printing each data group's move")
			// --timeout is the global flag; here it bounds the whole command.
			if f := fs.Lookup("timeout"); f != nil {
				f.Usage = fmt.Sprintf("how long to wait: with --wait for the node to leave (default %v), else for the removal to be recorded (default %v)", removeWaitTimeout, removeRequestTimeout)
				f.DefValue = "0s"
			}
			return func(e *env, args []string) error {
				if len(args) != 1 {
					return usagef("cluster remove-node", "expects one node ID, got %q", args)
				}
				id, err := strconv.ParseInt(args[0], 10, 32)
				if err != nil || id < 0 {
					return usagef("cluster remove-node", "node ID %q is not a non-negative integer", args[0])
				}
				if *admin == "" {
					return usagef("cluster remove-node", "--admin is required: the admin HTTP host:port of a node of the cluster")
				}
				timeout := removeRequestTimeout
				if *wait {
					timeout = removeWaitTimeout
				}
				if fs.Changed("timeout") {
					timeout = e.timeout
				}
				return removeNode(e, *admin, int32(id), *wait, timeout)
			}
		},
	})
}

const (
	// removeRequestTimeout is the default --timeout of remove-node without --wait: the
	// admin endpoint waits up to 30 s for the controller to record the removal.
	removeRequestTimeout = 35 * time.Second
	// removeWaitTimeout is the default --timeout of remove-node --wait.
	removeWaitTimeout = 10 * time.Minute
)

// removePollInterval is how often remove-node --wait reads the cluster's state.
var removePollInterval = time.Second

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
	ans, err := postRemoveNode(ctx, admin, id)
	if err != nil {
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
	// Progress goes to stdout in table format; in JSON format stdout carries only the result.
	progress := e.stdout
	if e.json() {
		progress = e.stderr
	}
	fmt.Fprintf(progress, "node %d: removing; waiting for its data groups to move (up to %v)\n", id, timeout)
	w := &removeWatch{id: id, out: progress, states: map[string]string{}}
	for {
		pctx, pcancel := context.WithTimeout(ctx, min(10*time.Second, timeout))
		raw, err := fetchAdminCluster(pctx, admin)
		pcancel()
		var c adminCluster
		if err == nil {
			if err = json.Unmarshal(raw, &c); err != nil {
				err = fmt.Errorf("decode the answer of %s: %w", admin, err)
			}
		}
		if err != nil {
			w.pollFailed(err)
		} else if w.update(&c) {
			took := time.Since(start)
			if e.json() {
				return writeJSON(e.stdout, removeOut{NodeID: id, Status: "removed", Groups: w.moved, Seconds: took.Seconds()})
			}
			fmt.Fprintf(e.stdout, "node %d has left the cluster (%d data groups moved) after %v\n", id, len(w.moved), took.Round(100*time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			if e.ctx.Err() != nil {
				return e.ctx.Err()
			}
			return fmt.Errorf("node %d is still in the cluster after %v: %s; the moves go on in the background ('sluice cluster info --admin %s' shows them)",
				id, timeout.Round(time.Second), w.pending(), admin)
		case <-time.After(removePollInterval):
		}
	}
}

// postRemoveNode asks the admin endpoint to remove node id.
func postRemoveNode(ctx context.Context, admin string, id int32) (*removeAnswer, error) {
	u := adminURL(admin, fmt.Sprintf("/v1/cluster/nodes/%d/remove", id))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return nil, fmt.Errorf("admin url %q: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", u, err)
	}
	var ans removeAnswer
	jsonErr := json.Unmarshal(body, &ans)
	if resp.StatusCode == http.StatusAccepted && jsonErr == nil {
		return &ans, nil
	}
	msg := ans.Error
	if jsonErr != nil || msg == "" {
		msg = strings.TrimSpace(string(body))
	}
	if resp.StatusCode == http.StatusNotFound && ans.Error == "" {
		msg = "the admin endpoint has no node removal (an older server?): " + msg
	}
	return nil, fmt.Errorf("remove node %d: %s: %s", id, resp.Status, msg)
}

// adminURL is path on a node's admin endpoint, given as host:port or a URL.
func adminURL(admin, path string) string {
	u := admin
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return strings.TrimRight(u, "/") + path
}

// removeWatch follows the removal of node id through successive admin views and prints a
// line each time one of its data groups changes state.
type removeWatch struct {
	id      int32
	out     io.Writer
	states  map[string]string // group -> last state printed
	moved   []string          // groups that were on the node and no longer are
	lastErr string
	noted   bool
}

// update takes one view; it returns true once the node is gone: not among the nodes and
// in no group.
func (w *removeWatch) update(c *adminCluster) bool {
	w.lastErr = ""
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
	seen := map[string]bool{}
	for i := range c.Groups {
		g := &c.Groups[i]
		state := moveState(g, w.id)
		if state == "" {
			continue
		}
		seen[g.Name] = true
		if w.states[g.Name] != state {
			w.states[g.Name] = state
			fmt.Fprintf(w.out, "%s: %s\n", g.Name, state)
		}
	}
	for name := range w.states {
		if seen[name] {
			continue
		}
		delete(w.states, name)
		w.moved = append(w.moved, name)
		line := "moved off node " + strconv.Itoa(int(w.id))
		for i := range c.Groups {
			if c.Groups[i].Name == name {
				line += " (members " + joinInt32s(c.Groups[i].Members) + ")"
			}
		}
		fmt.Fprintf(w.out, "%s: %s\n", name, line)
	}
	slices.Sort(w.moved)
	return !present && len(seen) == 0
}

// pollFailed prints a failed read of the cluster's state, once per distinct error.
func (w *removeWatch) pollFailed(err error) {
	if msg := oneLine(err); msg != w.lastErr {
		w.lastErr = msg
		fmt.Fprintf(w.out, "cannot read the cluster's state (retrying): %s\n", msg)
	}
}

// pending describes what is left, for the error at the deadline.
func (w *removeWatch) pending() string {
	if len(w.states) == 0 {
		return "no data group is left on it, but the node has not left yet"
	}
	names := make([]string, 0, len(w.states))
	for name := range w.states {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = name + " " + w.states[name]
	}
	return fmt.Sprintf("%d data groups not moved yet (%s)", len(names), strings.Join(parts, "; "))
}

// moveState says where group g is in moving off node id: "" when the node is not in it.
func moveState(g *adminGroup, id int32) string {
	in := slices.Contains(g.Members, id) || slices.Contains(g.Joining, id) || slices.Contains(g.Removing, id)
	if !in {
		return ""
	}
	switch {
	case len(g.Joining) > 0 && len(g.Removing) > 0:
		return fmt.Sprintf("moving from %s to %s (copying)", joinInt32s(g.Removing), joinInt32s(g.Joining))
	case len(g.Joining) > 0:
		return fmt.Sprintf("moving to %s (copying)", joinInt32s(g.Joining))
	case len(g.Removing) > 0:
		return fmt.Sprintf("moving off %s (copied; changing members to %s)", joinInt32s(g.Removing), joinInt32s(withoutAll(g.Members, g.Removing)))
	default:
		return fmt.Sprintf("waiting to move off %d", id)
	}
}

// withoutAll is xs without the elements of drop.
func withoutAll(xs, drop []int32) []int32 {
	out := make([]int32, 0, len(xs))
	for _, x := range xs {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}
