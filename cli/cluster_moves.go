package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// What the commands that change a Raft cluster (cluster remove-node, cluster rebalance)
// share: the POST to the admin endpoint, their --timeout, and with --wait the loop that
// follows data groups' moves through GET /v1/cluster.

const (
	// changeRequestTimeout is the default --timeout of a change without --wait: the admin
	// endpoint waits up to 30 s for the controller to record it.
	changeRequestTimeout = 35 * time.Second
	// moveWaitTimeout is the default --timeout of a change with --wait.
	moveWaitTimeout = 10 * time.Minute
)

// movePollInterval is how often --wait reads the cluster's state.
var movePollInterval = time.Second

// changeFlags are the flags of a command that changes the cluster: --admin (required),
// --wait, and the global --timeout, which bounds the whole command.
type changeFlags struct {
	fs    *pflag.FlagSet
	admin *string
	wait  *bool
}

// addChangeFlags adds --admin (adminNote adds to its usage) and --wait (waitUsage) to fs,
// and rewords --timeout: by default longer with --wait, until waitFor.
func addChangeFlags(fs *pflag.FlagSet, adminNote, waitUsage, waitFor string) *changeFlags {
	f := &changeFlags{fs: fs}
	f.admin = fs.String("admin", envOr("SLUICE_ADMIN", ""), "admin HTTP `host:port` of a node of the cluster"+adminNote+" (env SLUICE_ADMIN); required")
	f.wait = fs.Bool("wait", false, waitUsage)
	if t := fs.Lookup("timeout"); t != nil {
		t.Usage = fmt.Sprintf("how long to wait: with --wait until %s (default %v), else for the controller to record the change (default %v)", waitFor, moveWaitTimeout, changeRequestTimeout)
		t.DefValue = "0s"
	}
	return f
}

// check refuses a command line of command without --admin.
func (f *changeFlags) check(command string) error {
	if *f.admin == "" {
		return usagef(command, "--admin is required: the admin HTTP host:port of a node of the cluster")
	}
	return nil
}

// timeout is the command's --timeout: the flag's value when given, else the default with
// or without --wait.
func (f *changeFlags) timeout(e *env) time.Duration {
	switch {
	case f.fs.Changed("timeout"):
		return e.timeout
	case *f.wait:
		return moveWaitTimeout
	default:
		return changeRequestTimeout
	}
}

// adminURL is path on a node's admin endpoint, given as host:port or a URL.
func adminURL(admin, path string) string {
	u := admin
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return strings.TrimRight(u, "/") + path
}

// postAdmin POSTs to path on a node's admin endpoint and, when the answer's status is one
// of ok, decodes its JSON body into ans and returns the status. Any other status is an
// error with the endpoint's message. what names the request in errors ("remove node 3"),
// feature what a server without the endpoint lacks ("node removal").
func postAdmin(ctx context.Context, admin, path, what, feature string, ans any, ok ...int) (int, error) {
	u := adminURL(admin, path)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return 0, fmt.Errorf("admin url %q: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", u, err)
	}
	var refusal struct {
		Error string `json:"error"`
	}
	jsonErr := json.Unmarshal(body, &refusal)
	if slices.Contains(ok, resp.StatusCode) && jsonErr == nil {
		if err := json.Unmarshal(body, ans); err != nil {
			return 0, fmt.Errorf("%s: decode the answer of POST %s: %w", what, u, err)
		}
		return resp.StatusCode, nil
	}
	msg := refusal.Error
	if jsonErr != nil || msg == "" {
		msg = strings.TrimSpace(string(body))
		if resp.StatusCode == http.StatusNotFound {
			msg = "the admin endpoint has no " + feature + " (an older server?): " + msg
		}
	}
	return 0, fmt.Errorf("%s: %s: %s", what, resp.Status, msg)
}

// readAdminCluster reads and decodes GET /v1/cluster of a node's admin endpoint.
func readAdminCluster(ctx context.Context, admin string) (*adminCluster, error) {
	raw, err := fetchAdminCluster(ctx, admin)
	if err != nil {
		return nil, err
	}
	var c adminCluster
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode the answer of %s: %w", admin, err)
	}
	return &c, nil
}

