package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testnode"
)

// consumed is one record of `sluice consume --format json`.
type consumed struct {
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

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%q is not JSON: %v", s, err)
	}
	return v
}

func values(rs []consumed) string {
	var vs []string
	for _, r := range rs {
		vs = append(vs, r.Value)
	}
	return strings.Join(vs, " ")
}

// TestCLITopics: sluice topic create/list/describe/delete against a real server.
func TestCLITopics(t *testing.T) {
	n := startNode(t)
	out := mustSluice(t, n, "", "topic", "create", "orders", "-p", "3", "--config", "retention.ms=86400000")
	if !strings.Contains(out, "created topic orders: 3 partitions") {
		t.Fatalf("create: %q", out)
	}
	if p := sluice(t, n, "", "topic", "create", "orders"); p.code != 1 || !strings.Contains(p.stderr, `topic "orders" already exists`) {
		t.Fatalf("create again: exit %d %q", p.code, p.stderr)
	}
	list := decode[[]struct {
		Topic      string `json:"topic"`
		ID         string `json:"id"`
		Partitions int    `json:"partitions"`
	}](t, mustSluice(t, n, "", "topic", "list", "--format", "json"))
	if len(list) != 1 || list[0].Topic != "orders" || list[0].Partitions != 3 || list[0].ID == "" {
		t.Fatalf("topic list = %+v (want orders, 3 partitions, an ID)", list)
	}
	if out := mustSluice(t, n, "", "topic", "list"); !strings.Contains(out, "orders") || !strings.HasPrefix(out, "TOPIC") {
		t.Fatalf("topic list table:\n%s", out)
	}
	mustSluice(t, n, "a\nb\n", "produce", "orders", "-p", "2")
	desc := decode[struct {
		Partitions []struct {
			Partition      int32   `json:"partition"`
			Leader         int32   `json:"leader"`
			LeaderEpoch    int32   `json:"leader_epoch"`
			Replicas       []int32 `json:"replicas"`
			ISR            []int32 `json:"isr"`
			LogStartOffset int64   `json:"log_start_offset"`
			LogEndOffset   int64   `json:"log_end_offset"`
			Error          string  `json:"error"`
		} `json:"partition_details"`
		Configs []struct {
			Name  string  `json:"name"`
			Value *string `json:"value"`
		} `json:"configs"`
	}](t, mustSluice(t, n, "", "topic", "describe", "orders", "--format", "json"))
	if len(desc.Partitions) != 3 {
		t.Fatalf("describe: %+v", desc)
	}
	for _, p := range desc.Partitions {
		wantEnd := int64(0)
		if p.Partition == 2 {
			wantEnd = 2
		}
		if p.Leader < 0 || p.LeaderEpoch < 0 || len(p.Replicas) != 1 || len(p.ISR) != 1 || p.LogStartOffset != 0 || p.LogEndOffset != wantEnd || p.Error != "" {
			t.Fatalf("partition %+v, want a leader, one replica in sync, offsets 0..%d", p, wantEnd)
		}
	}
	retention := ""
	for _, c := range desc.Configs {
		if c.Name == "retention.ms" && c.Value != nil {
			retention = *c.Value
		}
	}
	if retention != "86400000" {
		t.Fatalf("describe shows retention.ms=%q, want 86400000: %+v", retention, desc.Configs)
	}
	if out := mustSluice(t, n, "", "topic", "describe", "orders"); !strings.Contains(out, "LOG-END") || !strings.Contains(out, "retention.ms") {
		t.Fatalf("describe table:\n%s", out)
	}
	mustSluice(t, n, "", "topic", "delete", "orders")
	if p := sluice(t, n, "", "topic", "describe", "orders"); p.code != 1 || !strings.Contains(p.stderr, `topic "orders" does not exist`) {
		t.Fatalf("describe after delete: exit %d %q", p.code, p.stderr)
	}
}

