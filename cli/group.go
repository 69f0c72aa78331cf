package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func init() {
	register(&command{
		path:  "group list",
		short: "list consumer groups and their states",
		setup: func(*pflag.FlagSet) runFunc {
			return func(e *env, args []string) error {
				if len(args) != 0 {
					return usagef("group list", "takes no arguments, got %q", args)
				}
				return groupList(e)
			}
		},
	})
	register(&command{
		path:  "group describe",
		args:  "GROUP",
		short: "show a group's state, members, assignment, and committed offset, log end and lag per partition",
		setup: func(*pflag.FlagSet) runFunc {
			return func(e *env, args []string) error {
				g, err := oneArg("group describe", "GROUP", args)
				if err != nil {
					return err
				}
				return groupDescribe(e, g)
			}
		},
	})
	register(&command{
		path:  "group seek",
		args:  "GROUP",
		short: "move an empty group's committed offsets",
		setup: func(fs *pflag.FlagSet) runFunc {
			to := fs.String("to", "", "where to: earliest, latest, timestamp:TIME (Unix ms, RFC 3339 or -DURATION) or offset:N (required)")
			topics := fs.StringArray("topic", nil, "move this topic's partitions (repeatable; default: every topic the group has committed offsets for)")
			dryRun := fs.Bool("dry-run", false, "show the new offsets without committing them")
			return func(e *env, args []string) error {
				g, err := oneArg("group seek", "GROUP", args)
				if err != nil {
					return err
				}
				if *to == "" {
					return usagef("group seek", "--to is required (earliest, latest, timestamp:TIME or offset:N)")
				}
				spec, err := parseSeekTo(*to, time.Now())
				if err != nil {
					return usagef("group seek", "%v", err)
				}
				return groupSeek(e, g, spec, *topics, *dryRun)
			}
		},
	})
	register(&command{
		path:  "group delete",
		args:  "GROUP",
		short: "delete an empty group and its committed offsets",
		setup: func(*pflag.FlagSet) runFunc {
			return func(e *env, args []string) error {
				g, err := oneArg("group delete", "GROUP", args)
				if err != nil {
					return err
				}
				return groupDelete(e, g)
			}
		},
	})
}

// groupErr turns a Kafka error about a group into a sentence.
func groupErr(group string, err error) error {
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		return fmt.Errorf("group %q does not exist", group)
	case errors.Is(err, kerr.NonEmptyGroup):
		return fmt.Errorf("group %q still has active members: stop its consumers first", group)
	case errors.Is(err, kerr.CoordinatorNotAvailable), errors.Is(err, kerr.NotCoordinator):
		return fmt.Errorf("group %q: no coordinator is available (%w)", group, err)
	}
	return fmt.Errorf("group %q: %w", group, err)
}

type groupSummary struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
}

