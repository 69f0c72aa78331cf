package cli

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

type benchOpts struct {
	topic       string
	recordSize  int
	count       int64
	duration    time.Duration
	partitions  int32
	replication int16
	acks        acksMode
	linger      time.Duration
	compression kgo.CompressionCodec
	compName    string
	rate        float64
	drain       time.Duration
	warmup      time.Duration
}

func benchFlags(fs *pflag.FlagSet, mode string, o *benchOpts) func() error {
	defTopic, defLinger, defRate, defDuration := "sluice-bench", 10*time.Millisecond, 0.0, 10*time.Second
	if mode == "e2e" {
		defTopic, defLinger, defRate = "sluice-bench-e2e", 0, 2000
	}
	fs.StringVarP(&o.topic, "topic", "t", defTopic, "topic to use (created if missing)")
	if mode != "consume" {
		fs.IntVarP(&o.recordSize, "record-size", "s", 1024, "value size in bytes")
		fs.Int32VarP(&o.partitions, "partitions", "p", 1, "partitions when the topic is created")
		fs.Int16VarP(&o.replication, "replication-factor", "r", -1, "replicas when the topic is created (-1: the broker's default)")
		fs.DurationVar(&o.linger, "linger", defLinger, "producer linger")
		fs.Float64Var(&o.rate, "rate", defRate, "records per second, sent open-loop on a fixed schedule (0: as fast as possible)")
	}
	fs.Int64VarP(&o.count, "count", "n", 0, "records to send or read (0: run for --duration)")
	fs.DurationVarP(&o.duration, "duration", "d", defDuration, "how long to run when --count is 0")
	acks := "all"
	comp := "none"
	if mode != "consume" {
		fs.StringVar(&acks, "acks", "all", "all (-1), 1 or 0")
		fs.StringVarP(&comp, "compression", "z", "none", "none, gzip, snappy, lz4 or zstd")
	}
	if mode == "e2e" {
		fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long to wait for the last records to be consumed")
		fs.DurationVar(&o.warmup, "warmup", time.Second, "send on the schedule this long first without measuring (connections, metadata, producer ID)")
	}
	return func() error {
		var err error
		if o.acks, err = parseAcks(acks); err != nil {
			return err
		}
		if o.compression, err = parseCompression(comp); err != nil {
			return err
		}
		o.compName = comp
		if mode != "consume" && o.recordSize < 0 {
			return fmt.Errorf("--record-size must not be negative")
		}
		if mode == "e2e" && o.recordSize < e2eHeaderLen {
			return fmt.Errorf("--record-size must be at least %d for e2e (the send time is in the value)", e2eHeaderLen)
		}
		if o.count < 0 || o.duration <= 0 && o.count == 0 {
			return fmt.Errorf("give a positive --count or --duration")
		}
		if o.rate < 0 {
			return fmt.Errorf("--rate must not be negative")
		}
		if mode == "e2e" && o.rate == 0 {
			return fmt.Errorf("e2e needs a --rate: latency is measured against a fixed send schedule")
		}
		return nil
	}
}

func init() {
	for _, mode := range []string{"produce", "consume", "e2e"} {
		short := map[string]string{
			"produce": "measure produce throughput and acknowledgement latency",
			"consume": "measure consume throughput, reading a topic from the beginning",
			"e2e":     "measure produce-to-consume latency at a fixed rate",
		}[mode]
		register(&command{
			path:  "bench " + mode,
			short: short,
			setup: func(fs *pflag.FlagSet) runFunc {
				var o benchOpts
				check := benchFlags(fs, mode, &o)
				return func(e *env, args []string) error {
					if len(args) != 0 {
						return usagef("bench "+mode, "takes no arguments, got %q", args)
					}
					if err := check(); err != nil {
						return usagef("bench "+mode, "%v", err)
					}
					switch mode {
					case "produce":
						return benchProduce(e, o)
					case "consume":
						return benchConsume(e, o)
					}
					return benchE2E(e, o)
				}
			},
		})
	}
}

