package protocol

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceFrame encodes a Produce v9 request of one batch for topic/0.
func produceFrame(topic string, batch []byte, corr int32) []byte {
	id := "bad-input"
	return appendRequestFrame(nil, produceRequest(9, topic, batch), corr, &id)
}

// Malformed frames close their connection with a log line; the server goes on serving
// another connection, and what was stored before is all still there.
func TestBadFramesCloseConnection(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "safe", 1, nil)
	cl := newClient(t, ts.addr)
	produceN(t, cl, "safe", 0, 100)

	metadataV1 := func() []byte {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 1
		return appendRequestFrame(nil, req, 1, nil)
	}
	withSize := func(size uint32, rest []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, size), rest...)
	}
	cases := []struct {
		name  string
		frame []byte
		log   string
	}{
		{"size 2 GiB", withSize(1<<31, nil), "bad frame size"},
		{"size 2 GiB - 1", withSize(1<<31-1, nil), "bad frame size"},
		{"size over the cap", withSize(DefaultMaxRequestBytes+1, nil), "bad frame size"},
		{"negative size", withSize(0xfffffff0, nil), "bad frame size"},
		{"size shorter than a header", withSize(3, []byte{0, 3, 0}), "bad frame size"},
		{"client id past the frame", withSize(10, []byte{0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0xff}), "malformed request header"},
		{"unknown api key", func() []byte {
			f := metadataV1()
			binary.BigEndian.PutUint16(f[4:], 200)
			return f
		}(), "unsupported api key"},
		{"unknown version", func() []byte {
			f := metadataV1()
			binary.BigEndian.PutUint16(f[6:], 99)
			return f
		}(), "unsupported api version"},
		{"negative array length", func() []byte {
			// Produce v3 (not flexible): transactional id (null), acks, timeout, then the
			// topic array length, set to -5 with a topic after it.
			req := kmsg.NewPtrProduceRequest()
			req.Version = 3
			req.Acks = 1
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "safe"
			req.Topics = append(req.Topics, rt)
			f := appendRequestFrame(nil, req, 1, nil)
			at := 4 + 10 + 2 + 2 + 4 // size, header, null transactional id, acks, timeout
			binary.BigEndian.PutUint32(f[at:], uint32(0xfffffffb))
			return f
		}(), "malformed request"},
		{"huge array length", func() []byte {
			f := metadataV1()
			at := 4 + 10
			binary.BigEndian.PutUint32(f[at:], 0x7fffffff)
			return f
		}(), "malformed request"},
		{"truncated body", func() []byte {
			f := produceFrame("safe", makeBatch([][]byte{[]byte("x")}, batchOpts{}), 1)
			f = f[:len(f)-20]
			binary.BigEndian.PutUint32(f, uint32(len(f)-4))
			return f
		}(), "malformed request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.logs.FilterMessageSnippet(tc.log).Len()
			c := dialRaw(t, ts.addr)
			c.write(tc.frame)
			c.expectClosed()
			waitFor(t, 5*time.Second, "log line "+tc.log, func() bool {
				return ts.logs.FilterMessageSnippet(tc.log).Len() > before
			})
			// Another connection is served.
			other := dialRaw(t, ts.addr)
			req := kmsg.NewPtrApiVersionsRequest()
			if resp := other.roundTrip(req, 9).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
				t.Fatalf("api versions on another connection: error %d", resp.ErrorCode)
			}
		})
	}
	// A client that dies mid-frame.
	c := dialRaw(t, ts.addr)
	f := produceFrame("safe", makeBatch([][]byte{[]byte("x")}, batchOpts{}), 1)
	c.write(f[:len(f)/2])
	c.nc.Close()
	waitFor(t, 5*time.Second, "the mid-frame close to be logged", func() bool { return ts.logged("mid-frame") })

	if recs := consumeAll(t, ts.addr, "safe", 100); len(recs) != 100 {
		t.Fatalf("after bad input: %d records, want 100", len(recs))
	}
	p := openPartition(t, ts, "safe", 0)
	if hw := p.HighWatermark(); hw != 100 {
		t.Fatalf("high watermark %d, want 100: bad input was stored", hw)
	}
}

