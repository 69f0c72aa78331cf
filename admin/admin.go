package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/replication"
)

// Config configures the admin server.
type Config struct {
	Listen     string // host:port
	NodeID     replication.NodeID
	Controller replication.Controller
	Replicator replication.Replicator
	Logger     *zap.Logger
}

// Server is the admin HTTP server. It owns its listener and serving goroutine; Close stops
// both.
type Server struct {
	cfg   Config
	ln    net.Listener
	http  *http.Server
	start time.Time
	done  chan struct{}

	mu     sync.Mutex // guards extra
	extra  []func(io.Writer)
	closed bool
}

// Start listens on cfg.Listen and serves in the background.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Controller == nil || cfg.Replicator == nil {
		return nil, errors.New("admin: controller and replicator are required")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, ln: ln, start: time.Now(), done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /v1/cluster", s.cluster)
	mux.HandleFunc("POST /v1/cluster/nodes/{id}/remove", s.removeNode)
	mux.HandleFunc("POST /v1/cluster/rebalance", s.rebalance)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("admin server stopped", zap.Error(err))
		}
	}()
	cfg.Logger.Info("admin endpoint listening", zap.String("addr", ln.Addr().String()))
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// AddMetrics registers fn to append lines in Prometheus text format to /metrics.
func (s *Server) AddMetrics(fn func(io.Writer)) {
	s.mu.Lock()
	s.extra = append(s.extra, fn)
	s.mu.Unlock()
}

// Close stops serving, waiting up to 5 s for requests in flight.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	<-s.done
	return err
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.cfg.Controller.State().ControllerID < 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "no controller leader\n")
		return
	}
	io.WriteString(w, "ready\n")
}

func (s *Server) status() *replication.ClusterStatus {
	return replication.Status(s.cfg.NodeID, s.cfg.Controller, s.cfg.Replicator)
}

func (s *Server) cluster(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.status()); err != nil {
		s.cfg.Logger.Debug("admin: write /v1/cluster", zap.Error(err))
	}
}

