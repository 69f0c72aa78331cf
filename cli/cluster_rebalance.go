package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		path:  "cluster rebalance",
		short: "spread a Raft cluster's data groups evenly over its nodes, e.g. after adding one (with --wait, follow the moves)",
		setup: func(fs *pflag.FlagSet) runFunc {
			f := addChangeFlags(fs, "", "wait until every moved data group has its new members, printing each one's progress", "the moves are done")
			return func(e *env, args []string) error {
				if len(args) != 0 {
					return usagef("cluster rebalance", "takes no arguments, got %q", args)
				}
				if err := f.check("cluster rebalance"); err != nil {
					return err
				}
				return rebalance(e, *f.admin, *f.wait, f.timeout(e))
			}
		},
	})
}

// rebalanceAnswer is the admin endpoint's answer to POST /v1/cluster/rebalance.
type rebalanceAnswer struct {
	Status  string             `json:"status"`
	Moves   map[string][]int32 `json:"moves"` // group -> its new members
	Message string             `json:"message,omitempty"`
}

// rebalanceOut is cluster rebalance's JSON output.
type rebalanceOut struct {
	Status  string      `json:"status"` // "rebalancing", "balanced", or with --wait "rebalanced"
	Moves   []groupMove `json:"moves"`
	Message string      `json:"message,omitempty"`
	Seconds float64     `json:"seconds,omitempty"` // with --wait
}

// groupMove is one data group's move. From and To are empty when the group's members
// before the move could not be read.
type groupMove struct {
	Group   string  `json:"group"`
	From    []int32 `json:"from"`    // the nodes leaving the group
	To      []int32 `json:"to"`      // the nodes joining it
	Members []int32 `json:"members"` // its members once moved
}

// String is the move as printed: "g1-2-3: moving 3 -> 4 (members 1,2,4)".
func (m groupMove) String() string {
	if len(m.From) == 0 && len(m.To) == 0 {
		return fmt.Sprintf("%s: moving to members %s", m.Group, joinInt32s(m.Members))
	}
	return fmt.Sprintf("%s: moving %s -> %s (members %s)", m.Group, joinInt32s(m.From), joinInt32s(m.To), joinInt32s(m.Members))
}

func rebalance(e *env, admin string, wait bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	start := time.Now()
	// The members before name the node each move replaces. Without them (the read failed),
	// a view after the call still shows it while the group moves.
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	before, _ := readAdminCluster(rctx, admin)
	rcancel()
	var ans rebalanceAnswer
	if _, err := postAdmin(ctx, admin, "/v1/cluster/rebalance", "rebalance", "rebalancing", &ans, 200, 202); err != nil {
		return err
	}
	if len(ans.Moves) == 0 {
		if e.json() {
			return writeJSON(e.stdout, rebalanceOut{Status: "balanced", Moves: []groupMove{}, Message: ans.Message})
		}
		fmt.Fprintln(e.stdout, "The data groups are already balanced: no node is in more than one group more than another (groups already moving are left alone); nothing to move.")
		return nil
	}
	moves, known := describeMoves(ans.Moves, before, nil)
	if !known {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		after, _ := readAdminCluster(rctx, admin)
		rcancel()
		moves, _ = describeMoves(ans.Moves, before, after)
	}
	if !wait {
		if e.json() {
			return writeJSON(e.stdout, rebalanceOut{Status: "rebalancing", Moves: moves, Message: ans.Message})
		}
		printMoves(e.stdout, moves)
		fmt.Fprintf(e.stdout, "The moves go on in the background; follow them with 'sluice cluster info --admin %s' (MOVING column).\n", admin)
		return nil
	}
	progress := progressOut(e)
	printMoves(progress, moves)
	fmt.Fprintf(progress, "waiting for the moves to be done (up to %v)\n", timeout)
	w := &rebalanceWatch{groupWatch: newGroupWatch(progress), members: map[string][]int32{}}
	for _, m := range moves {
		w.members[m.Group] = m.Members
		w.track(m.Group)
	}
	done, err := followMoves(ctx, e, admin, w)
	if err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("the rebalance is not done after %v: %s; the moves go on in the background ('sluice cluster info --admin %s' shows them)",
			timeout.Round(time.Second), w.pending(), admin)
	}
	took := time.Since(start)
	if e.json() {
		return writeJSON(e.stdout, rebalanceOut{Status: "rebalanced", Moves: moves, Seconds: took.Seconds()})
	}
	fmt.Fprintf(e.stdout, "rebalanced: %d data groups moved after %v\n", len(moves), took.Round(100*time.Millisecond))
	return nil
}

func printMoves(w io.Writer, moves []groupMove) {
	fmt.Fprintf(w, "Rebalancing: %d data groups moving.\n", len(moves))
	for _, m := range moves {
		fmt.Fprintln(w, m)
	}
}

// describeMoves turns the endpoint's moves (group -> new members) into moves from and to
// nodes, sorted by group, and says whether it knew every group's members before its move.
// Those come from before (the view read before the call), else from after (one read
// after it) while the group is still moving there.
func describeMoves(moves map[string][]int32, before, after *adminCluster) ([]groupMove, bool) {
	out := make([]groupMove, 0, len(moves))
	known := true
	for name, members := range moves {
		m := groupMove{Group: name, From: []int32{}, To: []int32{}, Members: members}
		if old, ok := oldMembers(name, before, after); ok {
			m.From, m.To = withoutAll(old, members), withoutAll(members, old)
		} else {
			known = false
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b groupMove) int { return strings.Compare(a.Group, b.Group) })
	return out, known
}

// oldMembers are group name's members before its move: its members in before, where it is
// not moving yet; in either view where it moves, the members but those joining, and those
// leaving.
func oldMembers(name string, before, after *adminCluster) ([]int32, bool) {
	for _, c := range []*adminCluster{before, after} {
		if c == nil {
			continue
		}
		for i := range c.Groups {
			switch g := &c.Groups[i]; {
			case g.Name != name:
			case g.moving():
				return append(withoutAll(g.Members, g.Joining), g.Removing...), true
			case c == before:
				return g.Members, true
			}
		}
	}
	return nil, false
}

// rebalanceWatch follows a rebalance's moves until every moved group has its new members.
type rebalanceWatch struct {
	*groupWatch
	members map[string][]int32 // group -> its members once moved
}

func (w *rebalanceWatch) update(c *adminCluster) bool {
	return w.groups(c, w.state, "moved") == 0
}

// state says where one of the rebalance's groups is: "" for another group, or once it has
// its new members and is no longer moving.
func (w *rebalanceWatch) state(g *adminGroup) string {
	target, ok := w.members[g.Name]
	if !ok {
		return ""
	}
	if st := moveProgress(g); st != "" {
		return st
	}
	if !sameMembers(g.Members, target) {
		// The view does not show the move yet (it may lag the controller leader's).
		return "waiting to move to members " + joinInt32s(target)
	}
	return ""
}

// sameMembers says whether a and b hold the same nodes, in any order.
func sameMembers(a, b []int32) bool {
	return len(a) == len(b) && len(withoutAll(a, b)) == 0
}
