package protocol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A clean restart keeps everything: the records, the topic and its ID and configs.
func TestRestartReplay(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	createTopic(t, ts.addr, "events", 3, map[string]*string{"retention.ms": kmsg.StringPtr("86400000")})
	cl := newClient(t, ts.addr)
	produceN(t, cl, "events", 0, 3000)
	idBefore := ts.ctrl.State().Topics["events"].ID
	cl.Close()
	ts.stop()

	ts2 := startServer(t, dir)
	if got := ts2.ctrl.State().Topics["events"]; got == nil || got.ID != idBefore || got.Configs["retention.ms"] != "86400000" {
		t.Fatalf("topic after restart: %+v", got)
	}
	recs := consumeAll(t, ts2.addr, "events", 3000)
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		seen[string(r.Value)] = true
	}
	for i := 0; i < 3000; i++ {
		if !seen[fmt.Sprintf("v-%d", i)] {
			t.Fatalf("record v-%d lost across the restart", i)
		}
	}
	// And the log continues where it stopped.
	cl2 := newClient(t, ts2.addr)
	produceN(t, cl2, "events", 3000, 300)
	if recs := consumeAll(t, ts2.addr, "events", 3300); len(recs) != 3300 {
		t.Fatalf("consumed %d records after more produce, want 3300", len(recs))
	}
}

// Every codec is stored as sent and read back.
func TestCodecs(t *testing.T) {
	ts := startServer(t, "")
	codecs := map[string]kgo.CompressionCodec{
		"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			createTopic(t, ts.addr, topic, 1, nil)
			cl := newClient(t, ts.addr, kgo.ProducerBatchCompression(codec))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var recs []*kgo.Record
			for i := 0; i < 500; i++ {
				recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(strings.Repeat(fmt.Sprintf("%s-%d ", name, i), 20))})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			got := consumeAll(t, ts.addr, topic, 500)
			for i, r := range got {
				if !bytes.Equal(r.Value, recs[i].Value) {
					t.Fatalf("record %d: value differs", i)
				}
			}
			// Stored compressed: the partition holds fewer bytes than the values.
			p := openPartition(t, ts, topic, 0)
			if raw := 500 * len(recs[0].Value); p.Size() >= int64(raw) {
				t.Fatalf("%s: log holds %d bytes for %d bytes of values: not stored compressed", name, p.Size(), raw)
			}
		})
	}
}

// A 5 MB record goes through with max.message.bytes raised, and is fetched whole even
// though it exceeds the partition fetch size; without the raised limit it is refused.
func TestLargeRecord(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "big", 1, map[string]*string{"max.message.bytes": kmsg.StringPtr("10485760")})
	createTopic(t, ts.addr, "small-limit", 1, nil)
	value := bytes.Repeat([]byte("0123456789"), 500_000) // 5 MB
	cl := newClient(t, ts.addr, kgo.ProducerBatchMaxBytes(16<<20), kgo.MaxBufferedBytes(64<<20),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "big", Value: value}).FirstErr(); err != nil {
		t.Fatalf("produce 5 MB: %v", err)
	}
	recs := consumeAll(t, ts.addr, "big", 1, kgo.FetchMaxPartitionBytes(1<<20), kgo.FetchMaxBytes(1<<20))
	if !bytes.Equal(recs[0].Value, value) {
		t.Fatalf("5 MB record came back as %d bytes", len(recs[0].Value))
	}
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "small-limit", Value: value}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("5 MB record over the default max.message.bytes: got %v, want MESSAGE_TOO_LARGE", err)
	}
}

