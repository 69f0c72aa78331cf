package protocol

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopics and CreatePartitions with TimeoutMillis 0 do not wait for the new
// partitions, and say so as Kafka does: REQUEST_TIMED_OUT for each topic created or grown,
// which is then done all the same. With a timeout they answer once the partitions are
// ready; a request that only validates never times out.
func TestCreateTopicsTimeoutZero(t *testing.T) {
	ts := startServer(t, "")
	cl := newClient(t, ts.addr)
	ctx := ctx10(t)

	create := func(name string, partitions, timeoutMillis int32, validateOnly bool) kmsg.CreateTopicsResponseTopic {
		t.Helper()
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, -1
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis, req.ValidateOnly = timeoutMillis, validateOnly
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 {
			t.Fatalf("CreateTopics answered %d topics", len(resp.Topics))
		}
		return resp.Topics[0]
	}
	grow := func(name string, count, timeoutMillis int32) kmsg.CreatePartitionsResponseTopic {
		t.Helper()
		req := kmsg.NewPtrCreatePartitionsRequest()
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = name, count
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = timeoutMillis
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 {
			t.Fatalf("CreatePartitions answered %d topics", len(resp.Topics))
		}
		return resp.Topics[0]
	}
	serving := func(name string, from, to int32) func() bool {
		return func() bool {
			for i := from; i < to; i++ {
				if p, ok := ts.parts.Get(name, i); !ok || !p.Leadership().Local {
					return false
				}
			}
			return true
		}
	}

	ot := create("nowait", 2, 0, false)
	if ot.ErrorCode != kerr.RequestTimedOut.Code || ot.ErrorMessage == nil {
		t.Fatalf("CreateTopics with timeout 0: error %d (%v), want REQUEST_TIMED_OUT with a message", ot.ErrorCode, ot.ErrorMessage)
	}
	if ot.TopicID == [16]byte{} || ot.NumPartitions != -1 || ot.ReplicationFactor != -1 || len(ot.Configs) != 0 {
		t.Fatalf("CreateTopics with timeout 0: topic ID %x, %d partitions, replication factor %d, %d configs; want the ID only",
			ot.TopicID, ot.NumPartitions, ot.ReplicationFactor, len(ot.Configs))
	}
	if id := ts.ctrl.State().Topics["nowait"].ID; id != ot.TopicID {
		t.Fatalf("topic ID %x answered, %x in the metadata", ot.TopicID, id)
	}
	waitFor(t, 20*time.Second, "nowait's partitions serving", serving("nowait", 0, 2))
	if ot := create("nowait", 2, 0, false); ot.ErrorCode != kerr.TopicAlreadyExists.Code {
		t.Fatalf("creating nowait again: error %d, want TOPIC_ALREADY_EXISTS", ot.ErrorCode)
	}

	if ot := grow("nowait", 4, 0); ot.ErrorCode != kerr.RequestTimedOut.Code || ot.ErrorMessage == nil {
		t.Fatalf("CreatePartitions with timeout 0: error %d (%v), want REQUEST_TIMED_OUT with a message", ot.ErrorCode, ot.ErrorMessage)
	}
	if n := len(ts.ctrl.State().Topics["nowait"].Partitions); n != 4 {
		t.Fatalf("nowait has %d partitions after CreatePartitions, want 4", n)
	}
	waitFor(t, 20*time.Second, "nowait's new partitions serving", serving("nowait", 2, 4))

	// Validating does not wait for anything: no timeout to report.
	if ot := create("checked", 1, 0, true); ot.ErrorCode != 0 {
		t.Fatalf("validate-only CreateTopics with timeout 0: error %d", ot.ErrorCode)
	}
	if _, ok := ts.ctrl.State().Topics["checked"]; ok {
		t.Fatal("a validate-only CreateTopics created the topic")
	}

	// With a timeout, the answer comes once the partitions serve.
	if ot := create("waited", 3, 10_000, false); ot.ErrorCode != 0 || ot.NumPartitions != 3 {
		t.Fatalf("CreateTopics with a timeout: error %d, %d partitions", ot.ErrorCode, ot.NumPartitions)
	}
	if !serving("waited", 0, 3)() {
		t.Fatal("CreateTopics answered before the partitions serve")
	}
	if ot := grow("waited", 5, 10_000); ot.ErrorCode != 0 {
		t.Fatalf("CreatePartitions with a timeout: error %d", ot.ErrorCode)
	}
	if !serving("waited", 3, 5)() {
		t.Fatal("CreatePartitions answered before the partitions serve")
	}
}