// latencyOut is a latency summary in milliseconds.
type latencyOut struct {
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func latencyOf(h *histogram) *latencyOut {
	if h.total == 0 {
		return nil
	}
	return &latencyOut{P50: ms(h.quantile(0.50)), P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(h.max), Mean: ms(h.mean())}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchSummary is what a bench run prints at the end.
type benchSummary struct {
	Mode          string      `json:"mode"`
	Topic         string      `json:"topic"`
	Records       int64       `json:"records"`
	Bytes         int64       `json:"bytes"`
	Seconds       float64     `json:"seconds"`
	RecordsPerSec float64     `json:"records_per_sec"`
	MBPerSec      float64     `json:"mb_per_sec"` // 10^6 bytes of record values per second
	RecordSize    int         `json:"record_size,omitempty"`
	Acks          string      `json:"acks,omitempty"`
	Compression   string      `json:"compression,omitempty"`
	Linger        string      `json:"linger,omitempty"`
	TargetRate    float64     `json:"target_rate,omitempty"`
	Latency       *latencyOut `json:"latency,omitempty"`     // produce: send to acknowledgement; e2e: scheduled send to consumed
	AckLatency    *latencyOut `json:"ack_latency,omitempty"` // e2e: scheduled send to acknowledgement
	Failed        int64       `json:"failed,omitempty"`      // records not acknowledged
	Missing       int64       `json:"missing,omitempty"`     // e2e: acknowledged but not consumed
	FirstError    string      `json:"first_error,omitempty"`
}

func (s *benchSummary) finish(elapsed time.Duration) {
	s.Seconds = elapsed.Seconds()
	if s.Seconds > 0 {
		s.RecordsPerSec = float64(s.Records) / s.Seconds
		s.MBPerSec = float64(s.Bytes) / 1e6 / s.Seconds
	}
}

func printBench(e *env, s *benchSummary) error {
	if e.json() {
		return writeJSON(e.stdout, s)
	}
	t := newTable(e.stdout)
	t.row("MODE", s.Mode)
	t.row("TOPIC", s.Topic)
	t.row("RECORDS", s.Records)
	t.row("BYTES", fmt.Sprintf("%d (%s)", s.Bytes, humanBytes(float64(s.Bytes))))
	t.row("SECONDS", fmt.Sprintf("%.2f", s.Seconds))
	t.row("RECORDS/S", fmt.Sprintf("%.0f", s.RecordsPerSec))
	t.row("MB/S", fmt.Sprintf("%.1f", s.MBPerSec))
	if s.TargetRate > 0 {
		t.row("TARGET-RATE", fmt.Sprintf("%.0f records/s", s.TargetRate))
	}
	lat := func(name string, l *latencyOut) {
		if l != nil {
			t.row(name, fmt.Sprintf("p50 %.3f ms  p99 %.3f ms  p999 %.3f ms  max %.3f ms", l.P50, l.P99, l.P999, l.Max))
		}
	}
	if s.Mode == "e2e" {
		lat("E2E-LATENCY", s.Latency)
		lat("ACK-LATENCY", s.AckLatency)
	} else {
		lat("LATENCY", s.Latency)
	}
	if s.Failed > 0 {
		t.row("FAILED", s.Failed)
	}
	if s.Missing > 0 {
		t.row("MISSING", s.Missing)
	}
	if s.FirstError != "" {
		t.row("FIRST-ERROR", s.FirstError)
	}
	return t.flush()
}

// ensureTopic creates the bench topic unless it exists.
func ensureTopic(e *env, topic string, partitions int32, replication int16) error {
	ctx, cancel := e.reqCtx()
	defer cancel()
	resp, err := e.admin.CreateTopic(ctx, partitions, replication, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return topicErr(topic, fmt.Errorf("create: %w", err))
	}
	return nil
}

// meter counts records and bytes for the progress line; its histograms are guarded by mu.
type meter struct {
	records atomic.Int64
	bytes   atomic.Int64
	mu      sync.Mutex
	tick    histogram // since the last progress line
	all     histogram
}

func (m *meter) latency(d time.Duration) {
	m.mu.Lock()
	m.tick.record(d)
	m.all.record(d)
	m.mu.Unlock()
}

// progressLoop prints one line per second to w until stop is closed.
func progressLoop(w io.Writer, label string, m *meter, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	start := time.Now()
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	var lastRecords, lastBytes int64
	last := start
	for {
		select {
		case <-stop:
			return
		case now := <-tk.C:
			r, b := m.records.Load(), m.bytes.Load()
			secs := now.Sub(last).Seconds()
			m.mu.Lock()
			p50, p99, n := m.tick.quantile(0.5), m.tick.quantile(0.99), m.tick.total
			m.tick.reset()
			m.mu.Unlock()
			line := fmt.Sprintf("%s %5.0fs  %9.0f records/s  %8.1f MB/s  total %d", label, now.Sub(start).Seconds(),
				float64(r-lastRecords)/secs, float64(b-lastBytes)/1e6/secs, r)
			if n > 0 {
				line += fmt.Sprintf("  p50 %.3f ms  p99 %.3f ms", ms(p50), ms(p99))
			}
			fmt.Fprintln(w, line)
			lastRecords, lastBytes, last = r, b, now
		}
	}
}

// startProgress runs progressLoop and returns the function that stops it.
func startProgress(w io.Writer, label string, m *meter) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go progressLoop(w, label, m, stop, done)
	return func() { close(stop); <-done }
}

// more tells whether a run of this count or duration should send record i.
func (o benchOpts) more(i int64, start time.Time) bool {
	if o.count > 0 {
		return i < o.count
	}
	return time.Since(start) < o.duration
}

// pace sleeps until record i's slot in an open-loop schedule of rate records/s and returns
// the slot's time. Without a rate it returns now.
func pace(ctx context.Context, start time.Time, i int64, rate float64) time.Time {
	if rate <= 0 {
		return time.Now()
	}
	at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return at
}

func (o benchOpts) producerOpts() []kgo.Opt {
	return append(o.acks.kgoOpts(),
		kgo.ProducerLinger(o.linger),
		kgo.ProducerBatchCompression(o.compression),
		kgo.ProducerBatchMaxBytes(max(1000012, int32(o.recordSize)+1024)),
	)
}

func benchProduce(e *env, o benchOpts) error {
	if _, err := e.connect(); err != nil {
		return err
	}
	if err := ensureTopic(e, o.topic, o.partitions, o.replication); err != nil {
		return err
	}
	cl, err := kgo.NewClient(e.clientOpts(o.producerOpts()...)...)
	if err != nil {
		return fmt.Errorf("create producer: %w", err)
	}
	defer cl.Close()

	// Values are slices of one random buffer; the producer only reads them.
	buf := make([]byte, o.recordSize+4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	var (
		m        meter
		failed   atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	stopProgress := startProgress(e.stderr, "produce", &m)
	start := time.Now()
	var i int64
	for ; o.more(i, start) && e.ctx.Err() == nil; i++ {
		sent := pace(e.ctx, start, i, o.rate)
		off := int(i % 4096)
		r := &kgo.Record{Topic: o.topic, Value: buf[off : off+o.recordSize]}
		cl.Produce(e.ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
				return
			}
			m.latency(time.Since(sent))
			m.records.Add(1)
			m.bytes.Add(int64(len(r.Value)))
		})
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), max(e.timeout, 30*time.Second))
	flushErr := cl.Flush(flushCtx)
	cancel()
	elapsed := time.Since(start)
	stopProgress()

	s := &benchSummary{Mode: "produce", Topic: o.topic, Records: m.records.Load(), Bytes: m.bytes.Load(),
		RecordSize: o.recordSize, Acks: o.acks.String(), Compression: o.compName, Linger: o.linger.String(),
		TargetRate: o.rate, Failed: failed.Load()}
	s.finish(elapsed)
	m.mu.Lock()
	s.Latency = latencyOf(&m.all)
	m.mu.Unlock()
	errOnce.Do(func() {})
	if firstErr != nil {
		s.FirstError = firstErr.Error()
	}
	if err := printBench(e, s); err != nil {
		return err
	}
	switch {
	case firstErr != nil:
		return fmt.Errorf("%d records failed: %w", s.Failed, produceErr(o.topic, firstErr))
	case flushErr != nil:
		return fmt.Errorf("flush: %w", flushErr)
	}
	return nil
}

