package e2e

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testnode"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceToPartitions writes perPartition records to each partition, values
// "<prefix>-<partition>-<i>".
func produceToPartitions(t *testing.T, n *testnode.Node, topic string, partitions, perPartition int, prefix string) {
	t.Helper()
	cl := client(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var rs []*kgo.Record
	for p := 0; p < partitions; p++ {
		for i := 0; i < perPartition; i++ {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte(fmt.Sprintf("%s-%d-%d", prefix, p, i))})
		}
	}
	produceSync(t, cl, rs...)
}

// describeGroup describes one group with kadm.
func describeGroup(t *testing.T, adm *kadm.Client, group string) kadm.DescribedGroup {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	d, err := ds.On(group, nil)
	if err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	return d
}

// kcatLine is one "%p %o %s" line of kcat output.
type kcatLine struct {
	partition int32
	offset    int64
	value     string
}

// parseKcat parses kcat's complete lines. A running kcat writes a line in pieces, so
// text after the last newline is a line still being written and is left for later.
func parseKcat(t *testing.T, out string) []kcatLine {
	t.Helper()
	var ls []kcatLine
	out = out[:strings.LastIndexByte(out, '\n')+1]
	for _, l := range strings.Split(out, "\n") {
		if l == "" {
			continue
		}
		f := strings.SplitN(l, " ", 3)
		if len(f) != 3 {
			t.Fatalf("kcat line %q", l)
		}
		p, err1 := strconv.Atoi(f[0])
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("kcat line %q", l)
		}
		ls = append(ls, kcatLine{int32(p), o, f[2]})
	}
	return ls
}

// TestKcatGroup: two kcat -G members split a topic's 4 partitions, two each; each record
// produced then is read once, by the member that owns its partition; after both leave
// (committing on the way out), a resumed member reads only the records produced since.
func TestKcatGroup(t *testing.T) {
	kcat := requireKcat(t)
	n := startNode(t)
	requireGroups(t, n)
	const topic, group = "kg", "kcat-group"
	createTopic(t, n, topic, 4)
	adm := admin(t, n)

	args := []string{"-b", n.Addr, "-G", group, "-o", "beginning", "-q", "-u", "-f", `%p %o %s\n`,
		"-X", "session.timeout.ms=10000", "-X", "auto.commit.interval.ms=500", topic}
	a := startBackground(t, kcat, args...)
	b := startBackground(t, kcat, args...)

	// Both members in the group, two partitions each.
	assigned := map[string][]int32{}
	testnode.WaitFor(t, 60*time.Second, func() bool {
		d := describeGroup(t, adm, group)
		if d.State != "Stable" || len(d.Members) != 2 {
			return false
		}
		assigned = map[string][]int32{}
		total := 0
		for _, m := range d.Members {
			c, ok := m.Assigned.AsConsumer()
			if !ok {
				return false
			}
			for _, tp := range c.Topics {
				assigned[m.MemberID] = append(assigned[m.MemberID], tp.Partitions...)
				total += len(tp.Partitions)
			}
		}
		for _, ps := range assigned {
			if len(ps) != 2 {
				return false
			}
		}
		return total == 4 && len(assigned) == 2
	})
	// Records go in once the split is settled, so each is read by its partition's owner.
	produceToPartitions(t, n, topic, 4, 10, "old")
	testnode.WaitFor(t, 60*time.Second, func() bool {
		return len(parseKcat(t, a.stdout.String()))+len(parseKcat(t, b.stdout.String())) >= 40
	})
	seen := map[[2]int64]bool{}
	for _, m := range []*background{a, b} {
		parts := map[int32]bool{}
		for _, l := range parseKcat(t, m.stdout.String()) {
			key := [2]int64{int64(l.partition), l.offset}
			if seen[key] {
				t.Fatalf("record %d/%d read twice", l.partition, l.offset)
			}
			seen[key] = true
			if want := fmt.Sprintf("old-%d-%d", l.partition, l.offset); l.value != want {
				t.Fatalf("partition %d offset %d = %q, want %q", l.partition, l.offset, l.value, want)
			}
			parts[l.partition] = true
		}
		if len(parts) != 2 {
			t.Fatalf("a member read partitions %v, want the two it was assigned (%v)", parts, assigned)
		}
	}
	if len(seen) != 40 {
		t.Fatalf("read %d distinct records, want 40", len(seen))
	}
	// Leave: kcat commits what it read on the way out.
	for _, m := range []*background{a, b} {
		if err := m.stop(t, 30*time.Second); err != nil {
			t.Logf("kcat exit: %v", err)
		}
	}
	testnode.WaitFor(t, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		for p := int32(0); p < 4; p++ {
			if o, ok := offs.Lookup(topic, p); !ok || o.At != 10 {
				return false
			}
		}
		return true
	})

	produceToPartitions(t, n, topic, 4, 2, "new")
	p := runProg(t, 90*time.Second, "", kcat, "-b", n.Addr, "-G", group, "-e", "-q", "-f", `%p %o %s\n`, topic)
	if p.code != 0 {
		t.Fatalf("resumed kcat: exit %d %s", p.code, p.stderr)
	}
	lines := parseKcat(t, p.stdout)
	sort.Slice(lines, func(i, j int) bool {
		return lines[i].partition < lines[j].partition || lines[i].partition == lines[j].partition && lines[i].offset < lines[j].offset
	})
	var got []string
	for _, l := range lines {
		got = append(got, fmt.Sprintf("%d/%d=%s", l.partition, l.offset, l.value))
	}
	want := "0/10=new-0-0 0/11=new-0-1 1/10=new-1-0 1/11=new-1-1 2/10=new-2-0 2/11=new-2-1 3/10=new-3-0 3/11=new-3-1"
	if strings.Join(got, " ") != want {
		t.Fatalf("resumed member read\n%s\nwant only the new records\n%s", strings.Join(got, " "), want)
	}
}

