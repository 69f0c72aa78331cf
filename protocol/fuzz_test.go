package protocol

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeRequest: any frame either decodes or is refused with an error; decoding
// never panics, and a decoded request encodes back to exactly the bytes it came from.
// Seeds: frames captured from franz-go, kcat and kafka-python (testdata/fuzz).
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range syntheticSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		d, err := decodeRequest(frame)
		if err != nil || d.req == nil {
			return
		}
		if d.api == nil || d.version < d.api.min || d.version > d.api.max {
			t.Fatalf("decoded %d v%d outside the served range", d.key, d.version)
		}
		body := d.body
		if d.req.IsFlexible() {
			body, _ = skipHeaderTags(body)
		}
		if n := encodedLen(d.req); n != len(body) {
			t.Fatalf("decoded request re-encodes to %d bytes, body has %d", n, len(body))
		}
	})
}

// FuzzServeRequest: any frame served by a live server (real partitions on disk) closes
// the connection or gets a response that encodes; no handler panics.
func FuzzServeRequest(f *testing.F) {
	for _, seed := range syntheticSeeds() {
		f.Add(seed)
	}
	ts := startServer(f, f.TempDir(), withConfig(func(c *Config) { c.MaxPartitions = 4 }))
	createTopic(f, ts.addr, "fuzz", 2, nil)
	f.Fuzz(func(t *testing.T, frame []byte) {
		client, server := net.Pipe()
		defer client.Close()
		go io.Copy(io.Discard, client)
		c := newConn(ts.srv, server, 0)
		// Long polls and slow writes end with the iteration.
		ctx, cancel := context.WithTimeout(c.ctx, 200*time.Millisecond)
		defer cancel()
		c.ctx = ctx
		go c.write()
		before := ts.logs.FilterMessage("handler panicked").Len() + ts.logs.FilterMessage("encoding response panicked").Len()
		c.serve(frame, false)
		close(c.out)
		<-c.writerDone
		server.Close()
		if after := ts.logs.FilterMessage("handler panicked").Len() + ts.logs.FilterMessage("encoding response panicked").Len(); after != before {
			t.Fatalf("a handler panicked on %x", frame)
		}
	})
}

// syntheticSeeds are a few frames built here, beside the captured ones.
func syntheticSeeds() [][]byte {
	id := "seed"
	var out [][]byte
	add := func(req kmsg.Request) {
		f := appendRequestFrame(nil, req, 1, &id)
		out = append(out, f[4:])
	}
	add(kmsg.NewPtrApiVersionsRequest())
	m := kmsg.NewPtrMetadataRequest()
	m.Version = 0
	add(m)
	p := kmsg.NewPtrProduceRequest()
	p.Version = 9
	p.Acks = -1
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "fuzz"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = makeBatch([][]byte{[]byte("a"), []byte("b")}, batchOpts{})
	rt.Partitions = append(rt.Partitions, rp)
	p.Topics = append(p.Topics, rt)
	add(p)
	fr := kmsg.NewPtrFetchRequest()
	fr.Version = 12
	fr.MaxWaitMillis = 100
	frt := kmsg.NewFetchRequestTopic()
	frt.Topic = "fuzz"
	frp := kmsg.NewFetchRequestTopicPartition()
	frp.PartitionMaxBytes = 1 << 20
	frt.Partitions = append(frt.Partitions, frp)
	fr.Topics = append(fr.Topics, frt)
	add(fr)
	short := make([]byte, 10)
	binary.BigEndian.PutUint16(short, 18)
	out = append(out, short)
	return out
}