func benchConsume(e *env, o benchOpts) error {
	if _, err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	bounds, err := listBounds(ctx, e.admin, o.topic)
	cancel()
	if err != nil {
		return err
	}
	var available int64
	offsets := map[int32]kgo.Offset{}
	for p, b := range bounds {
		available += b.end - b.start
		offsets[p] = kgo.NewOffset().At(b.start)
	}
	if available == 0 {
		return fmt.Errorf("topic %q has no records: fill it first with 'sluice bench produce -t %s'", o.topic, o.topic)
	}
	want := available
	if o.count > 0 {
		want = min(o.count, available)
	}
	cl, err := kgo.NewClient(e.clientOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.topic: offsets}),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	defer cl.Close()
	var m meter
	stopProgress := startProgress(e.stderr, "consume", &m)
	start := time.Now()
	var fetchErr error
	for m.records.Load() < want && e.ctx.Err() == nil && fetchErr == nil {
		if o.count == 0 && time.Since(start) >= o.duration {
			break
		}
		pctx, cancel := context.WithTimeout(e.ctx, 500*time.Millisecond)
		fetches := cl.PollFetches(pctx)
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && fetchErr == nil {
				fetchErr = fmt.Errorf("fetch %s partition %d: %w", t, p, err)
			}
		})
		var n, b int64
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			b += int64(len(r.Value))
		})
		m.records.Add(n)
		m.bytes.Add(b)
	}
	elapsed := time.Since(start)
	stopProgress()
	s := &benchSummary{Mode: "consume", Topic: o.topic, Records: m.records.Load(), Bytes: m.bytes.Load()}
	s.finish(elapsed)
	if fetchErr != nil {
		s.FirstError = fetchErr.Error()
	}
	if err := printBench(e, s); err != nil {
		return err
	}
	return fetchErr
}

