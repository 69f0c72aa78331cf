package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// These tests run the commands against franz-go's in-memory fake broker, so the CLI is
// tested without a sluice server; e2e/ runs the same commands against real processes.

func fakeCluster(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, brokers, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	args = append(args, "--brokers", brokers)
	code := runWith(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func mustRun(t *testing.T, brokers, stdin string, args ...string) string {
	t.Helper()
	r := run(t, brokers, stdin, args...)
	if r.code != ExitOK {
		t.Fatalf("sluice %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func jsonLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, v)
	}
	return out
}

type consumedRecord struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Timestamp int64   `json:"timestamp"`
	Key       *string `json:"key"`
	Value     string  `json:"value"`
	Headers   []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"headers"`
}

func TestTopicCommands(t *testing.T) {
	b := fakeCluster(t)
	out := mustRun(t, b, "", "topic", "create", "orders", "-p", "3", "-r", "1", "--config", "retention.ms=3600000")
	if !strings.Contains(out, "created topic orders: 3 partitions, replication factor 1") {
		t.Fatalf("create output: %q", out)
	}
	r := run(t, b, "", "topic", "create", "orders", "-p", "3")
	if r.code != ExitError || !strings.Contains(r.stderr, `topic "orders" already exists`) || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("second create: exit %d, stderr %q; want exit 1 and one line saying it exists", r.code, r.stderr)
	}
	mustRun(t, b, "", "topic", "create", "orders", "--if-not-exists")

	var list []topicSummary
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "topic", "list", "--format", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Topic != "orders" || list[0].Partitions != 3 || list[0].ReplicationFactor != 1 {
		t.Fatalf("topic list = %+v", list)
	}
	table := mustRun(t, b, "", "topic", "list")
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "TOPIC") || !strings.HasPrefix(lines[1], "orders") {
		t.Fatalf("topic list table:\n%s", table)
	}

	mustRun(t, b, "a\nb\nc\n", "produce", "orders", "-p", "1")
	var desc topicDescription
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "topic", "describe", "orders", "--format", "json")), &desc); err != nil {
		t.Fatal(err)
	}
	if len(desc.PartitionList) != 3 {
		t.Fatalf("describe: %d partitions", len(desc.PartitionList))
	}
	p1 := desc.PartitionList[1]
	if p1.Partition != 1 || p1.LogStartOffset != 0 || p1.LogEndOffset != 3 || p1.Leader < 0 || len(p1.Replicas) != 1 || len(p1.ISR) != 1 {
		t.Fatalf("partition 1 = %+v, want offsets 0..3 with a leader", p1)
	}
	if desc.PartitionList[0].LogEndOffset != 0 {
		t.Fatalf("partition 0 end = %d, want 0", desc.PartitionList[0].LogEndOffset)
	}
	found := false
	for _, c := range desc.Configs {
		if c.Name == "retention.ms" && c.Value != nil && *c.Value == "3600000" {
			found = true
		}
	}
	if !found {
		t.Fatalf("describe configs lack retention.ms=3600000: %+v", desc.Configs)
	}
	text := mustRun(t, b, "", "topic", "describe", "orders")
	for _, want := range []string{"PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "LOG-END", "retention.ms"} {
		if !strings.Contains(text, want) {
			t.Fatalf("describe table lacks %q:\n%s", want, text)
		}
	}

	mustRun(t, b, "", "topic", "delete", "orders")
	r = run(t, b, "", "topic", "describe", "orders")
	if r.code != ExitError || !strings.Contains(r.stderr, `topic "orders" does not exist`) {
		t.Fatalf("describe after delete: exit %d stderr %q", r.code, r.stderr)
	}
	r = run(t, b, "", "topic", "delete", "orders")
	if r.code != ExitError || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("delete of a missing topic: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestProduceConsumeRoundTrip(t *testing.T) {
	b := fakeCluster(t)
	mustRun(t, b, "", "topic", "create", "events", "-p", "2")
	in := "k1=v1\nk2=v2\nno-key\nk1=v3=with-equals\n"
	out := mustRun(t, b, in, "produce", "events", "-K", "=", "-H", "src=test", "-H", "trace=1", "--format", "json")
	var sum produceSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("produce json %q: %v", out, err)
	}
	if sum.Records != 4 || sum.Failed != 0 || len(sum.Offsets) != 4 || sum.Offsets[0].Line != 1 {
		t.Fatalf("produce summary = %+v", sum)
	}
	recs := jsonLines[consumedRecord](t, mustRun(t, b, "", "consume", "events", "--format", "json"))
	if len(recs) != 4 {
		t.Fatalf("consumed %d records, want 4: %+v", len(recs), recs)
	}
	byValue := map[string]consumedRecord{}
	for _, r := range recs {
		byValue[r.Value] = r
		if len(r.Headers) != 2 || r.Headers[0].Key != "src" || r.Headers[0].Value != "test" || r.Headers[1].Key != "trace" {
			t.Fatalf("record headers = %+v", r.Headers)
		}
	}
	if r, ok := byValue["v3=with-equals"]; !ok || r.Key == nil || *r.Key != "k1" {
		t.Fatalf("record split at the first separator: %+v", byValue)
	}
	if r, ok := byValue["no-key"]; !ok || r.Key != nil {
		t.Fatalf("line without separator should have a null key: %+v", r)
	}
	// Same key, same partition, in order.
	if byValue["v1"].Partition != byValue["v3=with-equals"].Partition || byValue["v1"].Offset >= byValue["v3=with-equals"].Offset {
		t.Fatalf("records of key k1 not in one partition in order: %+v %+v", byValue["v1"], byValue["v3=with-equals"])
	}
	for _, o := range sum.Offsets {
		_ = o // every produced offset is consumed
		found := false
		for _, r := range recs {
			if r.Partition == o.Partition && r.Offset == o.Offset {
				found = true
			}
		}
		if !found {
			t.Fatalf("produced %+v not consumed", o)
		}
	}
	table := mustRun(t, b, "", "consume", "events")
	for _, want := range []string{"PARTITION", "OFFSET", "TIMESTAMP", "KEY", "VALUE", "HEADERS", "src=test,trace=1", "v3=with-equals"} {
		if !strings.Contains(table, want) {
			t.Fatalf("consume table lacks %q:\n%s", want, table)
		}
	}
}

func TestConsumeFromModes(t *testing.T) {
	b := fakeCluster(t)
	mustRun(t, b, "", "topic", "create", "log", "-p", "1")
	// Three batches with distinct timestamps.
	mustRun(t, b, "a0\na1\na2\n", "produce", "log")
	time.Sleep(5 * time.Millisecond) // distinct record timestamps, not a synchronization
	mid := time.Now().UnixMilli()
	time.Sleep(5 * time.Millisecond)
	mustRun(t, b, "b0\nb1\n", "produce", "log")

	values := func(args ...string) []string {
		t.Helper()
		var vs []string
		for _, r := range jsonLines[consumedRecord](t, mustRun(t, b, "", append([]string{"consume", "log", "--format", "json"}, args...)...)) {
			vs = append(vs, r.Value)
		}
		return vs
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"default is beginning", nil, "a0 a1 a2 b0 b1"},
		{"beginning", []string{"--from", "beginning"}, "a0 a1 a2 b0 b1"},
		{"end reads nothing", []string{"--from", "end"}, ""},
		{"offset", []string{"--from", "3"}, "b0 b1"},
		{"offset past end", []string{"--from", "99"}, ""},
		{"from end", []string{"--from", "-2"}, "b0 b1"},
		{"timestamp ms", []string{"--from", fmt.Sprintf("@%d", mid)}, "b0 b1"},
		{"timestamp rfc3339", []string{"--from", "@" + time.UnixMilli(mid).UTC().Format(time.RFC3339Nano)}, "b0 b1"},
		{"timestamp in the future", []string{"--from", fmt.Sprintf("@%d", time.Now().Add(time.Hour).UnixMilli())}, ""},
		{"count", []string{"-n", "2"}, "a0 a1"},
		{"count with offset", []string{"--from", "1", "-n", "3"}, "a1 a2 b0"},
		{"partition", []string{"-p", "0", "-n", "1"}, "a0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := strings.Join(values(c.args...), " "); got != c.want {
				t.Fatalf("consume %v = %q, want %q", c.args, got, c.want)
			}
		})
	}
	r := run(t, b, "", "consume", "log", "-p", "7")
	if r.code != ExitError || !strings.Contains(r.stderr, "no partition 7") {
		t.Fatalf("consume of a missing partition: exit %d %q", r.code, r.stderr)
	}
	r = run(t, b, "", "consume", "nope")
	if r.code != ExitError || !strings.Contains(r.stderr, `topic "nope" does not exist`) {
		t.Fatalf("consume of a missing topic: exit %d %q", r.code, r.stderr)
	}
	r = run(t, b, "", "consume", "log", "--from", "sideways")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--from") {
		t.Fatalf("bad --from: exit %d %q", r.code, r.stderr)
	}
}

func TestConsumeFollow(t *testing.T) {
	b := fakeCluster(t)
	mustRun(t, b, "", "topic", "create", "live", "-p", "1")
	mustRun(t, b, "old\n", "produce", "live")
	done := make(chan result, 1)
	go func() { done <- run(t, b, "", "consume", "live", "--from", "end", "-f", "-n", "2", "--format", "json") }()
	// Produce until the follower has seen two new records; it started at the end, so "old"
	// must not appear.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case r := <-done:
			if r.code != ExitOK {
				t.Fatalf("follow: exit %d %s", r.code, r.stderr)
			}
			recs := jsonLines[consumedRecord](t, r.stdout)
			if len(recs) != 2 {
				t.Fatalf("follow printed %d records: %s", len(recs), r.stdout)
			}
			for _, rec := range recs {
				if rec.Value != "new" {
					t.Fatalf("follow from end printed %q", rec.Value)
				}
			}
			return
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("follow did not finish")
			}
			mustRun(t, b, "new\n", "produce", "live")
		}
	}
}

func TestGroupCommands(t *testing.T) {
	b := fakeCluster(t)
	mustRun(t, b, "", "topic", "create", "jobs", "-p", "2")
	mustRun(t, b, "a\nb\nc\nd\ne\nf\n", "produce", "jobs")

	// A group consumer reads 4 records and commits them; the next run reads the rest.
	first := jsonLines[consumedRecord](t, mustRun(t, b, "", "consume", "jobs", "-g", "workers", "-n", "4", "--format", "json"))
	second := jsonLines[consumedRecord](t, mustRun(t, b, "", "consume", "jobs", "-g", "workers", "--format", "json"))
	if len(first) != 4 || len(second) != 2 {
		t.Fatalf("group runs read %d then %d records, want 4 then 2", len(first), len(second))
	}
	seen := map[string]bool{}
	for _, r := range append(first, second...) {
		key := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
		if seen[key] {
			t.Fatalf("record %s read twice", key)
		}
		seen[key] = true
	}

	var list []groupSummary
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "group", "list", "--format", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Group != "workers" || list[0].State != "Empty" {
		t.Fatalf("group list = %+v", list)
	}
	var desc groupOut
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "group", "describe", "workers", "--format", "json")), &desc); err != nil {
		t.Fatal(err)
	}
	if desc.State != "Empty" || len(desc.Partitions) != 2 || desc.TotalLag != 0 {
		t.Fatalf("describe = %+v", desc)
	}
	var committed int64
	for _, p := range desc.Partitions {
		empty := p.LogEnd == 0 && p.Committed == -1 // nothing to read, nothing committed
		if (p.Committed != p.LogEnd && !empty) || p.Lag != 0 {
			t.Fatalf("partition %+v: committed should equal log end", p)
		}
		committed += max(p.Committed, 0)
	}
	if committed != 6 {
		t.Fatalf("committed offsets sum to %d, want 6", committed)
	}

	// Seek back to the beginning: lag is everything again.
	seek := mustRun(t, b, "", "group", "seek", "workers", "--to", "earliest")
	if !strings.Contains(seek, "moved to beginning") {
		t.Fatalf("seek output: %s", seek)
	}
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "group", "describe", "workers", "--format", "json")), &desc); err != nil {
		t.Fatal(err)
	}
	if desc.TotalLag != 6 {
		t.Fatalf("lag after seek to earliest = %d, want 6", desc.TotalLag)
	}
	// Seek to an offset, for one topic, then read what is left.
	mustRun(t, b, "", "group", "seek", "workers", "--to", "offset:2", "--topic", "jobs")
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "group", "describe", "workers", "--format", "json")), &desc); err != nil {
		t.Fatal(err)
	}
	for _, p := range desc.Partitions {
		if want := min(int64(2), p.LogEnd); p.Committed != want {
			t.Fatalf("after seek to offset 2: %+v", p)
		}
	}
	// A dry run changes nothing.
	mustRun(t, b, "", "group", "seek", "workers", "--to", "latest", "--dry-run")
	var again groupOut
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "group", "describe", "workers", "--format", "json")), &again); err != nil {
		t.Fatal(err)
	}
	if again.TotalLag != desc.TotalLag {
		t.Fatalf("dry run changed lag from %d to %d", desc.TotalLag, again.TotalLag)
	}

	// While a member is active, seek and delete refuse.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	member := make(chan result, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var out, errOut bytes.Buffer
		code := runWith(ctx, []string{"consume", "jobs", "-g", "workers", "-f", "--brokers", b}, strings.NewReader(""), &out, &errOut)
		member <- result{code, out.String(), errOut.String()}
	}()
	waitFor(t, 20*time.Second, func() bool {
		var d groupOut
		r := run(t, b, "", "group", "describe", "workers", "--format", "json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &d) == nil && len(d.Members) == 1 && d.State == "Stable"
	})
	r := run(t, b, "", "group", "seek", "workers", "--to", "earliest")
	if r.code != ExitError || !strings.Contains(r.stderr, "1 active members") || !strings.Contains(r.stderr, "stop its consumers") {
		t.Fatalf("seek of an active group: exit %d %q", r.code, r.stderr)
	}
	r = run(t, b, "", "group", "delete", "workers")
	if r.code != ExitError || !strings.Contains(r.stderr, "still has active members") {
		t.Fatalf("delete of an active group: exit %d %q", r.code, r.stderr)
	}
	cancel()
	wg.Wait()
	if m := <-member; m.code != ExitOK {
		t.Fatalf("member: exit %d %s", m.code, m.stderr)
	}
	waitFor(t, 20*time.Second, func() bool {
		return run(t, b, "", "group", "delete", "workers").code == ExitOK
	})
	r = run(t, b, "", "group", "describe", "workers")
	if r.code != ExitError || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("describe after delete: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestClusterInfo(t *testing.T) {
	b := fakeCluster(t, kfake.NumBrokers(3))
	mustRun(t, b, "", "topic", "create", "spread", "-p", "6", "-r", "3")
	var out clusterOut
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "cluster", "info", "--format", "json")), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Nodes) != 3 || out.Controller < 0 {
		t.Fatalf("cluster info = %+v", out)
	}
	leaders := 0
	for _, n := range out.Nodes {
		if !n.Alive {
			t.Fatalf("node %+v not alive", n)
		}
		leaders += n.Leaders
	}
	if leaders != 6 || len(out.Partitions) != 6 {
		t.Fatalf("leaders %d, partitions %d, want 6", leaders, len(out.Partitions))
	}
	text := mustRun(t, b, "", "cluster", "info")
	if !strings.Contains(text, "NODE") || !strings.Contains(text, "--admin") {
		t.Fatalf("cluster info table:\n%s", text)
	}
	// An unreachable admin endpoint is reported, not fatal.
	text = mustRun(t, b, "", "cluster", "info", "--admin", closedAddr(t))
	if !strings.Contains(text, "unavailable") {
		t.Fatalf("cluster info with a dead admin endpoint:\n%s", text)
	}
}

func TestBench(t *testing.T) {
	b := fakeCluster(t)
	for _, mode := range []string{"produce", "consume"} {
		var stderr string
		args := []string{"bench", mode, "-n", "2000", "--format", "json"}
		if mode == "produce" {
			args = append(args, "-s", "100")
		}
		r := run(t, b, "", args...)
		stderr = r.stderr
		if r.code != ExitOK {
			t.Fatalf("bench %s: exit %d %s", mode, r.code, stderr)
		}
		var s benchSummary
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("bench %s json %q: %v", mode, r.stdout, err)
		}
		if s.Mode != mode || s.Records != 2000 || s.Bytes != 200000 || s.RecordsPerSec <= 0 {
			t.Fatalf("bench %s summary = %+v", mode, s)
		}
		if mode == "produce" && (s.Latency == nil || s.Latency.P50 <= 0 || s.Latency.P99 < s.Latency.P50 || s.Latency.P999 < s.Latency.P99) {
			t.Fatalf("bench produce latency = %+v", s.Latency)
		}
	}
	r := run(t, b, "", "bench", "e2e", "-d", "1500ms", "--rate", "500", "--format", "json")
	if r.code != ExitOK {
		t.Fatalf("bench e2e: exit %d %s", r.code, r.stderr)
	}
	var s benchSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatal(err)
	}
	// 500 records/s for 1.5 s, open loop.
	if s.Mode != "e2e" || s.Records < 700 || s.Records > 800 || s.Missing != 0 || s.Latency == nil || s.AckLatency == nil {
		t.Fatalf("bench e2e summary = %+v", s)
	}
	if !strings.Contains(r.stderr, "records/s") {
		t.Fatalf("bench e2e printed no progress line: %q", r.stderr)
	}
	table := mustRun(t, b, "", "bench", "produce", "-n", "100")
	for _, want := range []string{"RECORDS/S", "MB/S", "LATENCY", "p50", "p99", "p999"} {
		if !strings.Contains(table, want) {
			t.Fatalf("bench table lacks %q:\n%s", want, table)
		}
	}
	r = run(t, b, "", "bench", "consume", "-t", "empty-topic")
	if r.code != ExitError {
		t.Fatalf("bench consume of a missing topic: exit %d", r.code)
	}
}

func TestErrors(t *testing.T) {
	dead := closedAddr(t)
	for _, args := range [][]string{
		{"topic", "list"},
		{"produce", "t"},
		{"consume", "t"},
		{"group", "list"},
		{"cluster", "info"},
	} {
		start := time.Now()
		r := run(t, dead, "x\n", append(args, "--timeout", "3s")...)
		if r.code != ExitError || !strings.Contains(r.stderr, "cannot reach brokers "+dead) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v against a dead broker: exit %d stderr %q; want exit 1 and one line", args, r.code, r.stderr)
		}
		if time.Since(start) > 15*time.Second {
			t.Errorf("%v took %v to fail", args, time.Since(start))
		}
	}
	b := fakeCluster(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "create"}, "missing NAME"},
		{[]string{"topic", "create", "a", "b"}, "expects one NAME"},
		{[]string{"topic", "create", "a", "--config", "x"}, "not key=value"},
		{[]string{"topic", "list", "--format", "xml"}, "--format must be table or json"},
		{[]string{"topic", "list", "--nope"}, "unknown flag"},
		{[]string{"produce", "t", "--acks", "2"}, "--acks"},
		{[]string{"consume", "t", "-g", "g", "-p", "0"}, "do not go together"},
		{[]string{"group", "seek", "g"}, "--to is required"},
		{[]string{"group", "seek", "g", "--to", "sideways"}, "--to"},
		{[]string{"bench", "e2e", "--rate", "0"}, "needs a --rate"},
		{[]string{"nonsense"}, "unknown command"},
	} {
		r := run(t, b, "", c.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d stderr %q; want exit 2 mentioning %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if out := mustRun(t, b, "", "help"); !strings.Contains(out, "topic create") || !strings.Contains(out, "bench e2e") {
		t.Errorf("help lacks commands:\n%s", out)
	}
	if out := mustRun(t, b, "", "consume", "--help"); !strings.Contains(out, "--from") || !strings.Contains(out, "--brokers") {
		t.Errorf("consume --help:\n%s", out)
	}
}

func TestBrokersFromEnv(t *testing.T) {
	b := fakeCluster(t, kfake.AllowAutoTopicCreation())
	t.Setenv("SLUICE_BROKERS", b)
	var out, errOut bytes.Buffer
	if code := runWith(context.Background(), []string{"topic", "list"}, strings.NewReader(""), &out, &errOut); code != ExitOK {
		t.Fatalf("topic list with SLUICE_BROKERS: exit %d %s", code, errOut.String())
	}
	// Produce with kgo directly, read with the CLI: the CLI speaks plain Kafka.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "plain", Value: []byte{0xff, 0xfe}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := runWith(context.Background(), []string{"consume", "plain", "--format", "json"}, strings.NewReader(""), &out, &errOut); code != ExitOK {
		t.Fatalf("consume: exit %d %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), `"value":{"base64":"//4="}`) {
		t.Fatalf("binary value not base64 in JSON: %s", out.String())
	}
}

// closedAddr is an address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func waitFor(t *testing.T, timeout time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClusterInfoAdmin(t *testing.T) {
	b := fakeCluster(t)
	mustRun(t, b, "", "topic", "create", "orders", "-p", "2")
	doc := `{
	  "node_id": 1, "cluster_id": "c1", "metadata_version": 42,
	  "controller": {"leader": 1, "term": 2, "state": "Leader", "commit_index": 40, "applied_index": 40},
	  "nodes": [{"node_id": 1, "kafka_addr": "127.0.0.1:9092", "raft_addr": "127.0.0.1:9093", "alive": true, "controller": true, "leads": 2},
	            {"node_id": 2, "kafka_addr": "127.0.0.1:19092", "raft_addr": "127.0.0.1:19093", "alive": false, "controller": false, "leads": 0}],
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 3], "leader": 1, "term": 3, "local": true, "state": "Leader", "ready": true,
	              "last_index": 120, "commit_index": 120, "applied_index": 119, "partitions": 2}],
	  "partitions": [{"topic": "orders", "partition": 0, "group": "g1-2-3", "leader": 1, "leader_epoch": 3, "replicas": [1, 2, 3], "isr": [1, 2, 3]},
	                 {"topic": "orders", "partition": 1, "group": "g1-2-3", "leader": 1, "leader_epoch": 3, "replicas": [1, 2, 3], "isr": [1, 2, 3]}]
	}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/cluster" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, doc)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	out := mustRun(t, b, "", "cluster", "info", "--admin", addr)
	for _, want := range []string{
		"Raft view from " + addr + " (node 1, metadata version 42)",
		"CONTROLLER-LEADER  1 (term 2)",
		"127.0.0.1:19093  no",
		"g1-2-3  1       3     1,2,3    2           Leader       yes    120     119",
		"GROUP", // the partition table gains the group column
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("cluster info --admin lacks %q:\n%s", want, out)
		}
	}
	var js clusterOut
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "cluster", "info", "--admin", addr, "--format", "json")), &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Partitions) != 2 || js.Partitions[0].Group != "g1-2-3" || !strings.Contains(string(js.Admin), `"g1-2-3"`) {
		t.Fatalf("cluster info json: %+v", js)
	}
	// A non-JSON answer is reported.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>") }))
	defer bad.Close()
	out = mustRun(t, b, "", "cluster", "info", "--admin", bad.URL)
	if !strings.Contains(out, "unavailable") || !strings.Contains(out, "not JSON") {
		t.Fatalf("cluster info with a non-JSON admin answer:\n%s", out)
	}
}