// progressOut is where --wait prints its progress: stdout in table format; in JSON format
// stdout carries only the result.
func progressOut(e *env) io.Writer {
	if e.json() {
		return e.stderr
	}
	return e.stdout
}

// moveWatcher follows moves through successive views of the cluster.
type moveWatcher interface {
	// update takes one view; it returns true once the moves are done.
	update(c *adminCluster) bool
	// pollFailed takes a failed read of the cluster's state.
	pollFailed(err error)
}

// followMoves reads the cluster's state from admin every movePollInterval and gives it to
// w, until w says the moves are done (true), ctx ends (false: the deadline), or the
// command's own context does (its error).
func followMoves(ctx context.Context, e *env, admin string, w moveWatcher) (bool, error) {
	for {
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := readAdminCluster(pctx, admin)
		pcancel()
		if err != nil {
			w.pollFailed(err)
		} else if w.update(c) {
			return true, nil
		}
		select {
		case <-ctx.Done():
			if err := e.ctx.Err(); err != nil {
				return false, err
			}
			return false, nil
		case <-time.After(movePollInterval):
		}
	}
}

// groupWatch follows data groups' moves through successive views of the cluster, printing
// a line each time a group's state changes and one when its move is done.
type groupWatch struct {
	out     io.Writer
	states  map[string]string // group -> last state printed ("" when none yet)
	moved   []string          // groups whose move is done, sorted
	lastErr string
}

func newGroupWatch(out io.Writer) *groupWatch {
	return &groupWatch{out: out, states: map[string]string{}}
}

// track follows group name from now on, before any view has shown it moving.
func (w *groupWatch) track(name string) { w.states[name] = "" }

// groups takes one view. state says where a group's move is, "" when it has none (any
// more): each group with a state is followed and its state printed when it changes; a
// followed group without one has moved, and gets a last line, done and its members. It
// returns how many groups are still moving.
func (w *groupWatch) groups(c *adminCluster, state func(g *adminGroup) string, done string) int {
	w.lastErr = ""
	seen := map[string]bool{}
	for i := range c.Groups {
		g := &c.Groups[i]
		st := state(g)
		if st == "" {
			continue
		}
		seen[g.Name] = true
		if w.states[g.Name] != st {
			w.states[g.Name] = st
			fmt.Fprintf(w.out, "%s: %s\n", g.Name, st)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(w.states)) {
		if seen[name] {
			continue
		}
		delete(w.states, name)
		w.moved = append(w.moved, name)
		line := done
		for i := range c.Groups {
			if c.Groups[i].Name == name {
				line += " (members " + joinInt32s(c.Groups[i].Members) + ")"
			}
		}
		fmt.Fprintf(w.out, "%s: %s\n", name, line)
	}
	slices.Sort(w.moved)
	return len(seen)
}

// pollFailed prints a failed read of the cluster's state, once per distinct error.
func (w *groupWatch) pollFailed(err error) {
	if msg := oneLine(err); msg != w.lastErr {
		w.lastErr = msg
		fmt.Fprintf(w.out, "cannot read the cluster's state (retrying): %s\n", msg)
	}
}

// pending describes the groups still moving, for the error at the deadline; "" when none.
func (w *groupWatch) pending() string {
	if len(w.states) == 0 {
		return ""
	}
	names := slices.Sorted(maps.Keys(w.states))
	parts := make([]string, len(names))
	for i, name := range names {
		st := w.states[name]
		if st == "" {
			st = "not seen moving yet"
		}
		parts[i] = name + " " + st
	}
	return fmt.Sprintf("%d data groups not moved yet (%s)", len(names), strings.Join(parts, "; "))
}

// moveProgress says where a moving group is: "" when it is not moving.
func moveProgress(g *adminGroup) string {
	switch {
	case len(g.Joining) > 0 && len(g.Removing) > 0:
		return fmt.Sprintf("moving from %s to %s (copying)", joinInt32s(g.Removing), joinInt32s(g.Joining))
	case len(g.Joining) > 0:
		return fmt.Sprintf("moving to %s (copying)", joinInt32s(g.Joining))
	case len(g.Removing) > 0:
		return fmt.Sprintf("moving off %s (copied; changing members to %s)", joinInt32s(g.Removing), joinInt32s(withoutAll(g.Members, g.Removing)))
	default:
		return ""
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
