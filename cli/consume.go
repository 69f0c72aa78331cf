package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(&command{
		path:  "consume",
		args:  "TOPIC",
		short: "print records: partition, offset, timestamp, key, value, headers",
		setup: func(fs *pflag.FlagSet) runFunc {
			var o consumeOpts
			from := fs.String("from", "beginning", "where to start: beginning, end, OFFSET, -N (N before the end), @UNIX-MS, @RFC3339 or @-DURATION")
			fs.IntVarP(&o.count, "count", "n", 0, "stop after this many records (0: no limit)")
			fs.BoolVarP(&o.follow, "follow", "f", false, "keep waiting for new records instead of stopping at the end")
			fs.Int32SliceVarP(&o.partitions, "partition", "p", nil, "read only these partitions (repeatable or comma-separated)")
			fs.StringVarP(&o.group, "group", "g", "", "consume as a member of this consumer group and commit what is printed; --from applies to partitions without a committed offset")
			return func(e *env, args []string) error {
				topic, err := oneArg("consume", "TOPIC", args)
				if err != nil {
					return err
				}
				o.topic = topic
				if o.from, err = parseFrom(*from, time.Now()); err != nil {
					return usagef("consume", "--from: %v", err)
				}
				if o.count < 0 {
					return usagef("consume", "--count must not be negative")
				}
				if o.group != "" && len(o.partitions) > 0 {
					return usagef("consume", "--group and --partition do not go together: the group assigns partitions")
				}
				return consume(e, o)
			}
		},
	})
}

type consumeOpts struct {
	topic      string
	from       startSpec
	count      int
	follow     bool
	partitions []int32
	group      string
}

// recordOut is one record in JSON output.
type recordOut struct {
	Topic     string      `json:"topic"`
	Partition int32       `json:"partition"`
	Offset    int64       `json:"offset"`
	Timestamp int64       `json:"timestamp"`
	Key       bytesField  `json:"key"`
	Value     bytesField  `json:"value"`
	Headers   []headerOut `json:"headers"`
}

type headerOut struct {
	Key   string     `json:"key"`
	Value bytesField `json:"value"`
}

// recordPrinter prints records as a table (flushed after each batch) or JSON lines.
type recordPrinter struct {
	w       io.Writer
	json    bool
	t       *streamTable
	printed int
}

func (p *recordPrinter) print(r *kgo.Record) error {
	p.printed++
	if p.json {
		out := recordOut{
			Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(),
			Key: bytesField{r.Key}, Value: bytesField{nonNilBytes(r.Value)}, Headers: []headerOut{},
		}
		for _, h := range r.Headers {
			out.Headers = append(out.Headers, headerOut{Key: h.Key, Value: bytesField{nonNilBytes(h.Value)}})
		}
		return writeJSON(p.w, out)
	}
	if p.t == nil {
		p.t = newStreamTable(p.w, "PARTITION", "OFFSET", "TIMESTAMP", "KEY", "VALUE", "HEADERS")
	}
	hs := make([]string, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = h.Key + "=" + text(nonNilBytes(h.Value))
	}
	p.t.row(r.Partition, r.Offset, formatMillis(r.Timestamp.UnixMilli()), text(r.Key), text(nonNilBytes(r.Value)), strings.Join(hs, ","))
	return nil
}

func (p *recordPrinter) flush() error {
	if p.t != nil {
		return p.t.flush()
	}
	return nil
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// progress tracks, per partition, the next offset to print and the end to stop at when
// not following. A partition is done when next >= end.
type progress struct {
	mu   sync.Mutex
	next map[int32]int64
	end  map[int32]int64
	// assigned is set once the partitions to read are known (at once without a group,
	// after the first assignment with one).
	assigned bool
	// pending: the group's assignment changed; starts must be looked up again.
	pending map[int32]bool
}

func (pr *progress) done() bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if !pr.assigned || len(pr.pending) > 0 {
		return false
	}
	for p, n := range pr.next {
		if n < pr.end[p] {
			return false
		}
	}
	return true
}

