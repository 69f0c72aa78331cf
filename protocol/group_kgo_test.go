package protocol

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/group"
)

// ledger records which member read each record value, to check that nothing is lost or
// read twice.
type ledger struct {
	mu    sync.Mutex
	reads map[string][]string // value -> members that read it
}

func newLedger() *ledger { return &ledger{reads: make(map[string][]string)} }

func (l *ledger) add(member string, recs []*kgo.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		l.reads[string(r.Value)] = append(l.reads[string(r.Value)], member)
	}
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reads)
}

// check fails unless values v-0..v-(n-1) were each read exactly once.
func (l *ledger) check(t *testing.T, n int) map[string]int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	perMember := make(map[string]int)
	var dups []string
	for i := range n {
		v := fmt.Sprintf("v-%d", i)
		readers := l.reads[v]
		switch {
		case len(readers) == 0:
			t.Errorf("record %s lost", v)
		case len(readers) > 1:
			dups = append(dups, fmt.Sprintf("%s by %v", v, readers))
		}
		for _, m := range readers {
			perMember[m]++
		}
	}
	if len(dups) > 0 {
		t.Errorf("%d records read twice: %v", len(dups), dups[:min(len(dups), 10)])
	}
	if len(l.reads) != n {
		t.Errorf("read %d distinct records, want %d", len(l.reads), n)
	}
	return perMember
}

// groupMember is one consumer of a group: it polls, records what it read, commits
// synchronously, and only then lets a rebalance through, so a handover loses and repeats
// nothing.
type groupMember struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	assigned map[string][]int32
	assigns  int // OnPartitionsAssigned calls
	revokes  int // OnPartitionsRevoked and OnPartitionsLost calls
}

func startMember(t *testing.T, addr, name, groupID, topic string, l *ledger, opts ...kgo.Opt) *groupMember {
	t.Helper()
	m := &groupMember{name: name, done: make(chan struct{}), assigned: make(map[string][]int32)}
	base := []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ClientID(name),
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(6 * time.Second),
		kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.RebalanceTimeout(20 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.assigns++
			for tp, ps := range a {
				m.assigned[tp] = append(m.assigned[tp], ps...)
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.lose(r) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.lose(r) }),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollRecords(ctx, 1000)
			if ctx.Err() != nil || fs.IsClientClosed() {
				cl.AllowRebalance()
				return
			}
			recs := fs.Records()
			if len(recs) > 0 {
				if err := cl.CommitRecords(ctx, recs...); err != nil {
					// Not committed: the records will be read again by whoever owns the
					// partition next; they are not counted here.
					cl.AllowRebalance()
					continue
				}
				l.add(name, recs)
			}
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(func() { m.stop() })
	return m
}

func (m *groupMember) lose(r map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revokes++
	for tp, ps := range r {
		kept := m.assigned[tp][:0]
		for _, p := range m.assigned[tp] {
			gone := false
			for _, q := range ps {
				gone = gone || p == q
			}
			if !gone {
				kept = append(kept, p)
			}
		}
		m.assigned[tp] = kept
	}
}

func (m *groupMember) partitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for _, ps := range m.assigned {
		out = append(out, ps...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (m *groupMember) counts() (assigns, revokes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.assigns, m.revokes
}

// stop closes the member gracefully: it leaves the group (unless static).
func (m *groupMember) stop() {
	m.cancel()
	<-m.done
	m.cl.Close()
}

// splitEvenly waits until members hold every partition of a topic with n partitions, each
// exactly once and each member some.
func splitEvenly(t *testing.T, n int, members ...*groupMember) {
	t.Helper()
	waitFor(t, 30*time.Second, "partitions split among the members", func() bool {
		seen := make(map[int32]int)
		for _, m := range members {
			ps := m.partitions()
			if len(ps) == 0 {
				return false
			}
			for _, p := range ps {
				seen[p]++
			}
		}
		if len(seen) != n {
			return false
		}
		for _, c := range seen {
			if c != 1 {
				return false
			}
		}
		return true
	})
}

func TestGroupMembersSplitPartitions(t *testing.T) {
	balancers := []struct {
		name string
		b    kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	}
	for _, bal := range balancers {
		for _, members := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/%d members", bal.name, members), func(t *testing.T) {
				ts := startServer(t, "")
				const topic, partitions, perRound = "split", 6, 300
				createTopic(t, ts.addr, topic, partitions, nil)
				producer := newClient(t, ts.addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
				l := newLedger()
				var ms []*groupMember
				for i := range members {
					ms = append(ms, startMember(t, ts.addr, fmt.Sprintf("m%d", i), "g", topic, l, kgo.Balancers(bal.b)))
				}
				splitEvenly(t, partitions, ms...)
				produceN(t, producer, topic, 0, perRound)
				waitFor(t, 30*time.Second, "the first round read", func() bool { return l.count() == perRound })

				// One member leaves gracefully; the others take its partitions.
				ms[0].stop()
				splitEvenly(t, partitions, ms[1:]...)
				produceN(t, producer, topic, perRound, perRound)
				waitFor(t, 30*time.Second, "the second round read", func() bool { return l.count() == 2*perRound })
				per := l.check(t, 2*perRound)
				for _, m := range ms {
					if per[m.name] == 0 {
						t.Errorf("member %s read nothing: %v", m.name, per)
					}
				}
			})
		}
	}
}

