package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// pythonClient runs testdata/kafka_python_client.py MODE against n.
func pythonClient(t *testing.T, addr string, args ...string) {
	t.Helper()
	p := runProg(t, 3*time.Minute, "", python, append([]string{"testdata/kafka_python_client.py", args[0], addr}, args[1:]...)...)
	if p.code != 0 || !strings.Contains(p.stdout, "PASS") {
		t.Fatalf("kafka-python %s: exit %d\nstdout:\n%s\nstderr:\n%s", args[0], p.code, p.stdout, p.stderr)
	}
}

// TestKafkaPython: kafka-python produces with timestamps and headers, consumes, and asks
// for end_offsets, beginning_offsets and offsets_for_times; the script checks each answer.
func TestKafkaPython(t *testing.T) {
	requirePythonKafka(t)
	n := startNode(t)
	createTopic(t, n, "py", 1)
	pythonClient(t, n.Addr, "basic", "py")
	// franz-go sees what kafka-python wrote.
	log := readAll(t, n, "py")
	if len(log[0]) != 10 || string(log[0][9].Value) != "v9" || string(log[0][9].Key) != "k9" {
		t.Fatalf("franz-go read %d records: %v", len(log[0]), log[0])
	}
}

// TestKafkaPythonGroup: a KafkaConsumer(group_id=...) subscribes, reads, commits and checks
// committed(); after a server restart a new consumer of the group reads only new records.
func TestKafkaPythonGroup(t *testing.T) {
	requirePythonKafka(t)
	n := startNode(t)
	requireGroups(t, n)
	createTopic(t, n, "pyg", 3)
	cl := client(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(prefix string, count int) {
		var rs []*kgo.Record
		for i := 0; i < count; i++ {
			rs = append(rs, &kgo.Record{Topic: "pyg", Partition: int32(i % 3), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))})
		}
		produceSync(t, cl, rs...)
	}
	produce("old", 6)
	pythonClient(t, n.Addr, "group-first", "pyg", "pygroup")
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	produce("new", 3)
	pythonClient(t, n.Addr, "group-resume", "pyg", "pygroup")
}
