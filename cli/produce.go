package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(&command{
		path:  "produce",
		args:  "TOPIC",
		short: "produce one record per line of stdin",
		setup: func(fs *pflag.FlagSet) runFunc {
			var o produceOpts
			fs.StringVarP(&o.keySep, "key-separator", "K", "", "split each line at the first `SEP` into key and value (a line without SEP has no key)")
			headers := fs.StringArrayP("header", "H", nil, "header `key=value` added to every record, repeatable")
			fs.Int32VarP(&o.partition, "partition", "p", -1, "produce to this partition (-1: by key hash, or spread when there is no key)")
			acks := fs.String("acks", "all", "acknowledgement: all (-1), 1 (leader) or 0 (none)")
			compression := fs.StringP("compression", "z", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
			fs.DurationVar(&o.linger, "linger", 10*time.Millisecond, "how long a batch waits for more records")
			fs.BoolVarP(&o.verbose, "verbose", "v", false, "print the partition and offset of every record")
			return func(e *env, args []string) error {
				topic, err := oneArg("produce", "TOPIC", args)
				if err != nil {
					return err
				}
				o.topic = topic
				if o.headers, err = parseHeaders(*headers); err != nil {
					return usagef("produce", "%v", err)
				}
				if o.acks, err = parseAcks(*acks); err != nil {
					return usagef("produce", "%v", err)
				}
				if o.compression, err = parseCompression(*compression); err != nil {
					return usagef("produce", "%v", err)
				}
				return produce(e, o)
			}
		},
	})
}

type produceOpts struct {
	topic       string
	keySep      string
	headers     []kgo.RecordHeader
	partition   int32
	acks        acksMode
	compression kgo.CompressionCodec
	linger      time.Duration
	verbose     bool
}

// acksMode is the producer's required acknowledgement.
type acksMode int8

const (
	acksAll    acksMode = -1
	acksNone   acksMode = 0
	acksLeader acksMode = 1
)

func (a acksMode) String() string {
	switch a {
	case acksNone:
		return "0"
	case acksLeader:
		return "1"
	}
	return "all"
}

func parseAcks(s string) (acksMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "all", "-1":
		return acksAll, nil
	case "1", "leader":
		return acksLeader, nil
	case "0", "none":
		return acksNone, nil
	}
	return 0, fmt.Errorf("--acks %q is not all, 1 or 0", s)
}

// kgoOpts are the producer options for these acks: idempotent writes need acks=all.
func (a acksMode) kgoOpts() []kgo.Opt {
	switch a {
	case acksNone:
		return []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}
	case acksLeader:
		return []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}
	}
	return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}
}

func parseCompression(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression %q is not none, gzip, snappy, lz4 or zstd", s)
}

func parseHeaders(kvs []string) ([]kgo.RecordHeader, error) {
	var hs []kgo.RecordHeader
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("header %q is not key=value", kv)
		}
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return hs, nil
}

// splitLine turns one input line into key and value. Without a separator, or when the
// line lacks it, the key is nil.
func splitLine(line []byte, sep string) (key, value []byte) {
	if sep == "" {
		return nil, line
	}
	if i := bytes.Index(line, []byte(sep)); i >= 0 {
		return line[:i], line[i+len(sep):]
	}
	return nil, line
}

