package protocol

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A franz-go consumer at its default versions fetches with topic IDs (v16): it reads back
// everything produced, and a fetch waiting at the end of the partitions is answered with
// records produced while it waits.
func TestFetchTopicIDsKgo(t *testing.T) {
	proxy := newCaptureProxy(t)
	ts := startServer(t, "", withAdvertise(proxy.ln.Addr().String()))
	proxy.setTarget(ts.addr)
	addr := proxy.ln.Addr().String()
	createTopic(t, addr, "ids", 3, nil)
	cl := newClient(t, addr)
	produceN(t, cl, "ids", 0, 600)

	consumer := newClient(t, addr, kgo.ConsumeTopics("ids"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := map[string]bool{}
	poll := func(n int) {
		t.Helper()
		for got := 0; got < n; {
			fs := consumer.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("consumed %d of %d records: %v", got, n, err)
			}
			fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
			for _, r := range fs.Records() {
				if seen[string(r.Value)] {
					t.Fatalf("record %q read twice", r.Value)
				}
				seen[string(r.Value)] = true
				got++
			}
		}
	}
	poll(600)

	// The consumer is at the end: its next fetch waits on the partitions (MaxWait 5 s).
	p := openPartition(t, ts, "ids", 1)
	waitFor(t, 10*time.Second, "a fetch waiting on ids-1", func() bool { return p.Waiters() > 0 })
	produceN(t, cl, "ids", 600, 30)
	poll(30)
	for i := range 630 {
		if !seen[fmt.Sprintf("v-%d", i)] {
			t.Fatalf("record v-%d not consumed", i)
		}
	}

	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if proxy.frames["sluicetest-fetch-v16"] == nil {
		var names []string
		for n := range proxy.frames {
			names = append(names, n)
		}
		t.Fatalf("franz-go sent no Fetch v16; frames seen: %v", names)
	}
	for v := 4; v < 16; v++ {
		if proxy.frames[fmt.Sprintf("sluicetest-fetch-v%d", v)] != nil {
			t.Errorf("franz-go also sent Fetch v%d", v)
		}
	}
}

// fetchReq is a Fetch at version v for partitions of one topic, named by name below v13
// and by id from v13, from offset 0, with no waiting.
func fetchReq(v int16, name string, id [16]byte, partitions ...int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = v
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	if v >= 13 {
		rt.TopicID = id
	} else {
		rt.Topic = name
	}
	for _, p := range partitions {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// A v13+ Fetch naming a topic ID not known gets UNKNOWN_TOPIC_ID in every partition, with
// the ID echoed; a known topic in the same request is served.
func TestFetchUnknownTopicID(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "known", 1, nil)
	produceN(t, newClient(t, ts.addr), "known", 0, 5)
	known := ts.ctrl.State().Topics["known"].ID
	unknown := [16]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	c := dialRaw(t, ts.addr)
	for v := int16(13); v <= 16; v++ {
		req := fetchReq(v, "", unknown, 0, 1)
		req.Topics = append(req.Topics, fetchReq(v, "", known, 0).Topics...)
		resp := c.roundTrip(req, int32(v)).(*kmsg.FetchResponse)
		if resp.ErrorCode != 0 || len(resp.Topics) != 2 {
			t.Fatalf("v%d: error %d, %d topics", v, resp.ErrorCode, len(resp.Topics))
		}
		bad, good := resp.Topics[0], resp.Topics[1]
		if bad.TopicID != unknown || len(bad.Partitions) != 2 {
			t.Fatalf("v%d: unknown topic answered as %x with %d partitions", v, bad.TopicID, len(bad.Partitions))
		}
		for _, p := range bad.Partitions {
			if p.ErrorCode != kerr.UnknownTopicID.Code || p.HighWatermark != -1 || len(p.RecordBatches) != 0 {
				t.Errorf("v%d: unknown topic partition %d: error %d, high watermark %d, %d bytes",
					v, p.Partition, p.ErrorCode, p.HighWatermark, len(p.RecordBatches))
			}
			if p.CurrentLeader.LeaderID != -1 {
				t.Errorf("v%d: unknown topic partition %d names leader %d", v, p.Partition, p.CurrentLeader.LeaderID)
			}
		}
		if len(resp.Brokers) != 0 {
			t.Errorf("v%d: node endpoints %+v with no leader named", v, resp.Brokers)
		}
		gp := good.Partitions[0]
		if good.TopicID != known || gp.ErrorCode != 0 || gp.HighWatermark != 5 || len(gp.RecordBatches) == 0 {
			t.Errorf("v%d: known topic %x: error %d, high watermark %d, %d bytes",
				v, good.TopicID, gp.ErrorCode, gp.HighWatermark, len(gp.RecordBatches))
		}
	}
}

// The same records read by name (v12) and by topic ID (v13-v16) are the same bytes, and
// the topic is answered by ID, with no name, from v13.
func TestFetchByIDSameBytes(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "same", 2, nil)
	produceN(t, newClient(t, ts.addr), "same", 0, 200)
	id := ts.ctrl.State().Topics["same"].ID
	c := dialRaw(t, ts.addr)
	base := c.roundTrip(fetchReq(12, "same", id, 0, 1), 1).(*kmsg.FetchResponse)
	if len(base.Topics) != 1 || base.Topics[0].Topic != "same" {
		t.Fatalf("v12 answered topics %+v", base.Topics)
	}
	total := 0
	for _, p := range base.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("v12 partition %d: error %d", p.Partition, p.ErrorCode)
		}
		total += len(p.RecordBatches)
	}
	if total == 0 {
		t.Fatal("v12 read no records")
	}
	for v := int16(13); v <= 16; v++ {
		resp := c.roundTrip(fetchReq(v, "", id, 0, 1), int32(v)).(*kmsg.FetchResponse)
		if len(resp.Topics) != 1 || resp.Topics[0].TopicID != id || resp.Topics[0].Topic != "" {
			t.Fatalf("v%d answered topic %q %x", v, resp.Topics[0].Topic, resp.Topics[0].TopicID)
		}
		for i, p := range resp.Topics[0].Partitions {
			want := base.Topics[0].Partitions[i]
			if p.Partition != want.Partition || p.ErrorCode != 0 || p.HighWatermark != want.HighWatermark ||
				p.LogStartOffset != want.LogStartOffset || !bytes.Equal(p.RecordBatches, want.RecordBatches) {
				t.Errorf("v%d partition %d: error %d, high watermark %d (v12 %d), %d record bytes (v12 %d), equal %v",
					v, p.Partition, p.ErrorCode, p.HighWatermark, want.HighWatermark, len(p.RecordBatches),
					len(want.RecordBatches), bytes.Equal(p.RecordBatches, want.RecordBatches))
			}
		}
	}
}

// A v16 fetch by topic ID at the high watermark waits and is woken by a produce.
func TestFetchByIDLongPoll(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "idpoll", 1, nil)
	id := ts.ctrl.State().Topics["idpoll"].ID
	c := dialRaw(t, ts.addr)
	req := fetchReq(16, "", id, 0)
	req.MaxWaitMillis, req.MinBytes = 60_000, 1
	c.send(req, 1)

	p := openPartition(t, ts, "idpoll", 0)
	waitFor(t, 10*time.Second, "the fetch to wait on the partition", func() bool { return p.Waiters() > 0 })
	produceN(t, newClient(t, ts.addr), "idpoll", 0, 1)

	resp := req.ResponseKind().(*kmsg.FetchResponse)
	c.recv(resp, 1)
	got := resp.Topics[0].Partitions[0]
	if resp.Topics[0].TopicID != id || got.ErrorCode != 0 || got.HighWatermark != 1 || len(got.RecordBatches) == 0 {
		t.Fatalf("woken fetch: topic %x, error %d, high watermark %d, %d record bytes",
			resp.Topics[0].TopicID, got.ErrorCode, got.HighWatermark, len(got.RecordBatches))
	}
}