// TestCLIGroups: sluice consume -g and sluice group list/describe/seek/delete against a
// real server, including the refusals while a member is active.
func TestCLIGroups(t *testing.T) {
	n := startNode(t)
	requireGroups(t, n)
	mustSluice(t, n, "", "topic", "create", "jobs", "-p", "2")
	produceToPartitions(t, n, "jobs", 2, 3, "job")

	first := jsonLines[consumed](t, mustSluice(t, n, "", "consume", "jobs", "-g", "workers", "-n", "4", "--format", "json"))
	second := jsonLines[consumed](t, mustSluice(t, n, "", "consume", "jobs", "-g", "workers", "--format", "json"))
	if len(first) != 4 || len(second) != 2 {
		t.Fatalf("group runs read %d then %d records, want 4 then 2", len(first), len(second))
	}
	seen := map[string]bool{}
	for _, r := range append(first, second...) {
		if seen[r.Value] {
			t.Fatalf("%s read twice", r.Value)
		}
		seen[r.Value] = true
	}

	type groupJSON struct {
		State      string `json:"state"`
		Members    []any  `json:"members"`
		TotalLag   int64  `json:"total_lag"`
		Partitions []struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Committed int64  `json:"committed"`
			LogEnd    int64  `json:"log_end"`
			Lag       int64  `json:"lag"`
		} `json:"partitions"`
	}
	list := decode[[]struct {
		Group string `json:"group"`
		State string `json:"state"`
	}](t, mustSluice(t, n, "", "group", "list", "--format", "json"))
	found := false
	for _, g := range list {
		found = found || (g.Group == "workers" && g.State == "Empty")
	}
	if !found {
		t.Fatalf("group list lacks the empty group workers: %+v", list)
	}
	g := decode[groupJSON](t, mustSluice(t, n, "", "group", "describe", "workers", "--format", "json"))
	if g.State != "Empty" || g.TotalLag != 0 || len(g.Partitions) != 2 {
		t.Fatalf("describe: %+v", g)
	}
	for _, p := range g.Partitions {
		if p.Committed != 3 || p.LogEnd != 3 || p.Lag != 0 {
			t.Fatalf("partition %+v: want committed 3 = log end 3, lag 0", p)
		}
	}
	if out := mustSluice(t, n, "", "group", "describe", "workers"); !strings.Contains(out, "COMMITTED") || !strings.Contains(out, "LAG") {
		t.Fatalf("describe table:\n%s", out)
	}

	mustSluice(t, n, "", "group", "seek", "workers", "--to", "earliest")
	if g := decode[groupJSON](t, mustSluice(t, n, "", "group", "describe", "workers", "--format", "json")); g.TotalLag != 6 {
		t.Fatalf("lag after seek to earliest = %d, want 6", g.TotalLag)
	}
	mustSluice(t, n, "", "group", "seek", "workers", "--to", "offset:2", "--topic", "jobs")
	if g := decode[groupJSON](t, mustSluice(t, n, "", "group", "describe", "workers", "--format", "json")); g.TotalLag != 2 {
		t.Fatalf("lag after seek to offset 2 = %d, want 2", g.TotalLag)
	}
	if got := jsonLines[consumed](t, mustSluice(t, n, "", "consume", "jobs", "-g", "workers", "--format", "json")); len(got) != 2 {
		t.Fatalf("after seek to offset 2 the group read %d records, want 2", len(got))
	}
	mustSluice(t, n, "", "group", "seek", "workers", "--to", "timestamp:0")
	if g := decode[groupJSON](t, mustSluice(t, n, "", "group", "describe", "workers", "--format", "json")); g.TotalLag != 6 {
		t.Fatalf("lag after seek to timestamp 0 = %d, want 6", g.TotalLag)
	}

	// An active member: seek and delete refuse with a clear message.
	member := startBackground(t, testnode.Binary(t), "consume", "jobs", "-g", "workers", "-f", "--brokers", n.Addr)
	testnode.WaitFor(t, 60*time.Second, func() bool {
		p := sluice(t, n, "", "group", "describe", "workers", "--format", "json")
		if p.code != 0 {
			return false
		}
		g := decode[groupJSON](t, p.stdout)
		return g.State == "Stable" && len(g.Members) == 1
	})
	p := sluice(t, n, "", "group", "seek", "workers", "--to", "earliest")
	if p.code != 1 || !strings.Contains(p.stderr, "active members") || !strings.Contains(p.stderr, "stop its consumers") {
		t.Fatalf("seek of an active group: exit %d %q", p.code, p.stderr)
	}
	p = sluice(t, n, "", "group", "delete", "workers")
	if p.code != 1 || !strings.Contains(p.stderr, "active members") {
		t.Fatalf("delete of an active group: exit %d %q", p.code, p.stderr)
	}
	if err := member.stop(t, 30*time.Second); err != nil {
		t.Fatalf("member did not stop cleanly on Ctrl-C: %v\n%s", err, member.stderr.String())
	}
	testnode.WaitFor(t, 30*time.Second, func() bool { return sluice(t, n, "", "group", "delete", "workers").code == 0 })
	if p := sluice(t, n, "", "group", "describe", "workers"); p.code != 1 || !strings.Contains(p.stderr, "does not exist") {
		t.Fatalf("describe after delete: exit %d %q %q", p.code, p.stdout, p.stderr)
	}
}