func groupList(e *env) error {
	adm, err := e.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	out := []groupSummary{}
	for _, g := range listed.Sorted() {
		out = append(out, groupSummary{Group: g.Group, State: g.State, ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
	}
	if e.json() {
		return writeJSON(e.stdout, out)
	}
	t := newTable(e.stdout, "GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR")
	for _, g := range out {
		t.row(g.Group, g.State, g.ProtocolType, g.Coordinator)
	}
	return t.flush()
}

type memberOut struct {
	MemberID   string             `json:"member_id"`
	InstanceID *string            `json:"instance_id"`
	ClientID   string             `json:"client_id"`
	Host       string             `json:"host"`
	Assignment map[string][]int32 `json:"assignment"`
}

type groupPartitionOut struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Member    string `json:"member,omitempty"`
	Committed int64  `json:"committed"` // -1: nothing committed
	LogEnd    int64  `json:"log_end"`
	Lag       int64  `json:"lag"` // -1: unknown
	Error     string `json:"error,omitempty"`
}

type groupOut struct {
	groupSummary
	Protocol        string              `json:"protocol"`
	CoordinatorAddr string              `json:"coordinator_address"`
	Members         []memberOut         `json:"members"`
	Partitions      []groupPartitionOut `json:"partitions"`
	TotalLag        int64               `json:"total_lag"`
}

func groupDescribe(e *env, group string) error {
	adm, err := e.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		return groupErr(group, err)
	}
	l, ok := lags[group]
	if !ok {
		return fmt.Errorf("group %q does not exist", group)
	}
	if l.DescribeErr != nil {
		return groupErr(group, l.DescribeErr)
	}
	if l.FetchErr != nil {
		return groupErr(group, fmt.Errorf("fetch committed offsets: %w", l.FetchErr))
	}
	if l.State == "Dead" && len(l.Members) == 0 && len(l.Lag) == 0 {
		return fmt.Errorf("group %q does not exist", group)
	}
	out := groupOut{
		groupSummary: groupSummary{Group: group, State: l.State, ProtocolType: l.ProtocolType, Coordinator: l.Coordinator.NodeID},
		Protocol:     l.Protocol,
		Members:      []memberOut{},
		Partitions:   []groupPartitionOut{},
	}
	if l.Coordinator.Host != "" {
		out.CoordinatorAddr = fmt.Sprintf("%s:%d", l.Coordinator.Host, l.Coordinator.Port)
	}
	for _, m := range l.Members {
		mo := memberOut{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.ClientHost, Assignment: map[string][]int32{}}
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range c.Topics {
				ps := append([]int32(nil), t.Partitions...)
				sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
				mo.Assignment[t.Topic] = ps
			}
		}
		out.Members = append(out.Members, mo)
	}
	for _, pl := range l.Lag.Sorted() {
		po := groupPartitionOut{Topic: pl.Topic, Partition: pl.Partition, Committed: pl.Commit.At, LogEnd: pl.End.Offset, Lag: pl.Lag}
		if pl.Member != nil {
			po.Member = pl.Member.MemberID
		}
		if pl.End.Err != nil {
			po.LogEnd = -1
		}
		if pl.Err != nil {
			po.Error = pl.Err.Error()
		}
		if po.Lag > 0 {
			out.TotalLag += po.Lag
		}
		out.Partitions = append(out.Partitions, po)
	}
	if e.json() {
		return writeJSON(e.stdout, out)
	}
	t := newTable(e.stdout)
	t.row("GROUP", group)
	t.row("STATE", out.State)
	t.row("PROTOCOL", strings.Trim(out.ProtocolType+"/"+out.Protocol, "/"))
	coord := fmt.Sprint(out.Coordinator)
	if out.CoordinatorAddr != "" {
		coord += " (" + out.CoordinatorAddr + ")"
	}
	t.row("COORDINATOR", coord)
	t.row("MEMBERS", len(out.Members))
	t.row("TOTAL-LAG", out.TotalLag)
	if err := t.flush(); err != nil {
		return err
	}
	if len(out.Members) > 0 {
		fmt.Fprintln(e.stdout)
		t = newTable(e.stdout, "MEMBER", "INSTANCE", "CLIENT-ID", "HOST", "ASSIGNMENT")
		for _, m := range out.Members {
			inst := "-"
			if m.InstanceID != nil {
				inst = *m.InstanceID
			}
			t.row(m.MemberID, inst, m.ClientID, m.Host, formatAssignment(m.Assignment))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(out.Partitions) > 0 {
		fmt.Fprintln(e.stdout)
		t = newTable(e.stdout, "TOPIC", "PARTITION", "MEMBER", "COMMITTED", "LOG-END", "LAG", "ERROR")
		for _, p := range out.Partitions {
			t.row(p.Topic, p.Partition, p.Member, offsetCell(p.Committed), offsetCell(p.LogEnd), offsetCell(p.Lag), p.Error)
		}
		return t.flush()
	}
	return nil
}

// offsetCell shows -1 (none, unknown) as "-".
func offsetCell(o int64) string {
	if o < 0 {
		return "-"
	}
	return fmt.Sprint(o)
}

func formatAssignment(a map[string][]int32) string {
	topics := make([]string, 0, len(a))
	for t := range a {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	parts := make([]string, 0, len(topics))
	for _, t := range topics {
		parts = append(parts, t+":"+joinInt32s(a[t]))
	}
	return strings.Join(parts, " ")
}

type seekOut struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Old       int64  `json:"old"` // -1: nothing was committed
	New       int64  `json:"new"`
	Error     string `json:"error,omitempty"`
}

func groupSeek(e *env, group string, spec startSpec, topics []string, dryRun bool) error {
	adm, err := e.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return groupErr(group, err)
	}
	d, err := described.On(group, nil)
	if err == nil {
		err = d.Err
	}
	if err != nil {
		return groupErr(group, err)
	}
	if len(d.Members) > 0 || (d.State != "Empty" && d.State != "Dead" && d.State != "") {
		return fmt.Errorf("group %q has %d active members (state %s): offsets can only be moved while the group is empty; stop its consumers first", group, len(d.Members), d.State)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return groupErr(group, fmt.Errorf("fetch committed offsets: %w", err))
	}
	if len(topics) == 0 {
		for t := range committed {
			topics = append(topics, t)
		}
		if len(topics) == 0 {
			return fmt.Errorf("group %q has no committed offsets: name the topics to move with --topic", group)
		}
	}
	sort.Strings(topics)
	offsets := kadm.Offsets{}
	var rows []seekOut
	for _, topic := range topics {
		bounds, err := listBounds(ctx, adm, topic)
		if err != nil {
			return err
		}
		starts, err := resolve(ctx, adm, topic, spec, bounds)
		if err != nil {
			return err
		}
		for p, at := range starts {
			old := int64(-1)
			if c, ok := committed.Lookup(topic, p); ok && c.Err == nil {
				old = c.At
			}
			offsets.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
			rows = append(rows, seekOut{Topic: topic, Partition: p, Old: old, New: at})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Topic != rows[j].Topic {
			return rows[i].Topic < rows[j].Topic
		}
		return rows[i].Partition < rows[j].Partition
	})
	var failed error
	if !dryRun {
		resp, err := adm.CommitOffsets(ctx, group, offsets)
		if err != nil {
			if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.RebalanceInProgress) || errors.Is(err, kerr.IllegalGeneration) {
				return fmt.Errorf("group %q became active while seeking (%v): stop its consumers first", group, err)
			}
			return groupErr(group, fmt.Errorf("commit offsets: %w", err))
		}
		for i := range rows {
			if r, ok := resp.Lookup(rows[i].Topic, rows[i].Partition); ok && r.Err != nil {
				rows[i].Error = r.Err.Error()
				if failed == nil {
					failed = fmt.Errorf("commit %s partition %d: %w", rows[i].Topic, rows[i].Partition, r.Err)
				}
			}
		}
	}
	if e.json() {
		if err := writeJSON(e.stdout, map[string]any{"group": group, "to": spec.String(), "dry_run": dryRun, "partitions": rows}); err != nil {
			return err
		}
	} else {
		verb := "moved"
		if dryRun {
			verb = "would move (dry run)"
		}
		fmt.Fprintf(e.stdout, "group %s %s to %s:\n", group, verb, spec)
		t := newTable(e.stdout, "TOPIC", "PARTITION", "OLD", "NEW", "ERROR")
		for _, r := range rows {
			t.row(r.Topic, r.Partition, offsetCell(r.Old), r.New, r.Error)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if failed != nil {
		return groupErr(group, failed)
	}
	return nil
}

func groupDelete(e *env, group string) error {
	adm, err := e.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	resp, err := adm.DeleteGroup(ctx, group)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return groupErr(group, err)
	}
	if e.json() {
		return writeJSON(e.stdout, map[string]any{"group": group, "deleted": true})
	}
	_, err = fmt.Fprintf(e.stdout, "deleted group %s\n", group)
	return err
}
