package protocol

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestListOffsets(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "lo", 1, nil)
	c := dialRaw(t, ts.addr)
	// Three batches with timestamps 1000, 3000, 2000 (not monotonic).
	for i, tsMs := range []int64{1000, 3000, 2000} {
		b := makeBatch([][]byte{[]byte("a"), []byte("b")}, batchOpts{timestamp: tsMs})
		if r := produceRaw(t, c, int32(i+1), "lo", b, -1); r.ErrorCode != 0 {
			t.Fatalf("produce: %d", r.ErrorCode)
		}
	}
	list := func(version int16, timestamp int64) kmsg.ListOffsetsResponseTopicPartition {
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version = version
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "lo"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = timestamp
		rp.MaxNumOffsets = 1
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return c.roundTrip(req, 99).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
	}
	cases := []struct {
		name      string
		version   int16
		timestamp int64
		offset    int64
	}{
		{"latest", 8, -1, 6},
		{"earliest", 8, -2, 0},
		{"by time, first batch", 8, 500, 0},
		{"by time, exact", 8, 2000, 2},
		{"by time, between", 8, 2500, 2},
		{"by time, after all", 8, 5000, -1},
		{"max timestamp", 8, -3, 2},
		{"v1 latest", 1, -1, 6},
		{"v4 earliest", 4, -2, 0},
	}
	for _, tc := range cases {
		got := list(tc.version, tc.timestamp)
		if got.ErrorCode != 0 || got.Offset != tc.offset {
			t.Errorf("%s: error %d offset %d, want offset %d", tc.name, got.ErrorCode, got.Offset, tc.offset)
		}
		if tc.version >= 4 && tc.offset >= 0 && got.LeaderEpoch != 0 {
			t.Errorf("%s: leader epoch %d, want 0", tc.name, got.LeaderEpoch)
		}
	}
	if got := list(8, -3); got.Timestamp != 3000 {
		t.Errorf("max timestamp: %d, want 3000", got.Timestamp)
	}
	v0 := list(0, -1)
	if len(v0.OldStyleOffsets) != 1 || v0.OldStyleOffsets[0] != 6 {
		t.Errorf("v0 latest: %v, want [6]", v0.OldStyleOffsets)
	}
	// Unknown partition.
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 5
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "lo"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = 7
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if got := c.roundTrip(req, 100).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; got.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown partition: error %d", got.ErrorCode)
	}
}

func TestFetchOffsetOutOfRangeAndEpochs(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "oor", 1, nil)
	cl := newClient(t, ts.addr)
	produceN(t, cl, "oor", 0, 10)
	c := dialRaw(t, ts.addr)
	fetch := func(offset int64, epoch int32) kmsg.FetchResponseTopicPartition {
		req := kmsg.NewPtrFetchRequest()
		req.Version = 12
		req.MaxBytes = 1 << 20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "oor"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset = offset
		rp.CurrentLeaderEpoch = epoch
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return c.roundTrip(req, 1).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	}
	if got := fetch(11, -1); got.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Errorf("fetch past the end: error %d", got.ErrorCode)
	}
	if got := fetch(10, -1); got.ErrorCode != 0 || len(got.RecordBatches) != 0 || got.HighWatermark != 10 || got.LastStableOffset != 10 || got.LogStartOffset != 0 {
		t.Errorf("fetch at the end: %+v", got)
	}
	if got := fetch(3, 0); got.ErrorCode != 0 || len(got.RecordBatches) == 0 {
		t.Errorf("fetch from 3: error %d, %d bytes", got.ErrorCode, len(got.RecordBatches))
	}
	if got := fetch(3, 5); got.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Errorf("fetch with a future epoch: error %d", got.ErrorCode)
	}

	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version = 4
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = "oor"
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.LeaderEpoch = 0
	rp.CurrentLeaderEpoch = 0
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	got := c.roundTrip(req, 2).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	if got.ErrorCode != 0 || got.LeaderEpoch != 0 || got.EndOffset != 10 {
		t.Errorf("offset for epoch 0: %+v, want epoch 0 end 10", got)
	}
}