func TestProduceOptions(t *testing.T) {
	b := fakeCluster(t)
	mustRun(t, b, "", "topic", "create", "opts", "-p", "3")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"gzip acks 1", []string{"-z", "gzip", "--acks", "1"}},
		{"zstd", []string{"-z", "zstd"}},
		{"lz4 linger 0", []string{"-z", "lz4", "--linger", "0"}},
		{"snappy", []string{"-z", "snappy"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := mustRun(t, b, "x1\nx2\n", append([]string{"produce", "opts", "-p", "2", "-v"}, c.args...)...)
			if !strings.Contains(out, "line 1: partition 2 offset") || !strings.Contains(out, "line 2: partition 2 offset") || !strings.Contains(out, "produced 2 records") {
				t.Fatalf("produce %v:\n%s", c.args, out)
			}
		})
	}
	// acks=0: no offsets come back, but the records arrive.
	out := mustRun(t, b, "fire\nforget\n", "produce", "opts", "-p", "1", "--acks", "0")
	if !strings.Contains(out, "acks=0") {
		t.Fatalf("produce acks=0:\n%s", out)
	}
	waitFor(t, 10*time.Second, func() bool {
		r := run(t, b, "", "consume", "opts", "-p", "1", "--format", "json")
		return r.code == 0 && len(jsonLines[consumedRecord](t, r.stdout)) == 2
	})
	recs := jsonLines[consumedRecord](t, mustRun(t, b, "", "consume", "opts", "-p", "2", "--format", "json"))
	if len(recs) != 8 {
		t.Fatalf("partition 2 holds %d records, want 8 (2 per codec)", len(recs))
	}
	// A partition that does not exist fails the records, with a non-zero exit.
	r := run(t, b, "y\n", "produce", "opts", "-p", "7", "--timeout", "3s")
	if r.code != ExitError || !strings.Contains(r.stderr, "1 of 1 records failed") {
		t.Fatalf("produce to partition 7: exit %d %q", r.code, r.stderr)
	}
}