// Many partitions: keyed records land in their partitions and all come back.
func TestManyPartitions(t *testing.T) {
	ts := startServer(t, "")
	const parts, n = 64, 6400
	createTopic(t, ts.addr, "wide", parts, nil)
	cl := newClient(t, ts.addr)
	produceN(t, cl, "wide", 0, n)
	recs := consumeAll(t, ts.addr, "wide", n)
	perPartition := map[int32]int{}
	seen := map[string]bool{}
	for _, r := range recs {
		perPartition[r.Partition]++
		seen[string(r.Value)] = true
	}
	if len(seen) != n {
		t.Fatalf("got %d distinct records, want %d", len(seen), n)
	}
	if len(perPartition) < parts/2 {
		t.Fatalf("records spread over only %d of %d partitions", len(perPartition), parts)
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(context.Background(), "wide")
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != n {
		t.Fatalf("end offsets sum to %d, want %d", total, n)
	}
}

// A fetch at the high watermark with MaxWait waits and is woken by a produce.
func TestLongPollWokenByProduce(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "poll", 1, nil)
	c := dialRaw(t, ts.addr)
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.MaxWaitMillis = 60_000
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "poll"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset = 0
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	c.send(req, 1)

	p := openPartition(t, ts, "poll", 0)
	waitFor(t, 10*time.Second, "the fetch to wait on the partition", func() bool { return p.Waiters() > 0 })
	cl := newClient(t, ts.addr)
	produceN(t, cl, "poll", 0, 1)

	resp := req.ResponseKind().(*kmsg.FetchResponse)
	c.recv(resp, 1)
	got := resp.Topics[0].Partitions[0]
	if got.ErrorCode != 0 || got.HighWatermark != 1 || len(got.RecordBatches) == 0 {
		t.Fatalf("woken fetch: error %d, high watermark %d, %d record bytes", got.ErrorCode, got.HighWatermark, len(got.RecordBatches))
	}
}

// Metadata v0 with an empty topic list means all topics (v1+ uses null for that).
func TestMetadataV0AllTopics(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "one", 1, nil)
	createTopic(t, ts.addr, "two", 2, nil)
	c := dialRaw(t, ts.addr)
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 0
	resp := c.roundTrip(req, 1).(*kmsg.MetadataResponse)
	names := map[string]int{}
	for _, t := range resp.Topics {
		names[*t.Topic] = len(t.Partitions)
	}
	if names["one"] != 1 || names["two"] != 2 {
		t.Fatalf("metadata v0 with no topics listed %v, want both topics", names)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].Host != "127.0.0.1" {
		t.Fatalf("brokers %+v", resp.Brokers)
	}
	// v1 with an empty (not null) list means none.
	req = kmsg.NewPtrMetadataRequest()
	req.Version = 1
	req.Topics = []kmsg.MetadataRequestTopic{}
	if resp := c.roundTrip(req, 2).(*kmsg.MetadataResponse); len(resp.Topics) != 0 {
		t.Fatalf("metadata v1 with an empty list returned %d topics", len(resp.Topics))
	}
}

// Metadata creates unknown topics only when the server and (v4+) the request allow it.
func TestMetadataAutoCreate(t *testing.T) {
	ask := func(c *rawConn, version int16, allow bool, topic string) kmsg.MetadataResponseTopic {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = version
		req.AllowAutoTopicCreation = allow
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		return c.roundTrip(req, 1).(*kmsg.MetadataResponse).Topics[0]
	}
	on := startServer(t, "")
	c := dialRaw(t, on.addr)
	if got := ask(c, 12, false, "not-asked"); got.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("v12 without AllowAutoTopicCreation: error %d", got.ErrorCode)
	}
	if got := ask(c, 12, true, "asked"); got.ErrorCode != 0 || len(got.Partitions) != 1 || got.TopicID == [16]byte{} {
		t.Fatalf("v12 auto-create: %+v", got)
	}
	if got := ask(c, 1, false, "old-client"); got.ErrorCode != 0 || len(got.Partitions) != 1 {
		t.Fatalf("v1 auto-create: %+v", got)
	}
	if got := ask(c, 12, true, "bad name!"); got.ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("invalid name: error %d", got.ErrorCode)
	}
	off := startServer(t, "", withConfig(func(c *Config) { c.AutoCreateTopics = false }))
	c2 := dialRaw(t, off.addr)
	if got := ask(c2, 1, true, "nope"); got.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("auto-create off: error %d", got.ErrorCode)
	}
	if _, ok := off.ctrl.State().Topics["nope"]; ok {
		t.Fatal("topic created with auto-create off")
	}
}