func TestTopicAdmin(t *testing.T) {
	ts := startServer(t, "")
	adm := kadm.NewClient(newClient(t, ts.addr))
	ctx := ctx10(t)

	// Create with configs, invalid ones refused.
	res, err := adm.CreateTopic(ctx, 2, -1, map[string]*string{
		"retention.ms": kmsg.StringPtr("3600000"), "cleanup.policy": kmsg.StringPtr("compact"),
		"message.timestamp.type": kmsg.StringPtr("LogAppendTime"),
	}, "admin")
	if err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	if res.ID == (kadm.TopicID{}) {
		t.Fatal("no topic ID")
	}
	if res, _ := adm.CreateTopic(ctx, 1, -1, map[string]*string{"retention.ms": kmsg.StringPtr("soon")}, "bad-config"); !errorsIs(res.Err, kerr.InvalidConfig) {
		t.Fatalf("invalid config: %v", res.Err)
	}
	if res, _ := adm.CreateTopic(ctx, 1, -1, map[string]*string{"no.such.config": kmsg.StringPtr("1")}, "bad-config"); !errorsIs(res.Err, kerr.InvalidConfig) {
		t.Fatalf("unknown config: %v", res.Err)
	}
	if res, _ := adm.CreateTopic(ctx, 1, -1, nil, "admin"); !errorsIs(res.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("duplicate: %v", res.Err)
	}
	if res, _ := adm.CreateTopic(ctx, 1, 3, nil, "rf3"); !errorsIs(res.Err, kerr.InvalidReplicationFactor) {
		t.Fatalf("replication factor 3 on one node: %v", res.Err)
	}
	if res, _ := adm.CreateTopic(ctx, 1, -1, nil, "bad/name"); !errorsIs(res.Err, kerr.InvalidTopicException) {
		t.Fatalf("bad name: %v", res.Err)
	}

	// Describe, then alter incrementally.
	rcs, err := adm.DescribeTopicConfigs(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On("admin", nil)
	vals := map[string]string{}
	for _, c := range rc.Configs {
		vals[c.Key] = c.MaybeValue()
	}
	if vals["retention.ms"] != "3600000" || vals["cleanup.policy"] != "compact" || vals["max.message.bytes"] != "1048588" || vals["segment.bytes"] != "1073741824" {
		t.Fatalf("described configs %v", vals)
	}
	alter := []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: kmsg.StringPtr("7200000")},
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kmsg.StringPtr("delete")},
		{Op: kadm.DeleteConfig, Name: "message.timestamp.type"},
	}
	if resps, err := adm.AlterTopicConfigs(ctx, alter, "admin"); err != nil || resps[0].Err != nil {
		t.Fatalf("alter: %v %v", err, resps)
	}
	st := ts.ctrl.State().Topics["admin"]
	if st.Configs["retention.ms"] != "7200000" || st.Configs["cleanup.policy"] != "compact,delete" {
		t.Fatalf("configs after alter: %v", st.Configs)
	}
	if _, ok := st.Configs["message.timestamp.type"]; ok {
		t.Fatalf("deleted config still set: %v", st.Configs)
	}
	if resps, _ := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: kmsg.StringPtr("x")}}, "admin"); !errorsIs(resps[0].Err, kerr.InvalidConfig) {
		t.Fatalf("invalid alter: %v", resps[0].Err)
	}
	// Validate only: nothing changes.
	if resps, err := adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kmsg.StringPtr("1")}}, "admin"); err != nil || resps[0].Err != nil {
		t.Fatalf("validate only: %v %v", err, resps)
	}
	if v := ts.ctrl.State().Topics["admin"].Configs["retention.ms"]; v != "7200000" {
		t.Fatalf("validate only changed retention.ms to %s", v)
	}
	// AlterConfigs (not incremental) replaces every config set on the topic.
	if resps, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kmsg.StringPtr("7200000")}, {Name: "segment.bytes", Value: kmsg.StringPtr("1048576")}}, "admin"); err != nil || resps[0].Err != nil {
		t.Fatalf("alter (replace): %v %v", err, resps)
	}
	if c := ts.ctrl.State().Topics["admin"].Configs; len(c) != 2 || c["retention.ms"] != "7200000" || c["segment.bytes"] != "1048576" {
		t.Fatalf("configs after replacing: %v", c)
	}
	if resps, _ := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: kmsg.StringPtr("x")}}, "admin"); !errorsIs(resps[0].Err, kerr.InvalidConfig) {
		t.Fatalf("invalid replace: %v", resps[0].Err)
	}
	if resps, _ := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kmsg.StringPtr("1")}}, "no-such-topic"); !errorsIs(resps[0].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("replace on an unknown topic: %v", resps[0].Err)
	}
	// The partition reopened with the new retention and still serves.
	waitFor(t, 10*time.Second, "the partition to take the new config", func() bool {
		p, ok := ts.parts.Get("admin", 0)
		return ok && p.Config().RetentionMs == 7200000 && p.Leadership().Local
	})

	// Grow, then delete.
	if resps, err := adm.CreatePartitions(ctx, 2, "admin"); err != nil || resps["admin"].Err != nil {
		t.Fatalf("create partitions: %v %v", err, resps)
	}
	if _, ok := ts.parts.Get("admin", 3); !ok {
		t.Fatal("partition 3 not open after CreatePartitions returned")
	}
	if resps, _ := adm.CreatePartitions(ctx, 0, "admin"); !errorsIs(resps["admin"].Err, kerr.InvalidPartitions) {
		t.Fatalf("create 0 partitions: %v", resps["admin"].Err)
	}
	cl := newClient(t, ts.addr)
	produceN(t, cl, "admin", 0, 50)
	if _, err := os.Stat(filepath.Join(ts.dir, "admin-0")); err != nil {
		t.Fatalf("partition directory: %v", err)
	}
	if resps, err := adm.DeleteTopics(ctx, "admin"); err != nil || resps["admin"].Err != nil {
		t.Fatalf("delete: %v %v", err, resps)
	}
	if _, err := os.Stat(filepath.Join(ts.dir, "admin-0")); !os.IsNotExist(err) {
		t.Fatalf("partition directory still there after delete: %v", err)
	}
	if resps, _ := adm.DeleteTopics(ctx, "admin"); !errorsIs(resps["admin"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete again: %v", resps["admin"].Err)
	}
	// Re-created under the same name: empty, new ID.
	createTopic(t, ts.addr, "admin", 1, nil)
	p := openPartition(t, ts, "admin", 0)
	if p.HighWatermark() != 0 || p.TopicID() == res.ID {
		t.Fatalf("re-created topic: high watermark %d, same id %v", p.HighWatermark(), p.TopicID() == res.ID)
	}
}