// removeDocs are the admin views of a cluster of nodes 1, 2, 4 and node 3 being removed,
// in the order the removal goes: both groups on node 3 copy to another node, switch
// members, and then node 3 leaves. An empty document is an endpoint answering 500.
var removeDocs = []string{
	`{"node_id": 1, "metadata_version": 50, "controller": {"leader": 1, "term": 2},
	  "nodes": [{"node_id": 1, "alive": true}, {"node_id": 2, "alive": true},
	            {"node_id": 3, "alive": true, "removing": true}, {"node_id": 4, "alive": true}],
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 4], "joining": [4], "removing": [3], "leader": 1},
	             {"name": "g1-2-4", "members": [1, 2, 4], "leader": 2},
	             {"name": "g2-3-4", "members": [2, 4, 1], "joining": [1], "removing": [3], "leader": 2}]}`,
	`{"node_id": 1, "metadata_version": 51, "controller": {"leader": 1, "term": 2},
	  "nodes": [{"node_id": 1, "alive": true}, {"node_id": 2, "alive": true},
	            {"node_id": 3, "alive": true, "removing": true}, {"node_id": 4, "alive": true}],
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 4], "removing": [3], "leader": 1},
	             {"name": "g1-2-4", "members": [1, 2, 4], "leader": 2},
	             {"name": "g2-3-4", "members": [2, 4, 1], "joining": [1], "removing": [3], "leader": 2}]}`,
	``,
	`{"node_id": 1, "metadata_version": 52, "controller": {"leader": 1, "term": 2},
	  "nodes": [{"node_id": 1, "alive": true}, {"node_id": 2, "alive": true},
	            {"node_id": 3, "alive": true, "removing": true}, {"node_id": 4, "alive": true}],
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 4], "leader": 1},
	             {"name": "g1-2-4", "members": [1, 2, 4], "leader": 2},
	             {"name": "g2-3-4", "members": [2, 4, 1], "removing": [3], "leader": 2}]}`,
	`{"node_id": 1, "metadata_version": 53, "controller": {"leader": 1, "term": 2},
	  "nodes": [{"node_id": 1, "alive": true}, {"node_id": 2, "alive": true},
	            {"node_id": 3, "alive": true, "removing": true}, {"node_id": 4, "alive": true}],
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 4], "leader": 1},
	             {"name": "g1-2-4", "members": [1, 2, 4], "leader": 2},
	             {"name": "g2-3-4", "members": [2, 4, 1], "leader": 2}]}`,
	`{"node_id": 1, "metadata_version": 54, "controller": {"leader": 1, "term": 2},
	  "nodes": [{"node_id": 1, "alive": true}, {"node_id": 2, "alive": true}, {"node_id": 4, "alive": true}],
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 4], "leader": 1},
	             {"name": "g1-2-4", "members": [1, 2, 4], "leader": 2},
	             {"name": "g2-3-4", "members": [2, 4, 1], "leader": 2}]}`,
}

