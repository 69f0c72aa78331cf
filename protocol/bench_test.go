package protocol

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Benchmarks through the real server over loopback. Each reports MB/s of record payload;
// the "limit" sub-benchmarks measure, in the same run, the physical limit the path is
// bound by (append + fdatasync of 1 MiB on the same file system for produce; one loopback
// TCP stream for fetch), so results can be read as ratios.
//
//	go test -run '^$' -bench . -benchtime 3x ./protocol/

const benchRecord = 1024

// BenchmarkProduce: a franz-go producer, acks=all, idempotent, 1 KiB records, one
// partition, fsync on every acknowledgement (group commit).
func BenchmarkProduce(b *testing.B) {
	b.Run("acks=all", func(b *testing.B) {
		ts := startServer(b, b.TempDir())
		defer ts.stop()
		createTopicB(b, ts.addr, "bench", 1)
		cl, err := kgo.NewClient(kgo.SeedBrokers(ts.addr), kgo.DefaultProduceTopic("bench"),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		value := make([]byte, benchRecord)
		const perIter = 100_000
		b.SetBytes(perIter * benchRecord)
		cpu := processCPU()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for j := 0; j < perIter; j++ {
				cl.Produce(context.Background(), &kgo.Record{Value: value}, nil)
			}
			if err := cl.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportCPUPerMB(b, cpu, perIter*benchRecord)
	})
	b.Run("limit=append+fdatasync-1MiB", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "limit"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		b.SetBytes(1 << 20)
		for i := 0; i < b.N; i++ {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFetch reads 64 MiB of stored 1 KiB records with raw Fetch requests (1 MiB per
// partition per fetch) and reads the response frames without decoding them: the server's
// fetch path alone, sending records with sendfile or copying them through memory.
func BenchmarkFetch(b *testing.B) {
	for _, mode := range []struct {
		name string
		copy bool
	}{{"sendfile", false}, {"copy", true}} {
		b.Run(mode.name, func(b *testing.B) {
			ts := startServer(b, b.TempDir(), withConfig(func(c *Config) { c.CopyFetch = mode.copy }))
			defer ts.stop()
			total := fillTopic(b, ts.addr, "fetch", 64<<20)
			nc, err := net.Dial("tcp", ts.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			b.SetBytes(total)
			cpu := processCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got := fetchAllRaw(b, nc, "fetch", total)
				if got < total {
					b.Fatalf("fetched %d of %d bytes", got, total)
				}
			}
			b.StopTimer()
			reportCPUPerMB(b, cpu, total)
		})
	}
	b.Run("limit=loopback-tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}()
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		buf := make([]byte, 1<<20)
		b.SetBytes(64 << 20)
		for i := 0; i < b.N; i++ {
			for j := 0; j < 64; j++ {
				if _, err := nc.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkConsume: a franz-go consumer reading 64 MiB of 1 KiB records from the start.
func BenchmarkConsume(b *testing.B) {
	ts := startServer(b, b.TempDir())
	defer ts.stop()
	total := fillTopic(b, ts.addr, "consume", 64<<20)
	n := int(total / benchRecord)
	b.SetBytes(total)
	cpu := processCPU()
	b.ResetTimer()
	defer func() { b.StopTimer(); reportCPUPerMB(b, cpu, total) }()
	for i := 0; i < b.N; i++ {
		cl, err := kgo.NewClient(kgo.SeedBrokers(ts.addr), kgo.ConsumeTopics("consume"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for got < n {
			fs := cl.PollFetches(context.Background())
			got += fs.NumRecords()
		}
		cl.Close()
	}
}

func createTopicB(b *testing.B, addr, topic string, partitions int32) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, -1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	if _, err := req.RequestWith(context.Background(), cl); err != nil {
		b.Fatal(err)
	}
}

// fillTopic produces about size bytes of 1 KiB records and returns the bytes stored.
func fillTopic(b *testing.B, addr, topic string, size int) int64 {
	createTopicB(b, addr, topic, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	value := make([]byte, benchRecord)
	for i := 0; i < size/benchRecord; i++ {
		cl.Produce(context.Background(), &kgo.Record{Value: value}, nil)
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if _, err := req.RequestWith(ctx, cl); err != nil {
		b.Fatal(err)
	}
	return int64(size/benchRecord) * benchRecord
}

// fetchAllRaw fetches topic/0 from offset 0 until about want bytes of frames arrived,
// following the offsets in the batch headers without decoding records.
func fetchAllRaw(b *testing.B, nc net.Conn, topic string, want int64) int64 {
	var got int64
	offset := int64(0)
	var frame []byte
	for corr := int32(1); got < want; corr++ {
		req := kmsg.NewPtrFetchRequest()
		req.Version = 11
		req.MaxBytes = 50 << 20
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset = offset
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		if _, err := nc.Write(appendRequestFrame(nil, req, corr, nil)); err != nil {
			b.Fatal(err)
		}
		var size [4]byte
		if _, err := io.ReadFull(nc, size[:]); err != nil {
			b.Fatal(err)
		}
		n := int(binary.BigEndian.Uint32(size[:]))
		if cap(frame) < n {
			frame = make([]byte, n)
		}
		frame = frame[:n]
		if _, err := io.ReadFull(nc, frame); err != nil {
			b.Fatal(err)
		}
		// Records start after: corr(4) throttle(4) err(2) session(4) topics(4) name(2+len)
		// parts(4) partition(4) err(2) hw(8) lso(8) lss(8) aborted(4) replica(4) len(4).
		at := 4 + 4 + 2 + 4 + 4 + 2 + len(topic) + 4 + 4 + 2 + 8 + 8 + 8 + 4 + 4
		recLen := int(int32(binary.BigEndian.Uint32(frame[at:])))
		recs := frame[at+4 : at+4+recLen]
		if len(recs) == 0 {
			b.Fatalf("empty fetch at offset %d", offset)
		}
		for len(recs) >= 61 {
			base := int64(binary.BigEndian.Uint64(recs))
			l := int(binary.BigEndian.Uint32(recs[8:])) + 12
			last := int32(binary.BigEndian.Uint32(recs[23:]))
			offset = base + int64(last) + 1
			recs = recs[l:]
		}
		got += int64(recLen)
	}
	return got
}

// processCPU is the process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPUPerMB reports the process CPU (client and server together) per MB moved.
func reportCPUPerMB(b *testing.B, since time.Duration, perOp int64) {
	used := processCPU() - since
	b.ReportMetric(float64(used.Microseconds())/(float64(perOp)*float64(b.N)/1e6), "cpu-us/MB")
}
