package protocol

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// deleteTopicsReq sends one DeleteTopics request naming topics, with timeoutMillis, and
// returns its answer for each, by name.
func deleteTopicsReq(t *testing.T, ctx context.Context, cl *kgo.Client, timeoutMillis int32, topics ...string) map[string]kmsg.DeleteTopicsResponseTopic {
	t.Helper()
	req := kmsg.NewPtrDeleteTopicsRequest()
	for _, name := range topics {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
		req.TopicNames = append(req.TopicNames, name)
	}
	req.TimeoutMillis = timeoutMillis
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]kmsg.DeleteTopicsResponseTopic)
	for _, ot := range resp.Topics {
		if ot.Topic == nil {
			t.Fatalf("DeleteTopics answered a topic without a name: %+v", ot)
		}
		out[*ot.Topic] = ot
	}
	if len(out) != len(topics) {
		t.Fatalf("DeleteTopics answered %d topics for %d named", len(out), len(topics))
	}
	return out
}

// metadataUnknown reports whether a Metadata request (that creates nothing) answers
// UNKNOWN_TOPIC_OR_PARTITION for topic.
func metadataUnknown(t *testing.T, ctx context.Context, cl *kgo.Client, topic string) bool {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 {
		t.Fatalf("Metadata answered %d topics", len(resp.Topics))
	}
	return resp.Topics[0].ErrorCode == kerr.UnknownTopicOrPartition.Code
}

// DeleteTopics with TimeoutMillis 0 does not wait for the topic to be gone and says so as
// Kafka does: REQUEST_TIMED_OUT for each topic deleted, which then goes all the same; a
// topic that could not be deleted keeps its own error. With a timeout, the answer is
// success once the topic is gone from this node (partitions closed, data removed).
func TestDeleteTopicsTimeout(t *testing.T) {
	ts := startServer(t, "")
	cl := newClient(t, ts.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	gone := func(topic string, partitions int32) func() bool {
		return func() bool {
			for i := range partitions {
				if _, ok := ts.parts.Get(topic, i); ok {
					return false
				}
				if _, err := os.Stat(filepath.Join(ts.dir, fmt.Sprintf("%s-%d", topic, i))); !os.IsNotExist(err) {
					return false
				}
			}
			return metadataUnknown(t, ctx, cl, topic)
		}
	}

	createTopic(t, ts.addr, "nowait", 2, nil)
	produceN(t, cl, "nowait", 0, 20)
	res := deleteTopicsReq(t, ctx, cl, 0, "nowait", "missing")
	if ot := res["nowait"]; ot.ErrorCode != kerr.RequestTimedOut.Code || ot.ErrorMessage == nil {
		t.Fatalf("DeleteTopics with timeout 0: error %d (%v), want REQUEST_TIMED_OUT with a message", ot.ErrorCode, ot.ErrorMessage)
	}
	if ot := res["missing"]; ot.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("DeleteTopics of a missing topic with timeout 0: error %d, want UNKNOWN_TOPIC_OR_PARTITION", ot.ErrorCode)
	}
	waitFor(t, 20*time.Second, "nowait gone", gone("nowait", 2))
	if ot := deleteTopicsReq(t, ctx, cl, 0, "nowait")["nowait"]; ot.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("deleting nowait again: error %d, want UNKNOWN_TOPIC_OR_PARTITION", ot.ErrorCode)
	}

	// With a timeout, the answer comes once the topic is gone.
	createTopic(t, ts.addr, "waited", 3, nil)
	produceN(t, cl, "waited", 0, 20)
	if ot := deleteTopicsReq(t, ctx, cl, 10_000, "waited")["waited"]; ot.ErrorCode != 0 {
		t.Fatalf("DeleteTopics with a timeout: error %d (%v)", ot.ErrorCode, ot.ErrorMessage)
	}
	if !gone("waited", 3)() {
		t.Fatal("DeleteTopics answered before the topic is gone")
	}
}

// A deletion this node does not carry out within the request's timeout is answered
// REQUEST_TIMED_OUT once that timeout passes, not success: here the partition manager is
// closed, so the deleted topic's data stays.
func TestDeleteTopicsTimeoutNotGone(t *testing.T) {
	ts := startServer(t, "")
	cl := newClient(t, ts.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	createTopic(t, ts.addr, "stuck", 1, nil)
	produceN(t, cl, "stuck", 0, 5)
	if err := ts.parts.Close(); err != nil {
		t.Fatal(err)
	}
	ot := deleteTopicsReq(t, ctx, cl, 300, "stuck")["stuck"]
	if ot.ErrorCode != kerr.RequestTimedOut.Code || ot.ErrorMessage == nil {
		t.Fatalf("DeleteTopics not done within its timeout: error %d (%v), want REQUEST_TIMED_OUT with a message", ot.ErrorCode, ot.ErrorMessage)
	}
	if _, ok := ts.ctrl.State().Topics["stuck"]; ok {
		t.Fatal("the timed-out deletion did not delete the topic")
	}
	if _, err := os.Stat(filepath.Join(ts.dir, "stuck-0")); err != nil {
		t.Fatalf("stuck's data: %v; want it still there (the manager is closed)", err)
	}
}