// fakeAdmin serves POST /v1/cluster/nodes/{id}/remove (202 for node 3, 404 for 9, 409 for
// 2) and GET /v1/cluster from docs, one step further at each GET, staying on the last.
func fakeAdmin(t *testing.T, docs []string) (addr string, posts func() int) {
	t.Helper()
	return fakeAdminRebalance(t, docs, http.StatusOK, `{"status": "balanced", "moves": {}}`)
}

// fakeAdminRebalance is fakeAdmin that also answers POST /v1/cluster/rebalance with code
// and body; posts counts the POSTs of both kinds.
func fakeAdminRebalance(t *testing.T, docs []string, code int, body string) (addr string, posts func() int) {
	t.Helper()
	var mu sync.Mutex
	step, nposts := 0, 0
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/cluster/nodes/{id}/remove", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		nposts++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch id := r.PathValue("id"); id {
		case "3":
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, `{"node_id": 3, "status": "removing", "message": "node 3 is being removed"}`)
		case "9":
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"node_id": 9, "error": "node 9 is not in the cluster: replication: unknown node"}`)
		default:
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintf(w, `{"node_id": %s, "error": "cannot remove node %s: some of its data groups have no other node to move to; add a node first"}`, id, id)
		}
	})
	mux.HandleFunc("POST /v1/cluster/rebalance", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		nposts++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	})
	mux.HandleFunc("GET /v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		doc := docs[min(step, len(docs)-1)]
		step++
		mu.Unlock()
		if doc == "" {
			http.Error(w, "controller busy", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, doc)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() int {
		mu.Lock()
		defer mu.Unlock()
		return nposts
	}
}

func TestClusterRemoveNode(t *testing.T) {
	old := movePollInterval
	movePollInterval = 5 * time.Millisecond
	t.Cleanup(func() { movePollInterval = old })
	const brokers = "127.0.0.1:1" // remove-node talks to the admin endpoint only

	// Without --wait: the removal is started and the command says how to follow it.
	addr, _ := fakeAdmin(t, removeDocs)
	out := mustRun(t, brokers, "", "cluster", "remove-node", "3", "--admin", addr)
	if !strings.Contains(out, "Node 3 is being removed") || !strings.Contains(out, "remove-node 3 --wait --admin "+addr) {
		t.Fatalf("remove-node 3:\n%s", out)
	}

	// With --wait: one line per change of a group on node 3, in order, until it has left.
	addr, posts := fakeAdmin(t, removeDocs)
	out = mustRun(t, brokers, "", "cluster", "remove-node", "3", "--admin", addr, "--wait")
	want := []string{
		"node 3: removing; waiting for its data groups to move (up to 10m0s)",
		"g1-2-3: moving from 3 to 4 (copying)",
		"g2-3-4: moving from 3 to 1 (copying)",
		"g1-2-3: moving off 3 (copied; changing members to 1,2,4)",
		"cannot read the cluster's state (retrying): GET http://" + addr + "/v1/cluster: 500 Internal Server Error: controller busy",
		"g2-3-4: moving off 3 (copied; changing members to 2,4,1)",
		"g1-2-3: moved off node 3 (members 1,2,4)",
		"g2-3-4: moved off node 3 (members 2,4,1)",
		"node 3 has left the cluster (2 data groups moved) after ",
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("remove-node 3 --wait printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Fatalf("line %d is %q, want %q; all:\n%s", i+1, lines[i], w, out)
		}
	}
	if posts() != 1 {
		t.Fatalf("%d POSTs, want 1", posts())
	}

	// JSON: the result alone on stdout, the progress on stderr.
	addr, _ = fakeAdmin(t, removeDocs)
	r := run(t, brokers, "", "cluster", "remove-node", "3", "--admin", addr, "--wait", "--format", "json")
	var res removeOut
	if r.code != ExitOK || json.Unmarshal([]byte(r.stdout), &res) != nil {
		t.Fatalf("remove-node --format json: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if res.NodeID != 3 || res.Status != "removed" || strings.Join(res.Groups, ",") != "g1-2-3,g2-3-4" || res.Seconds <= 0 {
		t.Fatalf("remove-node json result %+v", res)
	}
	if !strings.Contains(r.stderr, "g2-3-4: moving from 3 to 1 (copying)") {
		t.Fatalf("remove-node json: progress not on stderr: %q", r.stderr)
	}

	// --timeout bounds the wait; the error names what is still moving.
	addr, _ = fakeAdmin(t, removeDocs[:2])
	r = run(t, brokers, "", "cluster", "remove-node", "3", "--admin", addr, "--wait", "--timeout", "300ms")
	if r.code != ExitError || !strings.Contains(r.stderr, "node 3 is still in the cluster after") ||
		!strings.Contains(r.stderr, "2 data groups not moved yet (g1-2-3 moving off 3 (copied; changing members to 1,2,4); g2-3-4 moving from 3 to 1 (copying))") {
		t.Fatalf("remove-node --wait past its timeout: exit %d stderr %q", r.code, r.stderr)
	}

	// The endpoint's refusals are errors with its message; nothing is waited for.
	for _, tc := range []struct{ id, want string }{
		{"9", "remove node 9: 404 Not Found: node 9 is not in the cluster"},
		{"2", "remove node 2: 409 Conflict: cannot remove node 2: some of its data groups have no other node to move to; add a node first"},
	} {
		r := run(t, brokers, "", "cluster", "remove-node", tc.id, "--admin", addr, "--wait")
		if r.code != ExitError || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("remove-node %s: exit %d stdout %q stderr %q, want exit 1 with %q", tc.id, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	// A server without the endpoint.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	if r := run(t, brokers, "", "cluster", "remove-node", "3", "--admin", plain.URL); r.code != ExitError || !strings.Contains(r.stderr, "no node removal") {
		t.Errorf("remove-node against a server without it: exit %d %q", r.code, r.stderr)
	}
	if r := run(t, brokers, "", "cluster", "remove-node", "3", "--admin", closedAddr(t)); r.code != ExitError || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("remove-node against a closed port: exit %d %q", r.code, r.stderr)
	}

	// Wrong command lines.
	t.Setenv("SLUICE_ADMIN", "")
	checkUsage(t, brokers, []usageCase{
		{[]string{"cluster", "remove-node", "--admin", addr}, "expects one node ID"},
		{[]string{"cluster", "remove-node", "3", "4", "--admin", addr}, "expects one node ID"},
		{[]string{"cluster", "remove-node", "three", "--admin", addr}, `node ID "three" is not a non-negative integer`},
		{[]string{"cluster", "remove-node", "-1", "--admin", addr}, "unknown shorthand flag"},
		{[]string{"cluster", "remove-node", "3"}, "--admin is required"},
	})
	if posts() != 1 {
		t.Fatalf("wrong command lines reached the endpoint: %d POSTs", posts())
	}
	if out := mustRun(t, brokers, "", "cluster", "remove-node", "--help"); !strings.Contains(out, "--wait") || !strings.Contains(out, "default 10m0s") {
		t.Fatalf("remove-node --help:\n%s", out)
	}
}

// usageCase is a wrong command line and what its error must mention.
type usageCase struct {
	args []string
	want string
}

// checkUsage runs wrong command lines: each must exit 2 with its error.
func checkUsage(t *testing.T, brokers string, cases []usageCase) {
	t.Helper()
	for _, c := range cases {
		r := run(t, brokers, "", c.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d stderr %q; want exit 2 mentioning %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

// printAdminCluster shows moving groups and removing nodes.
func TestPrintAdminClusterMoving(t *testing.T) {
	var b bytes.Buffer
	if err := printAdminCluster(&b, "h:9644", json.RawMessage(removeDocs[0])); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"NODE  KAFKA  RAFT  ALIVE  CONTROLLER  LEADS  REMOVING\n",
		"3     -      -     yes    -           0      yes\n",
		"4     -      -     yes    -           0      -\n",
		"GROUP   LEADER  TERM  MEMBERS  PARTITIONS  LOCAL-STATE  READY  COMMIT  APPLIED  MOVING\n",
		"g1-2-3  1       0     1,2,4    0           -            -      -       -        joining 4, removing 3\n",
		"g1-2-4  2       0     1,2,4    0           -            -      -       -        -\n",
		"g2-3-4  2       0     2,4,1    0           -            -      -       -        joining 1, removing 3\n",
		"Removing node 3: 2 data groups moving.",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("printAdminCluster lacks %q:\n%s", want, out)
		}
	}
	// Once the moves are done, neither column nor the summary is shown.
	b.Reset()
	if err := printAdminCluster(&b, "h:9644", json.RawMessage(removeDocs[len(removeDocs)-1])); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Contains(out, "MOVING") || strings.Contains(out, "REMOVING") || strings.Contains(out, "moving") {
		t.Fatalf("printAdminCluster after the moves:\n%s", out)
	}
}

// cluster info marks a node the admin view says is being removed.
func TestClusterInfoRemovingNode(t *testing.T) {
	b := fakeCluster(t)
	doc := `{"node_id": 0, "controller": {"leader": 0},
	  "nodes": [{"node_id": 0, "alive": true, "removing": true}],
	  "groups": [{"name": "g0-1", "members": [0, 1], "joining": [1], "removing": [0], "leader": 0}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, doc) }))
	defer srv.Close()
	out := mustRun(t, b, "", "cluster", "info", "--admin", srv.URL)
	for _, want := range []string{"up, removing", "joining 1, removing 0", "Removing node 0: 1 data groups moving."} {
		if !strings.Contains(out, want) {
			t.Fatalf("cluster info lacks %q:\n%s", want, out)
		}
	}
	var js clusterOut
	if err := json.Unmarshal([]byte(mustRun(t, b, "", "cluster", "info", "--admin", srv.URL, "--format", "json")), &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Nodes) != 1 || !js.Nodes[0].Removing {
		t.Fatalf("cluster info json nodes: %+v", js.Nodes)
	}
}