func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	st := s.status()
	m := &metricWriter{w: w}
	m.gauge("sluice_up", "1 while the node serves.", nil, 1)
	m.gauge("sluice_uptime_seconds", "Seconds since the admin endpoint started.", nil, time.Since(s.start).Seconds())
	m.gauge("sluice_metadata_version", "The cluster metadata version this node has applied.", nil, float64(st.Version))
	m.gauge("sluice_controller_leader", "The controller leader's node ID, -1 when unknown.", nil, float64(st.Controller.Leader))
	if st.Controller.State != "" {
		m.gauge("sluice_controller_term", "This node's Raft term in the controller group.", nil, float64(st.Controller.Term))
	}
	for _, n := range st.Nodes {
		m.gauge("sluice_node_alive", "1 when the controller considers the node alive.", []string{"node", strconv.Itoa(int(n.ID))}, b2f(n.Alive))
	}
	for _, n := range st.Nodes {
		m.gauge("sluice_node_partitions_led", "Partitions each node leads, as this node sees it.", []string{"node", strconv.Itoa(int(n.ID))}, float64(n.Leads))
	}
	m.gauge("sluice_partitions", "Partitions in the cluster.", nil, float64(len(st.Partitions)))
	var leaderless, under, notPreferred int
	for _, p := range st.Partitions {
		switch {
		case p.Leader < 0:
			leaderless++
		case len(p.Replicas) > 0 && p.Leader != p.Replicas[0]:
			notPreferred++
		}
		if len(p.ISR) < len(p.Replicas) {
			under++
		}
	}
	m.gauge("sluice_partitions_leaderless", "Partitions without a leader, as this node sees them: not served.", nil, float64(leaderless))
	m.gauge("sluice_partitions_under_replicated", "Partitions with fewer live replicas than replicas, as this node sees them.", nil, float64(under))
	m.gauge("sluice_partitions_not_preferred_leader", "Partitions led by another replica than their preferred (first) one, as this node sees them; sluice cluster elect-leaders hands them back.", nil, float64(notPreferred))
	if d := st.Disk; d != nil {
		m.gauge("sluice_disk_free_bytes", "Bytes free in the file system of this node's data directory (0 when it cannot be looked at).", nil, float64(d.FreeBytes))
		m.gauge("sluice_disk_min_free_bytes", "Bytes this node keeps free (--min-free-bytes): below it, writes are refused; 0 when the check is off.", nil, float64(d.MinFreeBytes))
		m.gauge("sluice_writes_refused", "1 while this node refuses writes (KAFKA_STORAGE_ERROR) because its disk has less free space than it keeps free.", nil, b2f(d.WritesRefused))
	}
	groupGauges := []struct {
		name, help string
		value      func(g *replication.GroupStatus) float64
	}{
		{"sluice_raft_group_leader", "The data group's leader node ID, -1 when unknown.", func(g *replication.GroupStatus) float64 { return float64(g.Leader) }},
		{"sluice_raft_group_is_leader", "1 when this node leads the data group and serves.", func(g *replication.GroupStatus) float64 { return b2f(g.Ready) }},
		{"sluice_raft_group_term", "This node's Raft term in the data group.", func(g *replication.GroupStatus) float64 { return float64(g.Term) }},
		{"sluice_raft_group_last_index", "Last index in this node's data-group Raft log.", func(g *replication.GroupStatus) float64 { return float64(g.LastIndex) }},
		{"sluice_raft_group_commit_index", "Commit index this node knows for the data group.", func(g *replication.GroupStatus) float64 { return float64(g.CommitIndex) }},
		{"sluice_raft_group_applied_index", "Index this node has applied in the data group.", func(g *replication.GroupStatus) float64 { return float64(g.AppliedIndex) }},
		{"sluice_raft_group_partitions", "Partitions carried by the data group.", func(g *replication.GroupStatus) float64 { return float64(g.Partitions) }},
		{"sluice_raft_group_apply_failing", "1 while a committed entry of the data group keeps failing to apply on this node (it is tried again; the group refuses writes meanwhile if led here).", func(g *replication.GroupStatus) float64 { return b2f(g.ApplyFailure != "") }},
	}
	for _, gg := range groupGauges {
		for i := range st.Groups {
			if g := &st.Groups[i]; g.Local {
				m.gauge(gg.name, gg.help, []string{"group", g.Name}, gg.value(g))
			}
		}
	}
	for _, rm := range replication.RaftMetrics() {
		name := "sluice_" + promName(rm.Name)
		switch rm.Kind {
		case "timing_ms":
			m.counter(name+"_ms_count", "hashicorp/raft timing "+rm.Name+": samples.", float64(rm.Count))
			m.counter(name+"_ms_sum", "hashicorp/raft timing "+rm.Name+": total milliseconds.", rm.Sum)
			m.gauge(name+"_ms_max", "hashicorp/raft timing "+rm.Name+": largest sample in milliseconds.", nil, rm.Max)
		case "counter":
			m.counter(name+"_total", "hashicorp/raft counter "+rm.Name+".", rm.Sum)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.gauge("go_goroutines", "Goroutines.", nil, float64(runtime.NumGoroutine()))
	m.gauge("go_memstats_heap_alloc_bytes", "Heap bytes allocated and in use.", nil, float64(ms.HeapAlloc))
	m.gauge("go_memstats_sys_bytes", "Bytes obtained from the OS.", nil, float64(ms.Sys))
	s.mu.Lock()
	extra := append([]func(io.Writer){}, s.extra...)
	s.mu.Unlock()
	for _, fn := range extra {
		fn(w)
	}
}

// promName turns a go-metrics name into a Prometheus one: [a-zA-Z0-9_] only.
func promName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricWriter writes gauges in Prometheus text format, each family's HELP and TYPE once.
type metricWriter struct {
	w    io.Writer
	seen map[string]bool
}

func (m *metricWriter) counter(name, help string, v float64) {
	m.sample(name, help, "counter", nil, v)
}

func (m *metricWriter) gauge(name, help string, labels []string, v float64) {
	m.sample(name, help, "gauge", labels, v)
}

func (m *metricWriter) sample(name, help, kind string, labels []string, v float64) {
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	if !m.seen[name] {
		m.seen[name] = true
		fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}
	fmt.Fprint(m.w, name)
	if len(labels) > 0 {
		fmt.Fprint(m.w, "{")
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				fmt.Fprint(m.w, ",")
			}
			fmt.Fprintf(m.w, "%s=%q", labels[i], labels[i+1])
		}
		fmt.Fprint(m.w, "}")
	}
	fmt.Fprintf(m.w, " %s\n", strconv.FormatFloat(v, 'g', -1, 64))
}