// TestCLIProduceConsume: produce from stdin with keys and headers, consume with every
// --from mode, follow, and the errors a user meets.
func TestCLIProduceConsume(t *testing.T) {
	n := startNode(t)
	mustSluice(t, n, "", "topic", "create", "events", "-p", "2")
	sum := decode[struct {
		Records int `json:"records"`
		Failed  int `json:"failed"`
		Offsets []struct {
			Line      int   `json:"line"`
			Partition int32 `json:"partition"`
			Offset    int64 `json:"offset"`
		} `json:"offsets"`
	}](t, mustSluice(t, n, "user1=login\nuser2=login\nuser1=logout=now\nnokey\n", "produce", "events", "-K", "=", "-H", "src=e2e", "-H", "v=2", "--format", "json"))
	if sum.Records != 4 || sum.Failed != 0 || len(sum.Offsets) != 4 {
		t.Fatalf("produce summary: %+v", sum)
	}
	recs := jsonLines[consumed](t, mustSluice(t, n, "", "consume", "events", "--format", "json"))
	if len(recs) != 4 {
		t.Fatalf("consumed %d records: %+v", len(recs), recs)
	}
	at := map[[2]int64]consumed{}
	for _, r := range recs {
		at[[2]int64{int64(r.Partition), r.Offset}] = r
		if len(r.Headers) != 2 || r.Headers[0].Key != "src" || r.Headers[0].Value != "e2e" || r.Headers[1].Key != "v" || r.Headers[1].Value != "2" {
			t.Fatalf("headers of %+v", r)
		}
	}
	wantKV := []struct{ key, value string }{{"user1", "login"}, {"user2", "login"}, {"user1", "logout=now"}, {"", "nokey"}}
	for i, o := range sum.Offsets {
		r, ok := at[[2]int64{int64(o.Partition), o.Offset}]
		if !ok {
			t.Fatalf("line %d acknowledged at %d/%d but not consumed", o.Line, o.Partition, o.Offset)
		}
		key := ""
		if r.Key != nil {
			key = *r.Key
		}
		if key != wantKV[i].key || r.Value != wantKV[i].value || (wantKV[i].key == "" && r.Key != nil) {
			t.Fatalf("line %d: consumed key %v value %q, want %q %q", o.Line, r.Key, r.Value, wantKV[i].key, wantKV[i].value)
		}
	}
	table := mustSluice(t, n, "", "consume", "events")
	for _, want := range []string{"PARTITION", "OFFSET", "TIMESTAMP", "KEY", "VALUE", "HEADERS", "logout=now", "src=e2e,v=2"} {
		if !strings.Contains(table, want) {
			t.Fatalf("consume table lacks %q:\n%s", want, table)
		}
	}

	// --from modes on one partition: two produce runs, a time between them.
	mustSluice(t, n, "", "topic", "create", "modes", "-p", "1")
	mustSluice(t, n, "a0\na1\na2\n", "produce", "modes")
	first := jsonLines[consumed](t, mustSluice(t, n, "", "consume", "modes", "--format", "json"))
	testnode.WaitFor(t, 5*time.Second, func() bool { return time.Now().UnixMilli() > first[2].Timestamp })
	mid := time.Now().UnixMilli()
	testnode.WaitFor(t, 5*time.Second, func() bool { return time.Now().UnixMilli() > mid })
	mustSluice(t, n, "b0\nb1\n", "produce", "modes")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "a0 a1 a2 b0 b1"},
		{[]string{"--from", "beginning"}, "a0 a1 a2 b0 b1"},
		{[]string{"--from", "end"}, ""},
		{[]string{"--from", "3"}, "b0 b1"},
		{[]string{"--from", "-2"}, "b0 b1"},
		{[]string{"--from", fmt.Sprintf("@%d", mid)}, "b0 b1"},
		{[]string{"--from", "@" + time.UnixMilli(mid).UTC().Format(time.RFC3339Nano)}, "b0 b1"},
		{[]string{"--from", fmt.Sprintf("@%d", first[0].Timestamp)}, "a0 a1 a2 b0 b1"},
		{[]string{"--from", fmt.Sprintf("@%d", time.Now().Add(time.Hour).UnixMilli())}, ""},
		{[]string{"-n", "2"}, "a0 a1"},
		{[]string{"--from", "1", "-n", "3"}, "a1 a2 b0"},
		{[]string{"-p", "0", "--from", "4"}, "b1"},
	} {
		got := values(jsonLines[consumed](t, mustSluice(t, n, "", append([]string{"consume", "modes", "--format", "json"}, c.args...)...)))
		if got != c.want {
			t.Errorf("consume %v = %q, want %q", c.args, got, c.want)
		}
	}

	// Follow from the end: only records produced after the start, then stop at -n.
	follower := startBackground(t, testnode.Binary(t), "consume", "modes", "--from", "end", "-f", "-n", "2", "--format", "json", "--brokers", n.Addr)
	testnode.WaitFor(t, 60*time.Second, func() bool {
		if follower.exited() {
			return true
		}
		mustSluice(t, n, "new\n", "produce", "modes")
		return false
	})
	if follower.err != nil {
		t.Fatalf("follower: %v\n%s", follower.err, follower.stderr.String())
	}
	if got := values(jsonLines[consumed](t, follower.stdout.String())); got != "new new" {
		t.Fatalf("follow printed %q, want two new records", got)
	}

	// Errors: one line, exit 1.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "nosuch"}, `topic "nosuch" does not exist`},
		{[]string{"consume", "modes", "-p", "9"}, "no partition 9"},
	} {
		p := sluice(t, n, "", c.args...)
		if p.code != 1 || !strings.Contains(p.stderr, c.want) || strings.Count(p.stderr, "\n") != 1 {
			t.Errorf("sluice %v: exit %d stderr %q, want exit 1 and one line with %q", c.args, p.code, p.stderr, c.want)
		}
	}
	dead := testnode.FreeAddr(t)
	p := runProg(t, 60*time.Second, "", testnode.Binary(t), "topic", "list", "--brokers", dead, "--timeout", "3s")
	if p.code != 1 || !strings.Contains(p.stderr, "cannot reach brokers "+dead) || strings.Count(p.stderr, "\n") != 1 {
		t.Errorf("topic list against a dead address: exit %d %q", p.code, p.stderr)
	}
	p = runProg(t, 60*time.Second, "", testnode.Binary(t), "topic", "list")
	if p.code == 0 && !strings.Contains(p.stdout, "TOPIC") {
		t.Errorf("topic list with default brokers printed %q", p.stdout)
	}
}