// rebalanceDocs are the views of a cluster in which node 4 joined with no data group and a
// rebalance moves g1-2-3 from node 3 and g2-3-1 from node 1 to it: before the call, each
// move copying, a failed read, then each done in turn.
var rebalanceDocs = []string{
	`{"node_id": 1, "controller": {"leader": 1},
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 3]}, {"name": "g2-3-1", "members": [2, 3, 1]},
	             {"name": "g3-1-2", "members": [3, 1, 2]}]}`,
	`{"node_id": 1, "controller": {"leader": 1},
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 4], "joining": [4], "removing": [3]},
	             {"name": "g2-3-1", "members": [2, 3, 4], "joining": [4], "removing": [1]},
	             {"name": "g3-1-2", "members": [3, 1, 2]}]}`,
	``,
	`{"node_id": 1, "controller": {"leader": 1},
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 4], "removing": [3]},
	             {"name": "g2-3-1", "members": [2, 3, 4], "joining": [4], "removing": [1]},
	             {"name": "g3-1-2", "members": [3, 1, 2]}]}`,
	`{"node_id": 1, "controller": {"leader": 1},
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 4]},
	             {"name": "g2-3-1", "members": [2, 3, 4], "removing": [1]},
	             {"name": "g3-1-2", "members": [3, 1, 2]}]}`,
	`{"node_id": 1, "controller": {"leader": 1},
	  "groups": [{"name": "g1-2-3", "members": [1, 2, 4]}, {"name": "g2-3-4", "members": [2, 3, 4]},
	             {"name": "g3-1-2", "members": [3, 1, 2]}]}`,
}

