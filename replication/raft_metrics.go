package replication

import (
	"sort"
	"strings"
	"sync"

	metrics "github.com/hashicorp/go-metrics/compat"
)

// hashicorp/raft reports timings (commit time, log dispatch, AppendEntries round trips,
// StoreLogs, FSM apply) and counters through go-metrics. raftSink collects them for the
// admin endpoint: timings as running counts, sums and maxima in milliseconds, added up
// across groups and peers.
type raftSink struct {
	mu       sync.Mutex
	samples  map[string]*RaftMetric
	counters map[string]*RaftMetric
}

// RaftMetric is one hashicorp/raft metric on this node since it started.
type RaftMetric struct {
	Name  string  // e.g. "raft_commitTime"
	Kind  string  // "timing_ms" or "counter"
	Count uint64  // samples (timings)
	Sum   float64 // milliseconds for timings, the total for counters
	Max   float64 // the largest sample (timings)
}

var (
	sinkOnce   sync.Once
	globalSink = &raftSink{samples: map[string]*RaftMetric{}, counters: map[string]*RaftMetric{}}
)

// collectRaftMetrics installs the sink as go-metrics' global sink (once per process).
func collectRaftMetrics() {
	sinkOnce.Do(func() {
		cfg := metrics.DefaultConfig("sluice")
		cfg.EnableHostname = false
		cfg.EnableHostnameLabel = false
		cfg.EnableRuntimeMetrics = false
		cfg.EnableServiceLabel = false
		cfg.EnableTypePrefix = false
		cfg.ServiceName = ""
		_, _ = metrics.NewGlobal(cfg, globalSink)
	})
}

// RaftMetrics returns the hashicorp/raft metrics this process has seen, sorted by name.
func RaftMetrics() []RaftMetric {
	s := globalSink
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RaftMetric, 0, len(s.samples)+len(s.counters))
	for _, m := range s.samples {
		out = append(out, *m)
	}
	for _, m := range s.counters {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func metricName(key []string) string {
	parts := make([]string, 0, len(key))
	for _, k := range key {
		if k != "" {
			parts = append(parts, k)
		}
	}
	return strings.Join(parts, "_")
}

func (s *raftSink) AddSample(key []string, val float32) { s.AddSampleWithLabels(key, val, nil) }
func (s *raftSink) AddSampleWithLabels(key []string, val float32, _ []metrics.Label) {
	name := metricName(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.samples[name]
	if !ok {
		if len(s.samples) > 500 {
			return
		}
		m = &RaftMetric{Name: name, Kind: "timing_ms"}
		s.samples[name] = m
	}
	m.Count++
	m.Sum += float64(val)
	m.Max = max(m.Max, float64(val))
}

func (s *raftSink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }
func (s *raftSink) IncrCounterWithLabels(key []string, val float32, _ []metrics.Label) {
	name := metricName(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.counters[name]
	if !ok {
		if len(s.counters) > 500 {
			return
		}
		m = &RaftMetric{Name: name, Kind: "counter"}
		s.counters[name] = m
	}
	m.Sum += float64(val)
}

func (s *raftSink) SetGauge([]string, float32)                                     {}
func (s *raftSink) SetGaugeWithLabels([]string, float32, []metrics.Label)          {}
func (s *raftSink) EmitKey([]string, float32)                                      {}
func (s *raftSink) SetPrecisionGauge([]string, float64)                            {}
func (s *raftSink) SetPrecisionGaugeWithLabels([]string, float64, []metrics.Label) {}