// Bad record batches get error codes; the connection stays usable and nothing is stored.
func TestBadBatchesGetErrorCodes(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "batches", 1, nil)
	good := makeBatch([][]byte{[]byte("a"), []byte("b")}, batchOpts{})
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	recrc := func(b []byte) []byte {
		putUint32(b[17:], crcOf(b[21:]))
		return b
	}
	cases := []struct {
		name  string
		batch []byte
		code  int16
	}{
		{"bad crc", mutate(func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }), kerr.CorruptMessage.Code},
		{"truncated batch", mutate(func(b []byte) []byte { return b[:len(b)-3] }), kerr.CorruptMessage.Code},
		{"shorter than a header", good[:40], kerr.CorruptMessage.Code},
		{"two batches", append(append([]byte(nil), good...), good...), kerr.CorruptMessage.Code},
		{"magic 1", mutate(func(b []byte) []byte { b[16] = 1; return b }), kerr.UnsupportedForMessageFormat.Code},
		{"record count", mutate(func(b []byte) []byte { putUint32(b[57:], 3); return recrc(b) }), kerr.InvalidRecord.Code},
		{"last offset delta", mutate(func(b []byte) []byte { putUint32(b[23:], 5); return recrc(b) }), kerr.InvalidRecord.Code},
		{"record length past the batch", mutate(func(b []byte) []byte { b[61] = 0x7e; return recrc(b) }), kerr.InvalidRecord.Code},
		{"control batch", mutate(func(b []byte) []byte { b[22] |= 0x20; return recrc(b) }), kerr.InvalidRecord.Code},
		{"unknown codec", mutate(func(b []byte) []byte { b[22] |= 0x07; return recrc(b) }), kerr.UnsupportedCompressionType.Code},
		{"empty records", []byte{}, kerr.CorruptMessage.Code},
	}
	c := dialRaw(t, ts.addr)
	for i, tc := range cases {
		before := ts.logs.FilterMessageSnippet("rejected record batch").Len()
		r := produceRaw(t, c, int32(i+1), "batches", tc.batch, -1)
		if r.ErrorCode != tc.code {
			t.Errorf("%s: error %d (%v), want %d (%v)", tc.name, r.ErrorCode, kerr.ErrorForCode(r.ErrorCode), tc.code, kerr.ErrorForCode(tc.code))
		}
		if ts.logs.FilterMessageSnippet("rejected record batch").Len() <= before {
			t.Errorf("%s: no log line", tc.name)
		}
	}
	// zstd came with produce v7: an older request naming it is refused.
	zstd := mutate(func(b []byte) []byte { b[22] |= 0x04; return recrc(b) })
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 6, -1, 10_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "batches"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = zstd
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if r := c.roundTrip(req, 99).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; r.ErrorCode != kerr.UnsupportedCompressionType.Code {
		t.Errorf("zstd batch in produce v6: error %d, want %d", r.ErrorCode, kerr.UnsupportedCompressionType.Code)
	}
	p := openPartition(t, ts, "batches", 0)
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d after bad batches, want 0", hw)
	}
	if r := produceRaw(t, c, 100, "batches", good, -1); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("good batch after bad ones: error %d offset %d", r.ErrorCode, r.BaseOffset)
	}
	for i := int32(0); i < 3; i++ {
		if r := produceRaw(t, c, 101+i, "batches", good, -1); r.ErrorCode != 0 {
			t.Fatalf("good batch: error %d", r.ErrorCode)
		}
	}
	recs := consumeAll(t, ts.addr, "batches", 8)
	for i, r := range recs {
		if want := fmt.Sprint([]string{"a", "b"}[i%2]); string(r.Value) != want {
			t.Fatalf("record %d = %q", i, r.Value)
		}
	}
}