const rebalanceMoves = `{"status": "rebalancing", "moves": {"g2-3-1": [2, 3, 4], "g1-2-3": [1, 2, 4]}, "message": "2 data groups are moving"}`

// wantLines checks out line by line against prefixes.
func wantLines(t *testing.T, what, out string, want []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%s printed %d lines, want %d:\n%s", what, len(lines), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Fatalf("%s: line %d is %q, want %q; all:\n%s", what, i+1, lines[i], w, out)
		}
	}
}

func TestClusterRebalance(t *testing.T) {
	old := movePollInterval
	movePollInterval = 5 * time.Millisecond
	t.Cleanup(func() { movePollInterval = old })
	const brokers = "127.0.0.1:1" // rebalance talks to the admin endpoint only
	moved := []string{
		"Rebalancing: 2 data groups moving.",
		"g1-2-3: moving 3 -> 4 (members 1,2,4)",
		"g2-3-1: moving 1 -> 4 (members 2,3,4)",
	}

	// Without --wait: the moves started, the old members from the view before the call.
	addr, posts := fakeAdminRebalance(t, rebalanceDocs, http.StatusAccepted, rebalanceMoves)
	out := mustRun(t, brokers, "", "cluster", "rebalance", "--admin", addr)
	wantLines(t, "rebalance", out, append(moved, "The moves go on in the background; follow them with 'sluice cluster info --admin "+addr+"'"))
	if posts() != 1 {
		t.Fatalf("%d POSTs, want 1", posts())
	}

	// The view before the call unreadable, or already showing the moves: the moving groups'
	// joining and removing members name the nodes. No view readable: the new members only.
	for _, docs := range [][]string{append([]string{""}, rebalanceDocs[1:]...), rebalanceDocs[1:]} {
		addr, _ = fakeAdminRebalance(t, docs, http.StatusAccepted, rebalanceMoves)
		if out := mustRun(t, brokers, "", "cluster", "rebalance", "--admin", addr); !strings.HasPrefix(out, strings.Join(moved, "\n")+"\n") {
			t.Fatalf("rebalance with the view before %.30q:\n%s", docs[0], out)
		}
	}
	addr, _ = fakeAdminRebalance(t, []string{""}, http.StatusAccepted, rebalanceMoves)
	out = mustRun(t, brokers, "", "cluster", "rebalance", "--admin", addr)
	if !strings.Contains(out, "g1-2-3: moving to members 1,2,4\ng2-3-1: moving to members 2,3,4\n") {
		t.Fatalf("rebalance with no view readable:\n%s", out)
	}

	// With --wait: each moved group's progress until both have their new members.
	addr, posts = fakeAdminRebalance(t, rebalanceDocs, http.StatusAccepted, rebalanceMoves)
	out = mustRun(t, brokers, "", "cluster", "rebalance", "--admin", addr, "--wait")
	wantLines(t, "rebalance --wait", out, append(moved,
		"waiting for the moves to be done (up to 10m0s)",
		"g1-2-3: moving from 3 to 4 (copying)",
		"g2-3-1: moving from 1 to 4 (copying)",
		"cannot read the cluster's state (retrying): GET http://"+addr+"/v1/cluster: 500 Internal Server Error: controller busy",
		"g1-2-3: moving off 3 (copied; changing members to 1,2,4)",
		"g2-3-1: moving off 1 (copied; changing members to 2,3,4)",
		"g1-2-3: moved (members 1,2,4)",
		"g2-3-1: moved",
		"rebalanced: 2 data groups moved after ",
	))
	if posts() != 1 {
		t.Fatalf("%d POSTs, want 1", posts())
	}

	// JSON: the result alone on stdout, the progress on stderr.
	addr, _ = fakeAdminRebalance(t, rebalanceDocs, http.StatusAccepted, rebalanceMoves)
	r := run(t, brokers, "", "cluster", "rebalance", "--admin", addr, "--wait", "--format", "json")
	var res rebalanceOut
	if r.code != ExitOK || json.Unmarshal([]byte(r.stdout), &res) != nil {
		t.Fatalf("rebalance --format json: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if js, _ := json.Marshal(res.Moves); res.Status != "rebalanced" || res.Seconds <= 0 ||
		string(js) != `[{"group":"g1-2-3","from":[3],"to":[4],"members":[1,2,4]},{"group":"g2-3-1","from":[1],"to":[4],"members":[2,3,4]}]` {
		t.Fatalf("rebalance json result %+v", res)
	}
	if !strings.Contains(r.stderr, "g2-3-1: moving from 1 to 4 (copying)") || !strings.Contains(r.stderr, "g1-2-3: moving 3 -> 4") {
		t.Fatalf("rebalance json: progress not on stderr: %q", r.stderr)
	}
	addr, _ = fakeAdminRebalance(t, rebalanceDocs, http.StatusAccepted, rebalanceMoves)
	r = run(t, brokers, "", "cluster", "rebalance", "--admin", addr, "--format", "json")
	res = rebalanceOut{}
	if r.code != ExitOK || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Status != "rebalancing" || len(res.Moves) != 2 ||
		res.Message != "2 data groups are moving" || r.stderr != "" {
		t.Fatalf("rebalance --format json without --wait: exit %d %+v\nstdout: %s\nstderr: %s", r.code, res, r.stdout, r.stderr)
	}

	// Nothing to move.
	addr, _ = fakeAdminRebalance(t, rebalanceDocs, http.StatusOK, `{"status": "balanced", "moves": {}, "message": "nothing to move"}`)
	if out := mustRun(t, brokers, "", "cluster", "rebalance", "--admin", addr, "--wait"); !strings.HasPrefix(out, "The data groups are already balanced") || strings.Count(out, "\n") != 1 {
		t.Fatalf("rebalance when balanced:\n%s", out)
	}
	if out := mustRun(t, brokers, "", "cluster", "rebalance", "--admin", addr, "--format", "json"); strings.TrimSpace(out) != `{"status":"balanced","moves":[],"message":"nothing to move"}` {
		t.Fatalf("rebalance --format json when balanced: %s", out)
	}

	// --timeout bounds the wait; a view that does not show the moves yet (it lags the
	// controller's) is waiting, not done.
	addr, _ = fakeAdminRebalance(t, rebalanceDocs[:1], http.StatusAccepted, rebalanceMoves)
	r = run(t, brokers, "", "cluster", "rebalance", "--admin", addr, "--wait", "--timeout", "300ms")
	if r.code != ExitError || !strings.Contains(r.stderr, "the rebalance is not done after") ||
		!strings.Contains(r.stderr, "2 data groups not moved yet (g1-2-3 waiting to move to members 1,2,4; g2-3-1 waiting to move to members 2,3,4)") ||
		!strings.Contains(r.stdout, "g1-2-3: waiting to move to members 1,2,4\n") {
		t.Fatalf("rebalance --wait past its timeout: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// The endpoint's refusals are errors with its message; nothing is waited for.
	for _, tc := range []struct {
		code       int
		body, want string
	}{
		{http.StatusServiceUnavailable, `{"error": "rebalance the data groups: the controller did not confirm it"}`, "rebalance: 503 Service Unavailable: rebalance the data groups: the controller did not confirm it"},
		{http.StatusBadRequest, `{"error": "this node is not part of a Raft cluster: a single node has no data groups to spread"}`, "rebalance: 400 Bad Request: this node is not part of a Raft cluster"},
		{http.StatusInternalServerError, "oops", "rebalance: 500 Internal Server Error: oops"},
		{http.StatusAccepted, "not json", "rebalance: 202 Accepted: not json"},
	} {
		addr, _ := fakeAdminRebalance(t, rebalanceDocs, tc.code, tc.body)
		r := run(t, brokers, "", "cluster", "rebalance", "--admin", addr, "--wait")
		if r.code != ExitError || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("rebalance answered %d %s: exit %d stdout %q stderr %q, want exit 1 with %q", tc.code, tc.body, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	if r := run(t, brokers, "", "cluster", "rebalance", "--admin", plain.URL); r.code != ExitError || !strings.Contains(r.stderr, "no rebalancing (an older server?)") {
		t.Errorf("rebalance against a server without it: exit %d %q", r.code, r.stderr)
	}
	if r := run(t, brokers, "", "cluster", "rebalance", "--admin", closedAddr(t)); r.code != ExitError || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("rebalance against a closed port: exit %d %q", r.code, r.stderr)
	}

	// Wrong command lines never reach the endpoint.
	t.Setenv("SLUICE_ADMIN", "")
	addr, posts = fakeAdminRebalance(t, rebalanceDocs, http.StatusAccepted, rebalanceMoves)
	checkUsage(t, brokers, []usageCase{
		{[]string{"cluster", "rebalance", "3", "--admin", addr}, "takes no arguments"},
		{[]string{"cluster", "rebalance"}, "--admin is required"},
	})
	if posts() != 0 {
		t.Fatalf("wrong command lines reached the endpoint: %d POSTs", posts())
	}
	if out := mustRun(t, brokers, "", "cluster", "rebalance", "--help"); !strings.Contains(out, "--wait") || !strings.Contains(out, "default 10m0s") {
		t.Fatalf("rebalance --help:\n%s", out)
	}
}

// cluster elect-leaders lists the partitions that changed leader and those that could not,
// counts those that needed no election, and exits 1 when one failed.
func TestClusterElectLeaders(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	b := c.ListenAddrs()[0]
	mustRun(t, b, "", "topic", "create", "orders", "-p", "3", "-r", "1")

	// The fake elects every partition; the one asked for three answers its own outcomes.
	out := mustRun(t, b, "", "cluster", "elect-leaders", "orders")
	if !strings.Contains(out, "3 partitions now led by their preferred replica, 0 led by it already, 0 failed") || strings.Count(out, " elected") != 3 {
		t.Fatalf("elect-leaders output:\n%s", out)
	}
	var (
		mu    sync.Mutex // the fake answers on its own goroutine
		asked []int32
	)
	c.ControlKey(int16(kmsg.ElectLeaders), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ElectLeadersRequest)
		resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
		mu.Lock()
		defer mu.Unlock()
		asked = nil
		for _, rt := range req.Topics {
			st := kmsg.NewElectLeadersResponseTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				asked = append(asked, p)
				sp := kmsg.NewElectLeadersResponseTopicPartition()
				sp.Partition = p
				switch p {
				case 1:
					sp.ErrorCode = kerr.ElectionNotNeeded.Code
				case 2:
					sp.ErrorCode = kerr.PreferredLeaderNotAvailable.Code
					msg := "group g2-3-1: node 2 is down"
					sp.ErrorMessage = &msg
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	r := run(t, b, "", "cluster", "elect-leaders", "orders")
	mu.Lock()
	gotAsked := asked
	mu.Unlock()
	if r.code != ExitError || !slices.Equal(gotAsked, []int32{0, 1, 2}) ||
		!strings.Contains(r.stdout, "1 partitions now led by their preferred replica, 1 led by it already, 1 failed") ||
		!strings.Contains(r.stdout, "PREFERRED_LEADER_NOT_AVAILABLE") || !strings.Contains(r.stdout, "node 2 is down") ||
		!strings.Contains(r.stderr, "1 partitions did not get their preferred leader") {
		t.Fatalf("elect-leaders with a failure (asked %v): exit %d\nstdout:\n%s\nstderr:\n%s", gotAsked, r.code, r.stdout, r.stderr)
	}
	r = run(t, b, "", "cluster", "elect-leaders", "orders", "--format", "json")
	var got electOut
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("elect-leaders JSON %q: %v", r.stdout, err)
	}
	if r.code != ExitError || len(got.Elected) != 1 || got.Elected[0] != (electPartition{Topic: "orders", Partition: 0}) ||
		got.NotNeeded != 1 || len(got.Failed) != 1 || got.Failed[0].Partition != 2 || !strings.Contains(got.Failed[0].Error, "node 2 is down") {
		t.Fatalf("elect-leaders JSON: exit %d, %+v", r.code, got)
	}
	if r := run(t, b, "", "cluster", "elect-leaders", "missing"); r.code != ExitError || !strings.Contains(r.stderr, "missing") {
		t.Fatalf("elect-leaders of an unknown topic: exit %d, stderr %q", r.code, r.stderr)
	}
}