func TestLogAppendTime(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "lat", 1, map[string]*string{"message.timestamp.type": kmsg.StringPtr("LogAppendTime")})
	c := dialRaw(t, ts.addr)
	before := time.Now().UnixMilli()
	r := produceRaw(t, c, 1, "lat", makeBatch([][]byte{[]byte("x")}, batchOpts{timestamp: 42}), -1)
	if r.ErrorCode != 0 || r.LogAppendTime < before {
		t.Fatalf("produce: error %d, log append time %d (before %d)", r.ErrorCode, r.LogAppendTime, before)
	}
	recs := consumeAll(t, ts.addr, "lat", 1)
	if got := recs[0].Timestamp.UnixMilli(); got != r.LogAppendTime || recs[0].Attrs.TimestampType() != 1 {
		t.Fatalf("consumed timestamp %d (type %d), want the log append time %d", got, recs[0].Attrs.TimestampType(), r.LogAppendTime)
	}
}

func TestDescribeClusterAndDeleteRecords(t *testing.T) {
	ts := startServer(t, "")
	cl := newClient(t, ts.addr)
	adm := kadm.NewClient(cl)
	ctx := ctx10(t)
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Brokers) != 1 || meta.Brokers[0].NodeID != 0 || meta.Cluster == "" || meta.Controller != 0 {
		t.Fatalf("cluster metadata %+v", meta)
	}
	req := kmsg.NewPtrDescribeClusterRequest()
	req.Version = 1
	req.EndpointType = 1
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 || len(resp.Brokers) != 1 || resp.ClusterID != meta.Cluster {
		t.Fatalf("describe cluster: %v %+v", err, resp)
	}

	createTopic(t, ts.addr, "trim", 1, nil)
	produceN(t, cl, "trim", 0, 10)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "trim", Partition: 0, At: 4})
	dr, err := adm.DeleteRecords(ctx, offs)
	if err != nil || dr.Error() != nil {
		t.Fatalf("delete records: %v %v", err, dr.Error())
	}
	starts, err := adm.ListStartOffsets(ctx, "trim")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("trim", 0); o.Offset != 4 {
		t.Fatalf("log start offset %d after deleting records below 4", o.Offset)
	}
	recs := consumeAll(t, ts.addr, "trim", 6)
	if recs[0].Offset != 4 {
		t.Fatalf("first record after delete-records at offset %d", recs[0].Offset)
	}
}

