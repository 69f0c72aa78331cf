package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/testnode"
)

// Consumer groups while the cluster changes: three real `sluice serve` processes, franz-go
// members that commit after every poll, idempotent acks=all producers and a checker
// (cluster_group_helpers_test.go, cluster_harness_test.go).

// kill -9 of the node coordinating a group while its members consume and commit: the group
// moves to the new leader of its __consumer_offsets partition, committed offsets are
// intact, the members go on from their commits (nothing lost, nothing before an
// acknowledged commit read twice), and the group moves back when the node returns. Then
// the node is killed again while a new member joins.
func TestClusterGroupCoordinatorKill(t *testing.T) {
	h := startClusterHarness(t)
	const topic, partitions = "work", 6
	h.createTopic(topic, partitions)
	groupID := h.pickGroup("workers")
	ch := newChecker()
	l := h.startLoad(topic, partitions, 1, 32, ch)
	g := h.startGroupRun(groupID, topic)
	for range 3 {
		g.addMember()
	}
	h.waitFor(60*time.Second, "the group reading and committing", func() error {
		if _, err := g.committedSince(time.Time{}, partitions); err != nil {
			return err
		}
		if n := g.readCount(); n < 1000 {
			return fmt.Errorf("%d records read", n)
		}
		return nil
	})
	coord := h.waitCoordinator(groupID, nil, 30*time.Second)
	t.Logf("%s coordinates %s (%s partition %d)", coord.Name, groupID, group.Topic, group.Partition(groupID, offsetsPartitions))

	if err := coord.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now() // the process is gone: later commits are the next coordinator's
	next := h.waitCoordinator(groupID, coord, 30*time.Second)
	found := time.Since(killed)
	first := h.waitForCommitAfter(g, killed, 60*time.Second)
	all := g.waitCommittedSince(killed, partitions, "every partition committed after the kill")
	t.Logf("after the kill of %s: %s named coordinator in %v, first commit acknowledged in %v, every partition committed in %v",
		coord.Name, next.Name, found.Round(time.Millisecond), first.Sub(killed).Round(time.Millisecond), all.Sub(killed).Round(time.Millisecond))
	g.checkCommitted("after the coordinator kill")
	h.checkDescribe(g, next, 3, partitions)

	// The node comes back; its __consumer_offsets partitions, and so the group, move back
	// to it once it has caught up.
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitCoordinatedBy(groupID, coord, 90*time.Second)
	back := time.Now()
	g.waitCommittedSince(back, partitions, "every partition committed after the return")
	g.checkCommitted("after the return")

	// Killed again as a fourth member joins: the rebalance it starts is under way, or
	// just recorded, when the coordinator goes; the group settles at the next one.
	g.addMember()
	if err := coord.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = time.Now()
	next = h.waitCoordinator(groupID, coord, 30*time.Second)
	h.checkDescribe(g, next, 4, partitions)
	all = g.waitCommittedSince(killed, partitions, "every partition committed after the kill during a rebalance")
	t.Logf("killed %s as a member joined: every partition committed %v after the kill, four members", coord.Name, all.Sub(killed).Round(time.Millisecond))
	g.checkCommitted("after the kill during a rebalance")

	l.stopLoad()
	h.waitFor(60*time.Second, "the group reading every acknowledged record", func() error {
		return g.readPast(ch.ackedEnds())
	})
	g.stop()
	g.verify(ch)
	h.verify(topic, partitions, ch)
}