// e2e values start with a run ID and the record's scheduled send time, so latency is
// measured from when the record should have been sent (no coordinated omission).
const e2eHeaderLen = 16

func benchE2E(e *env, o benchOpts) error {
	if _, err := e.connect(); err != nil {
		return err
	}
	if err := ensureTopic(e, o.topic, o.partitions, o.replication); err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	bounds, err := listBounds(ctx, e.admin, o.topic)
	cancel()
	if err != nil {
		return err
	}
	offsets := map[int32]kgo.Offset{}
	for p, b := range bounds {
		offsets[p] = kgo.NewOffset().At(b.end)
	}
	consumer, err := kgo.NewClient(e.clientOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.topic: offsets}),
		kgo.FetchMaxWait(time.Second),
	)...)
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	defer consumer.Close()
	producer, err := kgo.NewClient(e.clientOpts(o.producerOpts()...)...)
	if err != nil {
		return fmt.Errorf("create producer: %w", err)
	}
	defer producer.Close()

	runID := rand.Uint64()
	warmID := runID ^ 1 // warm-up records: consumed but not measured
	base := time.Now()  // send times are nanoseconds since base: monotonic
	var (
		m        meter // consumed, with e2e latency
		ackMu    sync.Mutex
		acks     histogram
		acked    atomic.Int64
		failed   atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	consumeCtx, stopConsume := context.WithCancel(e.ctx)
	defer stopConsume()
	consumed := make(chan error, 1)
	go func() {
		var ferr error
		for consumeCtx.Err() == nil {
			fetches := consumer.PollFetches(consumeCtx)
			now := time.Since(base)
			fetches.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.Canceled) && !errors.Is(err, kgo.ErrClientClosed) && ferr == nil {
					ferr = fmt.Errorf("fetch %s partition %d: %w", t, p, err)
				}
			})
			if ferr != nil {
				consumed <- ferr
				return
			}
			fetches.EachRecord(func(r *kgo.Record) {
				if len(r.Value) < e2eHeaderLen || binary.BigEndian.Uint64(r.Value) != runID {
					return // a warm-up record, or another run's
				}
				sent := time.Duration(binary.BigEndian.Uint64(r.Value[8:]))
				m.latency(now - sent)
				m.records.Add(1)
				m.bytes.Add(int64(len(r.Value)))
			})
		}
		consumed <- nil
	}()

	stopProgress := startProgress(e.stderr, "e2e", &m)
	start := time.Now()
	measureFrom := start.Add(o.warmup)
	var i, measured int64
	for ; e.ctx.Err() == nil; i++ {
		at := pace(e.ctx, start, i, o.rate)
		isMeasured := !at.Before(measureFrom)
		if isMeasured {
			// By schedule, not by the clock: a late sender still sends every record due.
			if (o.count > 0 && measured >= o.count) || (o.count == 0 && at.Sub(measureFrom) >= o.duration) {
				break
			}
			measured++
		}
		id := warmID
		if isMeasured {
			id = runID
		}
		sent := at.Sub(base)
		v := make([]byte, o.recordSize)
		binary.BigEndian.PutUint64(v, id)
		binary.BigEndian.PutUint64(v[8:], uint64(sent))
		producer.Produce(e.ctx, &kgo.Record{Topic: o.topic, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
				return
			}
			if !isMeasured {
				return
			}
			d := time.Since(base) - sent
			ackMu.Lock()
			acks.record(d)
			ackMu.Unlock()
			acked.Add(1)
		})
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), max(e.timeout, 30*time.Second))
	flushErr := producer.Flush(flushCtx)
	cancel()
	sendElapsed := time.Since(measureFrom)
	// Wait for the consumer to see every acknowledged record.
	deadline := time.Now().Add(o.drain)
	var consumeErr error
	consumerDone := false
	for !consumerDone && m.records.Load() < acked.Load() && time.Now().Before(deadline) && e.ctx.Err() == nil {
		select {
		case consumeErr = <-consumed:
			consumerDone = true
		case <-time.After(20 * time.Millisecond):
		}
	}
	stopConsume()
	if !consumerDone {
		consumeErr = <-consumed
	}
	stopProgress()

	s := &benchSummary{Mode: "e2e", Topic: o.topic, Records: m.records.Load(), Bytes: m.bytes.Load(),
		RecordSize: o.recordSize, Acks: o.acks.String(), Compression: o.compName, Linger: o.linger.String(),
		TargetRate: o.rate, Failed: failed.Load()}
	s.finish(sendElapsed)
	s.Missing = max(acked.Load()-s.Records, 0)
	m.mu.Lock()
	s.Latency = latencyOf(&m.all)
	m.mu.Unlock()
	ackMu.Lock()
	s.AckLatency = latencyOf(&acks)
	ackMu.Unlock()
	errOnce.Do(func() {})
	if firstErr != nil {
		s.FirstError = firstErr.Error()
	}
	if err := printBench(e, s); err != nil {
		return err
	}
	switch {
	case firstErr != nil:
		return fmt.Errorf("%d records failed: %w", s.Failed, produceErr(o.topic, firstErr))
	case flushErr != nil:
		return fmt.Errorf("flush: %w", flushErr)
	case consumeErr != nil:
		return consumeErr
	case s.Missing > 0 && e.ctx.Err() == nil:
		return fmt.Errorf("%d acknowledged records were not consumed within --drain %s", s.Missing, o.drain)
	}
	return nil
}