// cutProxy forwards TCP connections to a target until cut, which drops every connection
// at once as if the client's machine died.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			s.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, s); c.Close() }()
	}
}

// cutAll drops every connection and refuses new ones.
func (p *cutProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.cutAll()
	p.wg.Wait()
}

// A member that dies without leaving: its connections drop, it stops heartbeating, and
// the others take over its partitions once its session has expired (the session timeout
// the members set, 6 s), from its last commit.
func TestGroupMemberKilledOthersTakeOver(t *testing.T) {
	ts := startServer(t, "")
	const topic, partitions, perRound = "killed", 4, 200
	createTopic(t, ts.addr, topic, partitions, nil)
	producer := newClient(t, ts.addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	l := newLedger()

	// The victim reaches the server through a proxy (the coordinator's address is the
	// server's, so the proxy is its only way in: the seed and every broker address are
	// rewritten by the dialer).
	proxy := newCutProxy(t, ts.addr)
	victim := startMember(t, ts.addr, "victim", "g", topic, l,
		kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, proxy.addr())
		}))
	survivor := startMember(t, ts.addr, "survivor", "g", topic, l)
	splitEvenly(t, partitions, victim, survivor)
	produceN(t, producer, topic, 0, perRound)
	waitFor(t, 30*time.Second, "the first round read", func() bool { return l.count() == perRound })

	victimID, _ := victim.cl.GroupMetadata()
	if victimID == "" {
		t.Fatal("the victim has no member ID")
	}
	expired := func() bool {
		return ts.logs.FilterMessage("member session expired").FilterField(zap.String("member", victimID)).Len() > 0
	}
	proxy.cutAll()
	victim.cancel() // it reads nothing more
	// The deadline is generous: the session timeout, then a rebalance, on a loaded machine.
	waitFor(t, 90*time.Second, "the survivor owning every partition", func() bool {
		if len(survivor.partitions()) != partitions {
			return false
		}
		// Only the victim's session expiring frees its partitions: the coordinator
		// logs the expiry before it removes the member.
		if !expired() {
			t.Fatal("the survivor took the victim's partitions while the victim's session had not expired")
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := kadm.NewClient(newClient(t, ts.addr)).DescribeGroups(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	survivorID, _ := survivor.cl.GroupMetadata()
	if ms := gs["g"].Members; len(ms) != 1 || ms[0].MemberID != survivorID {
		t.Fatalf("group members after the takeover: %+v, want the survivor %s alone", ms, survivorID)
	}
	produceN(t, producer, topic, perRound, perRound)
	waitFor(t, 60*time.Second, "the second round read", func() bool { return l.count() == 2*perRound })
	l.check(t, 2*perRound)
}

func TestTwoGroupsEachReadEverything(t *testing.T) {
	ts := startServer(t, "")
	const topic, n = "fanout", 500
	createTopic(t, ts.addr, topic, 3, nil)
	produceN(t, newClient(t, ts.addr), topic, 0, n)
	a, b := newLedger(), newLedger()
	startMember(t, ts.addr, "a0", "group-a", topic, a)
	startMember(t, ts.addr, "a1", "group-a", topic, a)
	startMember(t, ts.addr, "b0", "group-b", topic, b)
	waitFor(t, 30*time.Second, "both groups read everything", func() bool { return a.count() == n && b.count() == n })
	a.check(t, n)
	b.check(t, n)
}

func TestStaticMemberRestartsWithoutRebalance(t *testing.T) {
	ts := startServer(t, "")
	const topic = "static"
	createTopic(t, ts.addr, topic, 4, nil)
	l := newLedger()
	a := startMember(t, ts.addr, "a", "g", topic, l, kgo.InstanceID("instance-a"))
	b := startMember(t, ts.addr, "b", "g", topic, l, kgo.InstanceID("instance-b"))
	splitEvenly(t, 4, a, b)
	aParts := a.partitions()
	bAssigns, bRevokes := b.counts()

	adm := kadm.NewClient(newClient(t, ts.addr))
	describe := func() kadm.DescribedGroup {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		return gs["g"]
	}
	before := describe()

	// a stops (a static member does not leave) and comes back under the same instance ID.
	a.stop()
	if d := describe(); d.State != "Stable" || len(d.Members) != 2 {
		t.Fatalf("group after a static member stopped: %s with %d members", d.State, len(d.Members))
	}
	a2 := startMember(t, ts.addr, "a2", "g", topic, l, kgo.InstanceID("instance-a"))
	waitFor(t, 30*time.Second, "the restarted member's assignment", func() bool { return len(a2.partitions()) == len(aParts) })
	if got := a2.partitions(); fmt.Sprint(got) != fmt.Sprint(aParts) {
		t.Fatalf("restarted member got %v, had %v", got, aParts)
	}
	after := describe()
	if after.State != "Stable" {
		t.Fatalf("state %s", after.State)
	}
	if ba, br := b.counts(); ba != bAssigns || br != bRevokes {
		t.Fatalf("the other member saw a rebalance: assigns %d->%d revokes %d->%d", bAssigns, ba, bRevokes, br)
	}
	var oldIDs, newIDs []string
	for _, m := range before.Members {
		oldIDs = append(oldIDs, m.MemberID)
	}
	for _, m := range after.Members {
		newIDs = append(newIDs, m.MemberID)
	}
	if strings.Join(oldIDs, ",") == strings.Join(newIDs, ",") {
		t.Fatalf("the restarted static member kept its old member ID: %v", newIDs)
	}
}

func TestCommittedOffsetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	const topic = "durable"
	createTopic(t, ts.addr, topic, 3, nil)
	produceN(t, newClient(t, ts.addr), topic, 0, 300)
	l := newLedger()
	m := startMember(t, ts.addr, "m", "g", topic, l)
	waitFor(t, 30*time.Second, "everything read", func() bool { return l.count() == 300 })
	m.stop()
	adm := kadm.NewClient(newClient(t, ts.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before, err := adm.FetchOffsets(ctx, "g")
	if err != nil || before.Error() != nil {
		t.Fatalf("fetch offsets: %v %v", err, before.Error())
	}
	ts.stop()

	ts = startServer(t, dir)
	adm = kadm.NewClient(newClient(t, ts.addr))
	var after kadm.OffsetResponses
	waitFor(t, 30*time.Second, "offsets after the restart", func() bool {
		after, err = adm.FetchOffsets(ctx, "g")
		return err == nil && after.Error() == nil
	})
	total := int64(0)
	for _, p := range []int32{0, 1, 2} {
		b, _ := before.Lookup(topic, p)
		a, _ := after.Lookup(topic, p)
		if a.At != b.At || a.At < 0 {
			t.Fatalf("partition %d: committed %d before the restart, %d after", p, b.At, a.At)
		}
		total += a.At
	}
	if total != 300 {
		t.Fatalf("committed offsets add up to %d, want 300", total)
	}
	// A consumer of the group resumes after the commits: it reads only new records.
	produceN(t, newClient(t, ts.addr), topic, 300, 30)
	l2 := newLedger()
	startMember(t, ts.addr, "m2", "g", topic, l2)
	waitFor(t, 30*time.Second, "the new records", func() bool { return l2.count() == 30 })
	for v := range l2.reads {
		var i int
		fmt.Sscanf(v, "v-%d", &i)
		if i < 300 {
			t.Fatalf("read %s again after the restart", v)
		}
	}
	if got := ts.srv.groups().Config().Partitions; got != group.DefaultPartitions {
		t.Fatalf("__consumer_offsets partitions %d", got)
	}
}
