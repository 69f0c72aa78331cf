package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/replication"
)

func TestServeFlagsAndEnv(t *testing.T) {
	var cfg serveConfig
	fs := serveFlags(&cfg)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:1234", "--fsync=never"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"SLUICE_LISTEN":             "127.0.0.1:9999", // the command line wins
		"SLUICE_DATA_DIR":           "/tmp/d",
		"SLUICE_NODE_ID":            "7",
		"SLUICE_AUTO_CREATE_TOPICS": "false",
		"SLUICE_MAX_REQUEST_BYTES":  "1048576",
		"SLUICE_DEFAULT_PARTITIONS": "3",
		"SLUICE_LOG_LEVEL":          "debug",
	}
	if err := applyEnv(fs, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if cfg.listen != "127.0.0.1:1234" || cfg.dataDir != "/tmp/d" || cfg.nodeID != 7 || cfg.autoCreateTopics ||
		cfg.maxRequestBytes != 1<<20 || cfg.defaultPartitions != 3 || cfg.logLevel != "debug" || cfg.fsync != "never" {
		t.Fatalf("config %+v", cfg)
	}
	if err := applyEnv(serveFlags(&serveConfig{}), func(k string) string {
		if k == "SLUICE_NODE_ID" {
			return "seven"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "SLUICE_NODE_ID") {
		t.Fatalf("bad env value: %v", err)
	}
}

func TestAdvertised(t *testing.T) {
	bound := &net.TCPAddr{IP: net.IPv4zero, Port: 4321}
	for _, tc := range []struct{ listen, advertise, want string }{
		{"127.0.0.1:0", "", "127.0.0.1:4321"},
		{"0.0.0.0:9092", "", "127.0.0.1:4321"},
		{":9092", "", "127.0.0.1:4321"},
		{"10.1.2.3:9092", "", "10.1.2.3:4321"},
		{"0.0.0.0:9092", "kafka.example:9092", "kafka.example:9092"},
	} {
		got, err := advertised(serveConfig{listen: tc.listen, advertise: tc.advertise}, bound)
		if err != nil || got != tc.want {
			t.Errorf("listen %q advertise %q: %q %v, want %q", tc.listen, tc.advertise, got, err, tc.want)
		}
	}
	if _, err := advertised(serveConfig{listen: "x", advertise: "no-port"}, bound); err == nil {
		t.Error("advertise without a port accepted")
	}
}

// run serves a single node until its context ends, and a second node on the same data
// directory is refused.
func TestRunSingleNode(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var cfg serveConfig
	fs := serveFlags(&cfg)
	if err := fs.Parse([]string{"--data-dir", dir, "--listen", addr}); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{b: &bytes.Buffer{}}
	logger, err := newLogger("info", logs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, logger) }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	if err := cl.ProduceSync(pctx, &kgo.Record{Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	second := cfg
	second.listen = "127.0.0.1:0"
	if err := run(context.Background(), second, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second server on the same data dir: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(logs.String(), "shutdown complete") {
		t.Fatalf("no clean shutdown in the logs:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKeepHeapFloor: with a small live heap the GC percentage rises so that the next
// collection comes near the floor; each collection re-tunes it; stopping restores the
// runtime's default.
func TestKeepHeapFloor(t *testing.T) {
	gogc := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	live := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	const floor = 1 << 30
	runtime.GC()
	stop := keepHeapFloor(floor)
	if got, want := gogc(), floor/live()*100-100; got < 200 || got > want*2 {
		t.Fatalf("GOGC %d with %d bytes live, want about %d", got, live(), want)
	}
	// A collection with a much larger live heap brings the percentage down.
	ballast := make([][]byte, 0, 64)
	for range 64 {
		ballast = append(ballast, make([]byte, 8<<20))
	}
	runtime.GC()
	deadline := time.Now().Add(10 * time.Second)
	for gogc() > 300 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d after a collection with %d bytes live", gogc(), live())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(ballast)
	stop()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC %d after stop, want 100", got)
	}
	// A zero floor leaves the runtime alone.
	keepHeapFloor(0)()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC %d with no floor", got)
	}
}

// TestClusterFlags: --join sets ClusterConfig.Join and needs --raft-listen; it does not go
// with --peers; either makes the node clustered.
func TestClusterFlags(t *testing.T) {
	parse := func(args ...string) clusterFlags {
		t.Helper()
		var cfg serveConfig
		if err := serveFlags(&cfg).Parse(args); err != nil {
			t.Fatal(err)
		}
		return cfg.cluster
	}
	if c := parse(); c.clustered() {
		t.Fatal("no --peers and no --join is clustered")
	}
	c := parse("--join", "10.0.0.1:9093, 10.0.0.2:9093,", "--raft-listen", "10.0.0.4:9093")
	if !c.clustered() {
		t.Fatal("--join is not clustered")
	}
	cfg, err := clusterConfig(c, 4, "/data", "10.0.0.4:9092", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Join, []string{"10.0.0.1:9093", "10.0.0.2:9093"}) || cfg.Peers != nil ||
		cfg.RaftListen != "10.0.0.4:9093" || cfg.NodeID != 4 || cfg.KafkaAddr != "10.0.0.4:9092" || cfg.Dir != filepath.Join("/data", "raft") {
		t.Fatalf("config from --join: %+v", cfg)
	}
	cfg, err = clusterConfig(parse("--peers", "2@h:2,1@h:1"), 1, "/data", "h:9092", zap.NewNop())
	if err != nil || len(cfg.Peers) != 2 || cfg.Join != nil {
		t.Fatalf("config from --peers: %+v %v", cfg, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--join", "h:1"}, "--join needs --raft-listen"},
		{[]string{"--join", "h:1", "--raft-listen", "h:4", "--peers", "1@h:1"}, "--join and --peers do not go together"},
		{[]string{"--join", "h", "--raft-listen", "h:4"}, `--join "h"`},
		{[]string{"--join", " , ", "--raft-listen", "h:4"}, "names no address"},
		{[]string{"--join", "h:1", "--raft-listen", "h"}, "--raft-listen"},
		{[]string{"--peers", "x"}, "--peers"},
	} {
		if _, err := clusterConfig(parse(tc.args...), 4, "/data", "h:9092", zap.NewNop()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
	// The flag can come from the environment like every other.
	var env serveConfig
	fs := serveFlags(&env)
	if err := applyEnv(fs, func(k string) string {
		return map[string]string{"SLUICE_JOIN": "h:1", "SLUICE_RAFT_LISTEN": "h:4"}[k]
	}); err != nil || env.cluster.join != "h:1" || !env.cluster.clustered() {
		t.Fatalf("SLUICE_JOIN: %+v %v", env.cluster, err)
	}
}

// A data directory with a cluster node's Raft state is not served as a single node.
func TestRunRefusesClusterDataAsSingleNode(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "raft"), 0o755); err != nil {
		t.Fatal(err)
	}
	var cfg serveConfig
	if err := serveFlags(&cfg).Parse([]string{"--data-dir", dir, "--listen", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	// Cancelled: were the start not refused, run would return at once after serving.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := run(ctx, cfg, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "--peers (or --join)") {
		t.Fatalf("single node on a cluster node's data: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, replication.LocalControllerFile)); err == nil {
		t.Fatal("the refused start left single-node metadata behind")
	}
}
