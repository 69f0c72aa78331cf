package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startKind says where a consumer starts reading a partition.
type startKind int

const (
	startBeginning startKind = iota // the log start offset
	startEnd                        // the log end offset: only new records
	startOffset                     // an absolute offset, clamped to [start, end]
	startFromEnd                    // N records before the end, clamped to start
	startTime                       // the first record with timestamp >= a time
)

// startSpec is a parsed --from (consume) or --to (group seek).
type startSpec struct {
	kind   startKind
	offset int64 // startOffset: the offset; startFromEnd: how many before the end
	millis int64 // startTime: Unix milliseconds
}

func (s startSpec) String() string {
	switch s.kind {
	case startBeginning:
		return "beginning"
	case startEnd:
		return "end"
	case startOffset:
		return strconv.FormatInt(s.offset, 10)
	case startFromEnd:
		return "-" + strconv.FormatInt(s.offset, 10)
	case startTime:
		return "@" + formatMillis(s.millis)
	}
	return "?"
}

// parseFrom parses consume's --from: beginning, end, an offset N, -N (N records before
// the end of each partition), or @TIME where TIME is Unix milliseconds, an RFC 3339 time,
// or -DURATION before now (@-5m).
func parseFrom(s string, now time.Time) (startSpec, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "beginning", "earliest", "start", "oldest":
		return startSpec{kind: startBeginning}, nil
	case "end", "latest", "newest":
		return startSpec{kind: startEnd}, nil
	case "":
		return startSpec{}, fmt.Errorf("empty position")
	}
	if ts, ok := strings.CutPrefix(s, "@"); ok {
		ms, err := parseTime(ts, now)
		if err != nil {
			return startSpec{}, err
		}
		return startSpec{kind: startTime, millis: ms}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return startSpec{}, fmt.Errorf("position %q is not beginning, end, an offset, -N or @TIME", s)
	}
	if n < 0 {
		return startSpec{kind: startFromEnd, offset: -n}, nil
	}
	return startSpec{kind: startOffset, offset: n}, nil
}

// parseSeekTo parses group seek's --to: earliest, latest, timestamp:TIME, offset:N.
func parseSeekTo(s string, now time.Time) (startSpec, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "earliest", "beginning":
		return startSpec{kind: startBeginning}, nil
	case "latest", "end":
		return startSpec{kind: startEnd}, nil
	}
	kind, val, ok := strings.Cut(s, ":")
	if !ok || val == "" {
		return startSpec{}, fmt.Errorf("--to %q is not earliest, latest, timestamp:TIME or offset:N", s)
	}
	switch strings.ToLower(kind) {
	case "timestamp", "time", "ts":
		ms, err := parseTime(val, now)
		if err != nil {
			return startSpec{}, err
		}
		return startSpec{kind: startTime, millis: ms}, nil
	case "offset":
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 {
			return startSpec{}, fmt.Errorf("offset %q is not a non-negative integer", val)
		}
		return startSpec{kind: startOffset, offset: n}, nil
	}
	return startSpec{}, fmt.Errorf("--to %q is not earliest, latest, timestamp:TIME or offset:N", s)
}

// parseTime parses Unix milliseconds, an RFC 3339 time, or -DURATION before now.
func parseTime(s string, now time.Time) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty time")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("time %q is negative", s)
		}
		return n, nil
	}
	if strings.HasPrefix(s, "-") {
		d, err := time.ParseDuration(s[1:])
		if err != nil {
			return 0, fmt.Errorf("time %q: %w", s, err)
		}
		return now.Add(-d).UnixMilli(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("time %q is not Unix milliseconds, RFC 3339 (2026-01-02T15:04:05Z) or -DURATION", s)
	}
	return t.UnixMilli(), nil
}

// kgoOffset is the reset offset kgo uses for partitions without a committed offset.
func (s startSpec) kgoOffset() kgo.Offset {
	switch s.kind {
	case startEnd:
		return kgo.NewOffset().AtEnd()
	case startOffset:
		return kgo.NewOffset().At(s.offset)
	case startFromEnd:
		return kgo.NewOffset().AtEnd().Relative(-s.offset)
	case startTime:
		return kgo.NewOffset().AfterMilli(s.millis)
	}
	return kgo.NewOffset().AtStart()
}

// partitionBounds are a partition's log start and end offsets at one moment.
type partitionBounds struct {
	start, end int64
}

// listBounds lists the start and end offsets of topic's partitions.
func listBounds(ctx context.Context, adm *kadm.Client, topic string) (map[int32]partitionBounds, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, topicErr(topic, fmt.Errorf("list start offsets: %w", err))
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, topicErr(topic, fmt.Errorf("list end offsets: %w", err))
	}
	out := map[int32]partitionBounds{}
	for p, o := range starts[topic] {
		out[p] = partitionBounds{start: o.Offset, end: ends[topic][p].Offset}
	}
	return out, nil
}

// resolve turns a startSpec into an offset per partition, given the partitions' bounds.
func resolve(ctx context.Context, adm *kadm.Client, topic string, spec startSpec, bounds map[int32]partitionBounds) (map[int32]int64, error) {
	out := make(map[int32]int64, len(bounds))
	var byTime kadm.ListedOffsets
	if spec.kind == startTime {
		var err error
		byTime, err = adm.ListOffsetsAfterMilli(ctx, spec.millis, topic)
		if err == nil {
			err = byTime.Error()
		}
		if err != nil {
			return nil, topicErr(topic, fmt.Errorf("list offsets after %s: %w", formatMillis(spec.millis), err))
		}
	}
	for p, b := range bounds {
		out[p] = resolveOne(spec, b, byTime, topic, p)
	}
	return out, nil
}

func resolveOne(spec startSpec, b partitionBounds, byTime kadm.ListedOffsets, topic string, p int32) int64 {
	switch spec.kind {
	case startEnd:
		return b.end
	case startOffset:
		return min(max(spec.offset, b.start), b.end)
	case startFromEnd:
		return max(b.end-spec.offset, b.start)
	case startTime:
		// No record at or after the time: the end.
		if o, ok := byTime.Lookup(topic, p); ok && o.Offset >= 0 {
			return min(max(o.Offset, b.start), b.end)
		}
		return b.end
	}
	return b.start
}