func consume(e *env, o consumeOpts) error {
	adm, err := e.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := e.reqCtx()
	details, err := adm.ListTopics(ctx, o.topic)
	if err != nil {
		cancel()
		return fmt.Errorf("look up topic %q: %w", o.topic, err)
	}
	if d, ok := details[o.topic]; !ok || d.Err != nil {
		cancel()
		if ok {
			return topicErr(o.topic, d.Err)
		}
		return fmt.Errorf("topic %q does not exist", o.topic)
	}
	bounds, err := listBounds(ctx, adm, o.topic)
	if err != nil {
		cancel()
		return err
	}
	if len(o.partitions) > 0 {
		keep := map[int32]partitionBounds{}
		for _, p := range o.partitions {
			b, ok := bounds[p]
			if !ok {
				cancel()
				return fmt.Errorf("topic %q has no partition %d (it has %d)", o.topic, p, len(bounds))
			}
			keep[p] = b
		}
		bounds = keep
	}
	pr := &progress{next: map[int32]int64{}, end: map[int32]int64{}, pending: map[int32]bool{}}
	for p, b := range bounds {
		pr.end[p] = b.end
	}
	opts := []kgo.Opt{kgo.FetchMaxWait(500 * time.Millisecond)}
	if o.group == "" {
		starts, err := resolve(ctx, adm, o.topic, o.from, bounds)
		if err != nil {
			cancel()
			return err
		}
		offsets := map[int32]kgo.Offset{}
		for p, s := range starts {
			offsets[p] = kgo.NewOffset().At(s)
			pr.next[p] = s
		}
		pr.assigned = true
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.topic: offsets}))
	} else {
		opts = append(opts,
			kgo.ConsumerGroup(o.group),
			kgo.ConsumeTopics(o.topic),
			kgo.ConsumeResetOffset(o.from.kgoOffset()),
			kgo.AutoCommitMarks(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				pr.mu.Lock()
				defer pr.mu.Unlock()
				pr.assigned = true
				for _, p := range m[o.topic] {
					pr.pending[p] = true
				}
			}),
			kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
				pr.mu.Lock()
				for _, p := range m[o.topic] {
					delete(pr.next, p)
					delete(pr.pending, p)
				}
				pr.mu.Unlock()
				// Commit what was printed before the partitions go to another member.
				_ = cl.CommitMarkedOffsets(ctx)
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				pr.mu.Lock()
				defer pr.mu.Unlock()
				for _, p := range m[o.topic] {
					delete(pr.next, p)
					delete(pr.pending, p)
				}
			}),
		)
	}
	cancel()

	cl, err := kgo.NewClient(e.clientOpts(opts...)...)
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	defer cl.Close()
	if o.group != "" {
		defer func() {
			// Commit what was printed, then leave the group so others take over at once.
			ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
			defer cancel()
			if err := cl.CommitMarkedOffsets(ctx); err != nil {
				fmt.Fprintf(e.stderr, "sluice consume: commit offsets of group %q: %v\n", o.group, err)
			}
			_ = cl.LeaveGroupContext(ctx)
		}()
	}
	printer := &recordPrinter{w: e.stdout, json: e.json()}
	for {
		if o.count > 0 && printer.printed >= o.count {
			return printer.flush()
		}
		if !o.follow && pr.done() {
			return printer.flush()
		}
		if err := e.ctx.Err(); err != nil {
			return printer.flush() // interrupted: stop quietly
		}
		if o.group != "" {
			if err := lookUpGroupStarts(e, adm, o, pr); err != nil {
				return err
			}
		}
		pollCtx, cancel := context.WithTimeout(e.ctx, 500*time.Millisecond)
		max := -1
		if o.count > 0 {
			max = o.count - printer.printed
		}
		fetches := cl.PollRecords(pollCtx, max)
		cancel()
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			if fetchErr == nil {
				fetchErr = fmt.Errorf("fetch %s partition %d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			printer.flush()
			return fetchErr
		}
		var perr error
		fetches.EachRecord(func(r *kgo.Record) {
			if perr != nil {
				return
			}
			pr.mu.Lock()
			end, known := pr.end[r.Partition]
			if !o.follow && known && r.Offset >= end {
				pr.next[r.Partition] = r.Offset + 1
				pr.mu.Unlock()
				return // arrived after the command started
			}
			pr.next[r.Partition] = r.Offset + 1
			pr.mu.Unlock()
			if o.count > 0 && printer.printed >= o.count {
				return
			}
			perr = printer.print(r)
			if o.group != "" {
				cl.MarkCommitRecords(r)
			}
		})
		if perr != nil {
			return perr
		}
		if err := printer.flush(); err != nil {
			return err
		}
	}
}

// lookUpGroupStarts finds where newly assigned partitions start: the group's committed
// offset, or --from where nothing is committed.
func lookUpGroupStarts(e *env, adm *kadm.Client, o consumeOpts, pr *progress) error {
	pr.mu.Lock()
	n := len(pr.pending)
	pr.mu.Unlock()
	if n == 0 {
		return nil
	}
	ctx, cancel := e.reqCtx()
	defer cancel()
	committed, err := adm.FetchOffsetsForTopics(ctx, o.group, o.topic)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return fmt.Errorf("fetch committed offsets of group %q: %w", o.group, err)
	}
	bounds, err := listBounds(ctx, adm, o.topic)
	if err != nil {
		return err
	}
	resolved, err := resolve(ctx, adm, o.topic, o.from, bounds)
	if err != nil {
		return err
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for p := range pr.pending {
		start := resolved[p]
		if c, ok := committed.Lookup(o.topic, p); ok && c.Err == nil && c.At >= 0 {
			start = c.At
		}
		// Records may have arrived already: never move back.
		if next, ok := pr.next[p]; !ok || start > next {
			pr.next[p] = start
		}
		delete(pr.pending, p)
	}
	return nil
}