// TestCLIBench runs each bench mode briefly and checks its summary.
func TestCLIBench(t *testing.T) {
	n := startNode(t)
	type summary struct {
		Mode          string  `json:"mode"`
		Records       int64   `json:"records"`
		Bytes         int64   `json:"bytes"`
		RecordsPerSec float64 `json:"records_per_sec"`
		MBPerSec      float64 `json:"mb_per_sec"`
		Missing       int64   `json:"missing"`
		Latency       *struct {
			P50  float64 `json:"p50_ms"`
			P99  float64 `json:"p99_ms"`
			P999 float64 `json:"p999_ms"`
		} `json:"latency"`
	}
	s := decode[summary](t, mustSluice(t, n, "", "bench", "produce", "-n", "20000", "-s", "512", "-p", "2", "--format", "json"))
	if s.Mode != "produce" || s.Records != 20000 || s.Bytes != 20000*512 || s.RecordsPerSec <= 0 || s.Latency == nil || s.Latency.P99 < s.Latency.P50 {
		t.Fatalf("bench produce: %+v", s)
	}
	s = decode[summary](t, mustSluice(t, n, "", "bench", "consume", "-n", "20000", "--format", "json"))
	if s.Mode != "consume" || s.Records != 20000 || s.Bytes != 20000*512 || s.MBPerSec <= 0 {
		t.Fatalf("bench consume: %+v", s)
	}
	p := sluice(t, n, "", "bench", "e2e", "-d", "2s", "--rate", "500", "--format", "json")
	if p.code != 0 {
		t.Fatalf("bench e2e: exit %d %s", p.code, p.stderr)
	}
	s = decode[summary](t, p.stdout)
	if s.Mode != "e2e" || s.Records < 900 || s.Records > 1100 || s.Missing != 0 || s.Latency == nil {
		t.Fatalf("bench e2e: %+v", s)
	}
	if !strings.Contains(p.stderr, "records/s") {
		t.Fatalf("bench e2e printed no progress line: %q", p.stderr)
	}
	if out := mustSluice(t, n, "", "bench", "produce", "-d", "1s"); !strings.Contains(out, "RECORDS/S") || !strings.Contains(out, "p999") {
		t.Fatalf("bench produce table:\n%s", out)
	}
}