func TestTransactionalRefused(t *testing.T) {
	ts := startServer(t, "")
	c := dialRaw(t, ts.addr)
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 3
	req.TransactionalID = kmsg.StringPtr("txn")
	req.TransactionTimeoutMillis = 60000
	resp := c.roundTrip(req, 1).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("transactional init: error %d", resp.ErrorCode)
	}
}

func errorsIs(err error, target *kerr.Error) bool {
	ke, ok := err.(*kerr.Error)
	if ok {
		return ke == target
	}
	for err != nil {
		if err == target {
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// Partition and response MaxBytes: whole batches only, the first partition with data
// always gets one, later ones only what fits.
func TestFetchMaxBytes(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "mb", 2, nil)
	c := dialRaw(t, ts.addr)
	batch := makeBatch([][]byte{make([]byte, 1000)}, batchOpts{}) // ~1070 bytes
	for p := int32(0); p < 2; p++ {
		for i := 0; i < 5; i++ {
			req := kmsg.NewPtrProduceRequest()
			req.Version = 9
			req.Acks = -1
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "mb"
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = p
			rp.Records = batch
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			if r := c.roundTrip(req, 1).(*kmsg.ProduceResponse); r.Topics[0].Partitions[0].ErrorCode != 0 {
				t.Fatal(r.Topics[0].Partitions[0].ErrorCode)
			}
		}
	}
	fetch := func(maxBytes, partMax int32) []int {
		req := kmsg.NewPtrFetchRequest()
		req.Version = 12
		req.MaxBytes = maxBytes
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "mb"
		for p := int32(0); p < 2; p++ {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition = p
			rp.PartitionMaxBytes = partMax
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp := c.roundTrip(req, 2).(*kmsg.FetchResponse)
		var batches []int
		for _, p := range resp.Topics[0].Partitions {
			batches = append(batches, len(p.RecordBatches)/len(batch))
			if len(p.RecordBatches)%len(batch) != 0 {
				t.Fatalf("partial batch: %d bytes", len(p.RecordBatches))
			}
		}
		return batches
	}
	for _, tc := range []struct {
		max, partMax int32
		want         [2]int
	}{
		{1 << 20, 1 << 20, [2]int{5, 5}},
		{1 << 20, 2500, [2]int{2, 2}},
		{10, 10, [2]int{1, 0}}, // one batch past the limits, for the first partition only
		{3300, 1 << 20, [2]int{3, 0}},
		{4400, 1 << 20, [2]int{4, 0}},
		{6500, 2200, [2]int{2, 2}},
	} {
		got := fetch(tc.max, tc.partMax)
		if [2]int{got[0], got[1]} != tc.want {
			t.Errorf("MaxBytes %d, partition max %d: batches %v, want %v", tc.max, tc.partMax, got, tc.want)
		}
	}
}

// ListOffsets by timestamp finds the exact record inside a (compressed) batch.
func TestListOffsetsInsideBatch(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "inside", 1, nil)
	cl := newClient(t, ts.addr, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, &kgo.Record{Topic: "inside", Value: []byte("value value value value"), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	if err := cl.ProduceSync(ctx10(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	for _, tc := range []struct {
		at     time.Duration
		offset int64
	}{{2500 * time.Millisecond, 3}, {0, 0}, {9 * time.Second, 9}, {time.Hour, -1}} {
		res, err := adm.ListOffsetsAfterMilli(ctx10(t), base.Add(tc.at).UnixMilli(), "inside")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := res.Lookup("inside", 0)
		want := tc.offset
		if want < 0 {
			want = 10 // kadm reports the end offset when no record is at or after the time
		}
		if o.Err != nil || o.Offset != want {
			t.Errorf("at base+%v: offset %d (%v), want %d", tc.at, o.Offset, o.Err, want)
		}
		if tc.offset > 0 && o.Timestamp != base.Add(time.Duration(tc.offset)*time.Second).UnixMilli() {
			t.Errorf("at base+%v: timestamp %d", tc.at, o.Timestamp)
		}
	}
}

// DescribeLogDirs (kadm, as Kafka tools ask): the data directory with each partition's
// size on disk and the file system's size; a request for some partitions gets those only,
// and one for a partition with no replica here leaves it out.
func TestDescribeLogDirs(t *testing.T) {
	ts := startServer(t, "")
	cl := newClient(t, ts.addr)
	adm := kadm.NewClient(cl)
	ctx := ctx10(t)
	createTopic(t, ts.addr, "sized", 2, nil)
	createTopic(t, ts.addr, "other", 1, nil)
	produceN(t, cl, "sized", 0, 100)

	all, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := all[0][ts.dir]
	if len(all) != 1 || len(all[0]) != 1 || !ok {
		t.Fatalf("log dirs %+v, want node 0's data directory %s only", all, ts.dir)
	}
	if d.Err != nil || d.TotalBytes <= 0 || d.UsableBytes <= 0 || d.UsableBytes > d.TotalBytes {
		t.Fatalf("log dir %q: err %v, total %d, usable %d; want sizes", d.Dir, d.Err, d.TotalBytes, d.UsableBytes)
	}
	for _, tc := range []struct {
		topic     string
		partition int32
	}{{"sized", 0}, {"sized", 1}, {"other", 0}} {
		p, ok := d.Topics.Lookup(tc.topic, tc.partition)
		want := openPartition(t, ts, tc.topic, tc.partition).Size()
		if !ok || p.Size != want || p.OffsetLag != 0 || p.IsFuture {
			t.Fatalf("%s-%d: %+v (found %v), want size %d", tc.topic, tc.partition, p, ok, want)
		}
	}
	if p, _ := d.Topics.Lookup("sized", 0); p.Size == 0 {
		t.Fatal("sized-0 holds 100 records and shows 0 bytes")
	}

	// Only what is asked for; a partition with no replica here is left out.
	some, err := adm.DescribeBrokerLogDirs(ctx, 0, kadm.TopicsSet{"sized": {1: {}, 7: {}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range some {
		var got []string
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) { got = append(got, fmt.Sprintf("%s-%d", p.Topic, p.Partition)) })
		if len(got) != 1 || got[0] != "sized-1" {
			t.Fatalf("asked for sized-1 and sized-7: got %v", got)
		}
	}
}

// A single node leads every partition: a preferred (or unclean) election is not needed,
// for the partitions named or, with none named, for all; an unknown one is reported.
func TestElectLeadersSingleNode(t *testing.T) {
	ts := startServer(t, "")
	cl := newClient(t, ts.addr)
	adm := kadm.NewClient(cl)
	ctx := ctx10(t)
	createTopic(t, ts.addr, "elect", 2, nil)
	createTopic(t, ts.addr, "other", 1, nil)

	for _, how := range []kadm.ElectLeadersHow{kadm.ElectPreferredReplica, kadm.ElectLiveReplica} {
		res, err := adm.ElectLeaders(ctx, how, kadm.TopicsSet{"elect": {0: {}, 1: {}, 5: {}}, "missing": {0: {}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []struct {
			topic     string
			partition int32
			err       error
		}{{"elect", 0, kerr.ElectionNotNeeded}, {"elect", 1, kerr.ElectionNotNeeded}, {"elect", 5, kerr.UnknownTopicOrPartition}, {"missing", 0, kerr.UnknownTopicOrPartition}} {
			if r, ok := res[want.topic][want.partition]; !ok || !errors.Is(r.Err, want.err) {
				t.Errorf("election %v of %s-%d: %+v (answered: %v), want %v", how, want.topic, want.partition, r, ok, want.err)
			}
		}
		if n := len(res["elect"]) + len(res["missing"]); n != 4 || len(res) != 2 {
			t.Errorf("election %v: %d results for %d topics, want 4 for 2: %+v", how, n, len(res), res)
		}
	}

	all, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for topic, ps := range all {
		for p, r := range ps {
			if !errors.Is(r.Err, kerr.ElectionNotNeeded) {
				t.Errorf("election of %s-%d: %v, want ELECTION_NOT_NEEDED", topic, p, r.Err)
			}
			n++
		}
	}
	if len(all["elect"]) != 2 || len(all["other"]) != 1 {
		t.Errorf("electing every partition answered %d: %+v, want elect-0, elect-1 and other-0 among them", n, all)
	}
}

// A single node never reassigns: none is listed, a partition's own replicas are accepted,
// others refused, and there is nothing to cancel.
func TestPartitionReassignmentsSingleNode(t *testing.T) {
	ts := startServer(t, "")
	cl := newClient(t, ts.addr)
	adm := kadm.NewClient(cl)
	ctx := ctx10(t)
	createTopic(t, ts.addr, "moved", 2, nil)

	listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"moved": {0: {}, 1: {}}, "missing": {0: {}}})
	if err != nil || len(listed) != 0 {
		t.Fatalf("reassignments listed: %+v, %v; want none", listed, err)
	}
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign("moved", 0, []int32{0})
	req.Assign("moved", 1, []int32{1})
	req.Assign("missing", 0, []int32{0})
	res, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r := res["moved"][0]; r.Err != nil {
		t.Errorf("moved-0 to its own replicas: %v (%s)", r.Err, r.ErrMessage)
	}
	if r := res["moved"][1]; !errors.Is(r.Err, kerr.InvalidReplicaAssignment) || !strings.Contains(r.ErrMessage, "single node") {
		t.Errorf("moved-1 to node 1: %v (%s), want INVALID_REPLICA_ASSIGNMENT", r.Err, r.ErrMessage)
	}
	if r := res["missing"][0]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("missing-0: %v, want UNKNOWN_TOPIC_OR_PARTITION", r.Err)
	}
	var cancelReq kadm.AlterPartitionAssignmentsReq
	cancelReq.Assign("moved", 0, nil)
	res, err = adm.AlterPartitionAssignments(ctx, cancelReq)
	if err != nil {
		t.Fatal(err)
	}
	if r := res["moved"][0]; !errors.Is(r.Err, kerr.NoReassignmentInProgress) {
		t.Errorf("cancelling moved-0's reassignment: %v, want NO_REASSIGNMENT_IN_PROGRESS", r.Err)
	}
}