// waitForCommitAfter waits for the first commit acknowledged after t and returns when it was.
func (h *clusterHarness) waitForCommitAfter(g *groupRun, t time.Time, timeout time.Duration) time.Time {
	h.t.Helper()
	var at time.Time
	h.waitFor(timeout, "a commit acknowledged after "+t.Format("15:04:05.000"), func() error {
		var ok bool
		if at, ok = g.firstCommitSince(t); !ok {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	return at
}

// checkDescribe runs `sluice group describe` through a node other than the coordinator and
// checks the coordinator-side state: Stable, the coordinator named, the members sharing
// every partition, and committed offsets at least those acknowledged before it ran.
func (h *clusterHarness) checkDescribe(g *groupRun, coord *testnode.Node, members int, partitions int32) {
	h.t.Helper()
	var via *testnode.Node
	for _, n := range h.running() {
		if n != coord {
			via = n
			break
		}
	}
	type described struct {
		State       string `json:"state"`
		Coordinator int32  `json:"coordinator"`
		CoordAddr   string `json:"coordinator_address"`
		Members     []struct {
			MemberID   string             `json:"member_id"`
			Assignment map[string][]int32 `json:"assignment"`
		} `json:"members"`
		Partitions []struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Member    string `json:"member"`
			Committed int64  `json:"committed"`
		} `json:"partitions"`
	}
	var d described
	var acked map[int32]int64
	var owner map[int32]string // partition -> member
	h.waitFor(60*time.Second, "sluice group describe "+g.group+" through "+via.Name, func() error {
		acked = g.lastCommits()
		p := runProg(h.t, 60*time.Second, "", testnode.Binary(h.t), "group", "describe", g.group, "--format", "json", "--brokers", via.Addr)
		if p.code != 0 {
			return fmt.Errorf("exit %d: %s", p.code, p.stderr)
		}
		d = described{}
		if err := json.Unmarshal([]byte(p.stdout), &d); err != nil {
			return fmt.Errorf("%v: %s", err, p.stdout)
		}
		if d.State != "Stable" || len(d.Members) != members {
			return fmt.Errorf("state %s with %d members", d.State, len(d.Members))
		}
		owner = map[int32]string{}
		for _, m := range d.Members {
			for _, p := range m.Assignment[g.topic] {
				if o, dup := owner[p]; dup {
					h.t.Fatalf("partition %d assigned to %s and %s", p, o, m.MemberID)
				}
				owner[p] = m.MemberID
			}
		}
		// A cooperative rebalance is two: the first leaves the partitions that move
		// unassigned while their old owners give them up, and the group is Stable
		// in between; the second hands them out.
		if len(owner) != int(partitions) {
			return fmt.Errorf("the members are assigned %d of %d partitions: %+v", len(owner), partitions, d.Members)
		}
		return nil
	})
	if d.Coordinator != int32(coord.ID) || d.CoordAddr != coord.Addr {
		h.t.Fatalf("describe names coordinator %d at %s, want %s (%d at %s)", d.Coordinator, d.CoordAddr, coord.Name, coord.ID, coord.Addr)
	}
	seen := 0
	for _, p := range d.Partitions {
		if p.Topic != g.topic {
			continue
		}
		seen++
		if p.Member != owner[p.Partition] {
			h.t.Fatalf("partition %d shown with member %q, assigned to %q", p.Partition, p.Member, owner[p.Partition])
		}
		if p.Committed < acked[p.Partition] {
			h.t.Fatalf("partition %d shown committed at %d, below the acknowledged commit %d", p.Partition, p.Committed, acked[p.Partition])
		}
	}
	if seen != int(partitions) {
		h.t.Fatalf("describe shows %d of %d partitions", seen, partitions)
	}
	h.t.Logf("sluice group describe through %s: %s, coordinator %d at %s, %d members", via.Name, d.State, d.Coordinator, d.CoordAddr, len(d.Members))
}

// SIGSTOP of the node coordinating a group for longer than the election timeout (long
// enough for the others to think it dead), then SIGCONT: meanwhile the group moves, a member
// joins and the generation moves on; the old coordinator, back, answers NOT_COORDINATOR and
// accepts nothing from the old generation, neither then nor once the group moves back to it:
// no two coordinators accept one group's commits with different generations.
func TestClusterGroupCoordinatorPause(t *testing.T) {
	h := startClusterHarness(t)
	const topic, partitions = "paused-work", 6
	h.createTopic(topic, partitions)
	groupID := h.pickGroup("pausers")
	ch := newChecker()
	l := h.startLoad(topic, partitions, 1, 32, ch)
	g := h.startGroupRun(groupID, topic)
	first := g.addMember()
	g.addMember()
	g.waitCommittedSince(time.Time{}, partitions, "the group reading and committing")
	coord := h.waitCoordinator(groupID, nil, 30*time.Second)
	staleMember, staleGen := first.cl.GroupMetadata()
	t.Logf("%s coordinates %s; member %s in generation %d", coord.Name, groupID, staleMember, staleGen)

	if err := coord.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	next := h.waitCoordinator(groupID, coord, 30*time.Second)
	all := g.waitCommittedSince(paused, partitions, "every partition committed while "+coord.Name+" is stopped")
	t.Logf("%s stopped: %s coordinates, every partition committed %v after the stop", coord.Name, next.Name, all.Sub(paused).Round(time.Millisecond))
	// A member joins: the group rebalances at the new coordinator, to a later generation.
	g.addMember()
	h.waitFor(60*time.Second, "three members past generation "+fmt.Sprint(staleGen), func() error {
		for _, gen := range g.generations() {
			if gen <= staleGen {
				return fmt.Errorf("generations %v", g.generations())
			}
		}
		return nil
	})
	rebalanced := time.Now()
	g.waitCommittedSince(rebalanced, partitions, "every partition committed after the rebalance")
	g.checkCommitted("while "+coord.Name+" is stopped", coord)
	// The others declare it dead, so it is not handed its partitions back at once.
	h.waitFor(30*time.Second, coord.Name+" dead in the others' view", func() error {
		for _, n := range h.running() {
			if n == coord {
				continue
			}
			if alive, err := h.aliveIn(n, coord.ID); err != nil || alive {
				return fmt.Errorf("%s: alive %v (%v)", n.Name, alive, err)
			}
		}
		return nil
	})
	if err := coord.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	t.Logf("%s resumed after %v", coord.Name, resumed.Sub(paused).Round(time.Millisecond))

	// Back, it answers NOT_COORDINATOR, and never accepts the old generation.
	var hbCodes, commitCodes []int16
	h.waitFor(20*time.Second, coord.Name+" answering NOT_COORDINATOR", func() error {
		hb, commit, err := staleProbe(coord, groupID, staleMember, staleGen, topic)
		if err != nil {
			return err
		}
		hbCodes, commitCodes = append(hbCodes, hb), append(commitCodes, commit)
		if hb == 0 || commit == 0 {
			t.Fatalf("%s accepted generation %d after the group moved on: heartbeat %v, commit %v", coord.Name, staleGen, kerr.ErrorForCode(hb), kerr.ErrorForCode(commit))
		}
		if hb != kerr.NotCoordinator.Code || commit != kerr.NotCoordinator.Code {
			return fmt.Errorf("heartbeat %v, commit %v", kerr.ErrorForCode(hb), kerr.ErrorForCode(commit))
		}
		return nil
	})
	t.Logf("%s answered the old generation with heartbeat codes %v and commit codes %v, NOT_COORDINATOR %v after SIGCONT",
		coord.Name, hbCodes, commitCodes, time.Since(resumed).Round(time.Millisecond))
	g.waitCommittedSince(resumed, partitions, "every partition committed after the resume")

	// Once it has been back a while its partitions, and the group, return to it: it has
	// reloaded the group, so the old generation is still refused.
	h.waitCoordinatedBy(groupID, coord, 90*time.Second)
	back := time.Now()
	g.waitCommittedSince(back, partitions, "every partition committed after the return")
	hb, commit, err := staleProbe(coord, groupID, staleMember, staleGen, topic)
	if err != nil {
		t.Fatal(err)
	}
	if hb == 0 || commit == 0 {
		t.Fatalf("%s, coordinator again, accepted generation %d: heartbeat %v, commit %v", coord.Name, staleGen, kerr.ErrorForCode(hb), kerr.ErrorForCode(commit))
	}
	t.Logf("%s, coordinator again, answers the old generation with heartbeat %v, commit %v", coord.Name, kerr.ErrorForCode(hb), kerr.ErrorForCode(commit))
	g.checkCommitted("after the return")

	l.stopLoad()
	h.waitFor(60*time.Second, "the group reading every acknowledged record", func() error {
		return g.readPast(ch.ackedEnds())
	})
	g.stop()
	g.verify(ch)
	h.checkOffsetsLog(groupID)
	h.verify(topic, partitions, ch)
}

// All three nodes killed (kill -9) and restarted while a group consumes and commits: the
// committed offsets are intact and the same members, still running, resume from them.
// Snapshots are frequent, so __consumer_offsets is cut back to a snapshot and replayed
// before the coordinator loads it.
func TestClusterGroupFullRestart(t *testing.T) {
	h := startClusterHarness(t, "--raft-snapshot-threshold", "200", "--raft-snapshot-interval", "500ms", "--raft-trailing-logs", "100")
	const topic, partitions, groupID = "replay", 4, "replayers"
	h.createTopic(topic, partitions)
	ch := newChecker()
	l := h.startLoad(topic, partitions, 1, 32, ch)
	g := h.startGroupRun(groupID, topic)
	g.addMember()
	g.addMember()
	h.waitFor(60*time.Second, "the group reading and committing", func() error {
		if n := g.readCount(); n < 5000 {
			return fmt.Errorf("%d records read", n)
		}
		_, err := g.committedSince(time.Time{}, partitions)
		return err
	})
	// Commits are held from just before the kill until the committed offsets have been
	// read back, so that the commits in flight at the kill are the last ones made.
	release := g.holdCommits()
	var wg sync.WaitGroup
	for _, n := range h.c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Kill(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	killed := time.Now()
	before, sent := g.lastCommits(), g.attemptedCommits()
	for _, n := range h.c.Nodes {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.c.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	coord := h.waitCoordinator(groupID, nil, 60*time.Second)
	// What the members committed before the kill, and nothing else: at least the last
	// acknowledged commit, at most the last one sent (a commit made durable just before
	// the kill may never have been acknowledged). Members commit only what they read, and
	// what they read after the restart starts at a committed offset.
	got := g.checkCommitted("after the full restart")
	for p, c := range before {
		if got[p] < c || got[p] > sent[p] {
			t.Fatalf("%s-%d: committed %d after the restart; %d acknowledged and %d sent before the kill", topic, p, got[p], c, sent[p])
		}
	}
	readable := time.Since(killed)
	release()
	first := h.waitForCommitAfter(g, killed, 60*time.Second)
	all := g.waitCommittedSince(killed, partitions, "every partition committed after the restart")
	t.Logf("restarted all three (%s coordinates): committed offsets read back %v after the kill; commits, held until then, acknowledged again %v after it, for every partition %v after it",
		coord.Name, readable.Round(time.Millisecond), first.Sub(killed).Round(time.Millisecond), all.Sub(killed).Round(time.Millisecond))
	l.stopLoad()
	h.waitFor(60*time.Second, "the group reading every acknowledged record", func() error {
		return g.readPast(ch.ackedEnds())
	})
	g.stop()
	g.verify(ch)
	h.verify(topic, partitions, ch)
}

// A kcat -G (librdkafka) member with auto-commit goes on after a kill -9 of its group's
// coordinator: it reads every record produced after the kill, nothing it had committed
// again, and its commits reach the new coordinator; a new member then resumes from them.
func TestClusterGroupKcat(t *testing.T) {
	kcat := requireKcat(t)
	h := startClusterHarness(t)
	const topic, partitions = "kc-work", 3
	h.createTopic(topic, partitions)
	groupID := h.pickGroup("kcat")
	brokers := strings.Join(h.c.Brokers(), ",")
	member := startBackground(t, kcat, "-b", brokers, "-G", groupID, "-o", "beginning", "-q", "-u", "-f", `%p %o %s\n`,
		"-X", "session.timeout.ms=6000", "-X", "auto.commit.interval.ms=200", "-X", "topic.metadata.refresh.interval.ms=1000", topic)
	cl := h.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(prefix string, n int) {
		t.Helper()
		var rs []*kgo.Record
		for i := range n {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	read := func() map[string]int {
		out := map[string]int{}
		for _, l := range parseKcat(t, member.stdout.String()) {
			out[l.value]++
		}
		return out
	}
	waitRead := func(prefix string, n int) {
		t.Helper()
		h.waitFor(60*time.Second, fmt.Sprintf("kcat reading the %d %s records", n, prefix), func() error {
			if member.exited() {
				t.Fatalf("kcat exited: %v\n%s", member.err, member.stderr.String())
			}
			got := read()
			for i := range n {
				if got[fmt.Sprintf("%s-%d", prefix, i)] == 0 {
					return fmt.Errorf("%s-%d not read", prefix, i)
				}
			}
			return nil
		})
	}
	waitCommitted := func(what string) map[int32]int64 {
		t.Helper()
		ends := map[int32]int64{}
		for _, recs := range h.readAll(topic, partitions) {
			for _, r := range recs {
				ends[r.partition] = max(ends[r.partition], r.offset+1)
			}
		}
		var got map[int32]int64
		h.waitFor(60*time.Second, "kcat's commits "+what, func() error {
			var err error
			if got, err = h.fetchCommitted(groupID, topic); err != nil {
				return err
			}
			for p, end := range ends {
				if got[p] != end {
					return fmt.Errorf("partition %d committed at %d, end %d", p, got[p], end)
				}
			}
			return nil
		})
		return got
	}
	produce("a", 300)
	waitRead("a", 300)
	waitCommitted("before the kill")

	coord := h.waitCoordinator(groupID, nil, 30*time.Second)
	if err := coord.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	next := h.waitCoordinator(groupID, coord, 30*time.Second)
	produce("b", 300)
	produced := time.Since(killed)
	waitRead("b", 300)
	readAt := time.Since(killed)
	waitCommitted("at the new coordinator " + next.Name)
	t.Logf("after the kill of %s (%s coordinates now): the records produced by %v, read by kcat by %v, committed by %v",
		coord.Name, next.Name, produced.Round(time.Millisecond), readAt.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	for v, n := range read() {
		if n > 1 && strings.HasPrefix(v, "a-") {
			t.Fatalf("%s, committed before the kill, read %d times", v, n)
		}
	}
	if err := member.stop(t, 30*time.Second); err != nil {
		t.Logf("kcat exit: %v", err)
	}

	// A new member resumes from the commits the first made at the new coordinator.
	produce("c", 6)
	p := runProg(t, 90*time.Second, "", kcat, "-b", brokers, "-G", groupID, "-e", "-q", "-f", `%p %o %s\n`, topic)
	if p.code != 0 {
		t.Fatalf("resumed kcat: exit %d %s", p.code, p.stderr)
	}
	var got []string
	for _, l := range parseKcat(t, p.stdout) {
		got = append(got, l.value)
	}
	sort.Strings(got)
	if want := "c-0 c-1 c-2 c-3 c-4 c-5"; strings.Join(got, " ") != want {
		t.Fatalf("resumed kcat read %v, want only %s", got, want)
	}
}