// readLines calls fn with each line of r, without its line ending ("\n" or "\r\n").
func readLines(r io.Reader, fn func(line []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimSuffix(line, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\r"))
			if ferr := fn(line); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
	}
}

// producedOut is one acknowledged record in JSON output; Line counts from 1.
type producedOut struct {
	Line      int    `json:"line"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Error     string `json:"error,omitempty"`
}

type partitionRange struct {
	Partition int32 `json:"partition"`
	Records   int   `json:"records"`
	First     int64 `json:"first_offset"`
	Last      int64 `json:"last_offset"`
}

type produceSummary struct {
	Topic      string           `json:"topic"`
	Records    int              `json:"records"`
	Bytes      int64            `json:"bytes"`
	Failed     int              `json:"failed"`
	Seconds    float64          `json:"seconds"`
	Acks       string           `json:"acks"`
	Partitions []partitionRange `json:"partitions"`
	Offsets    []producedOut    `json:"offsets,omitempty"`
	FirstError string           `json:"first_error,omitempty"`
}

func produce(e *env, o produceOpts) error {
	if _, err := e.connect(); err != nil {
		return err
	}
	opts := append(o.acks.kgoOpts(),
		kgo.AllowAutoTopicCreation(),
		kgo.ProducerLinger(o.linger),
		kgo.ProducerBatchCompression(o.compression),
		kgo.RecordDeliveryTimeout(max(e.timeout, 30*time.Second)),
		kgo.UnknownTopicRetries(3),
	)
	if o.partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(e.clientOpts(opts...)...)
	if err != nil {
		return fmt.Errorf("create producer: %w", err)
	}
	defer cl.Close()

	var (
		mu       sync.Mutex
		results  []producedOut
		ranges   = map[int32]*partitionRange{}
		failed   int
		firstErr error
		bytesOut int64
		lines    int
	)
	start := time.Now()
	readErr := readLines(e.stdin, func(line []byte) error {
		if err := e.ctx.Err(); err != nil {
			return err
		}
		lines++
		n := lines
		key, value := splitLine(line, o.keySep)
		r := &kgo.Record{
			Topic:     o.topic,
			Key:       bytes.Clone(key),
			Value:     bytes.Clone(value),
			Headers:   o.headers,
			Partition: o.partition,
		}
		bytesOut += int64(len(r.Key) + len(r.Value))
		cl.Produce(e.ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			res := producedOut{Line: n, Partition: r.Partition, Offset: r.Offset}
			if err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
				res.Error = err.Error()
			} else {
				pr := ranges[r.Partition]
				if pr == nil {
					pr = &partitionRange{Partition: r.Partition, First: r.Offset}
					ranges[r.Partition] = pr
				}
				pr.Records++
				pr.First = min(pr.First, r.Offset)
				pr.Last = max(pr.Last, r.Offset)
			}
			if e.json() { // table output prints as it goes and keeps nothing per record
				results = append(results, res)
			}
			if o.verbose && !e.json() {
				if err != nil {
					fmt.Fprintf(e.stdout, "line %d: %v\n", n, err)
				} else {
					fmt.Fprintf(e.stdout, "line %d: partition %d offset %d\n", n, r.Partition, r.Offset)
				}
			}
		})
		return nil
	})
	flushCtx, cancel := context.WithTimeout(context.Background(), max(e.timeout, 30*time.Second))
	flushErr := cl.Flush(flushCtx)
	cancel()
	elapsed := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
	sum := produceSummary{
		Topic: o.topic, Records: lines - failed, Bytes: bytesOut, Failed: failed,
		Seconds: elapsed.Seconds(), Acks: o.acks.String(), Partitions: []partitionRange{},
	}
	for _, r := range ranges {
		sum.Partitions = append(sum.Partitions, *r)
	}
	sort.Slice(sum.Partitions, func(i, j int) bool { return sum.Partitions[i].Partition < sum.Partitions[j].Partition })
	if e.json() {
		sort.Slice(results, func(i, j int) bool { return results[i].Line < results[j].Line })
		sum.Offsets = results
		if firstErr != nil {
			sum.FirstError = firstErr.Error()
		}
		if err := writeJSON(e.stdout, sum); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "produced %s (%s) to %s in %s, acks=%s\n", plural(int64(sum.Records), "record"), humanBytes(float64(bytesOut)), o.topic, elapsed.Round(time.Millisecond), o.acks)
		if len(sum.Partitions) > 0 && o.acks != acksNone {
			t := newTable(e.stdout, "PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET")
			for _, r := range sum.Partitions {
				t.row(r.Partition, r.Records, r.First, r.Last)
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	switch {
	case readErr != nil && !errors.Is(readErr, context.Canceled):
		return readErr
	case firstErr != nil:
		return fmt.Errorf("%d of %d records failed: %w", failed, lines, produceErr(o.topic, firstErr))
	case flushErr != nil:
		return fmt.Errorf("flush: %w", flushErr)
	}
	return nil
}

// produceErr names the topic in errors about it.
func produceErr(topic string, err error) error {
	if strings.Contains(err.Error(), "UNKNOWN_TOPIC") {
		return topicErr(topic, err)
	}
	return err
}
