package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/replication"
)

// serveConfig is what `sluice serve` runs with.
type serveConfig struct {
	dataDir           string
	listen            string
	advertise         string
	nodeID            int32
	logLevel          string
	maxRequestBytes   int32
	autoCreateTopics  bool
	defaultPartitions int32
	fsync             string
	fsyncInterval     time.Duration
	idleTimeout       time.Duration
	shutdownTimeout   time.Duration
	copyFetch         bool
	gcMinHeap         int64
	minFreeBytes      int64
	// Consumer groups.
	offsetsPartitions       int32
	offsetsRetentionMinutes int
	groupInitialDelay       time.Duration
	// Cluster (serve_cluster.go).
	cluster clusterFlags
}

// serveFlags defines the flags of `sluice serve`. Each flag can also be set through the
// environment as SLUICE_<FLAG> (upper case, dashes as underscores); the command line wins.
func serveFlags(cfg *serveConfig) *pflag.FlagSet {
	fs := pflag.NewFlagSet("sluice serve", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringVar(&cfg.dataDir, "data-dir", "./data", "directory for partitions and cluster metadata")
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:9092", "host:port to accept Kafka clients on")
	fs.StringVar(&cfg.advertise, "advertise", "", "host:port clients are told to connect to (default: the listen address; 127.0.0.1 for an unspecified host)")
	fs.Int32Var(&cfg.nodeID, "node-id", 0, "this node's broker ID")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Int32Var(&cfg.maxRequestBytes, "max-request-bytes", protocol.DefaultMaxRequestBytes, "largest request frame accepted; larger ones close the connection")
	fs.BoolVar(&cfg.autoCreateTopics, "auto-create-topics", true, "create unknown topics when clients ask for their metadata")
	fs.Int32Var(&cfg.defaultPartitions, "default-partitions", 1, "partitions of topics created without a count")
	fs.StringVar(&cfg.fsync, "fsync", "always", "always: acknowledge writes once fsynced (group commit); interval: fsync every --fsync-interval; never: leave it to the OS")
	fs.DurationVar(&cfg.fsyncInterval, "fsync-interval", time.Second, "period of background fsyncs with --fsync=interval")
	fs.DurationVar(&cfg.idleTimeout, "idle-timeout", protocol.DefaultIdleTimeout, "close client connections idle this long")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long to let in-flight requests finish")
	fs.Int64Var(&cfg.minFreeBytes, "min-free-bytes", 1<<30, "refuse writes (KAFKA_STORAGE_ERROR) while the data directory's file system has less free space than this, so a filling disk stops writes cleanly and keeps serving reads (0: write until the disk is full)")
	fs.BoolVar(&cfg.copyFetch, "copy-fetch", false, "serve fetches by copying records through memory instead of sendfile")
	fs.Int64Var(&cfg.gcMinHeap, "gc-min-heap", defaultGCMinHeap, "bytes the Go heap may reach before a garbage collection, however little of it is live (0: the runtime's default; ignored when GOGC is set)")
	fs.Int32Var(&cfg.offsetsPartitions, "offsets-topic-partitions", group.DefaultPartitions, "partitions of __consumer_offsets when it is created (an existing topic keeps its count)")
	fs.IntVar(&cfg.offsetsRetentionMinutes, "offsets-retention-minutes", int(group.DefaultOffsetsRetention/time.Minute), "how long committed offsets of a group without members are kept")
	fs.DurationVar(&cfg.groupInitialDelay, "group-initial-rebalance-delay", group.DefaultInitialRebalanceDelay, "how long a new group's first rebalance waits for more members (0: none)")
	addClusterFlags(fs, &cfg.cluster)
	return fs
}

// applyEnv sets every flag not given on the command line from SLUICE_<FLAG>.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := "SLUICE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// serve runs `sluice serve` until SIGTERM or SIGINT and returns the exit code.
func serve(args []string, stdout, stderr io.Writer) int {
	var cfg serveConfig
	fs := serveFlags(&cfg)
	fs.SetOutput(stderr)
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return 2
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: sluice serve [flags]\n\nRuns a Sluice node. Every flag can also be set as SLUICE_<FLAG>, e.g. SLUICE_DATA_DIR.\n\n%s", fs.FlagUsages())
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := applyEnv(fs, os.Getenv); err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return 2
	}
	logger, err := newLogger(cfg.logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return 2
	}
	defer logger.Sync()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("server failed", zap.Error(err))
		return 1
	}
	return 0
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w)))), nil
}

// advertised returns the address clients are told to use.
func advertised(cfg serveConfig, bound net.Addr) (string, error) {
	if cfg.advertise != "" {
		if _, _, err := net.SplitHostPort(cfg.advertise); err != nil {
			return "", fmt.Errorf("--advertise: %w", err)
		}
		return cfg.advertise, nil
	}
	host, _, err := net.SplitHostPort(cfg.listen)
	if err != nil {
		return "", fmt.Errorf("--listen: %w", err)
	}
	_, port, _ := net.SplitHostPort(bound.String())
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// run starts the node and serves until ctx ends, then shuts down in order: stop
// accepting and finish in-flight requests, close the partitions (clean log close, so the
// next start skips recovery), then replication and metadata.
func run(ctx context.Context, cfg serveConfig, logger *zap.Logger) error {
	fsync, err := replication.ParseFsyncMode(cfg.fsync)
	if err != nil {
		return fmt.Errorf("--fsync: %w", err)
	}
	if cfg.defaultPartitions <= 0 {
		return fmt.Errorf("--default-partitions must be at least 1")
	}
	if cfg.gcMinHeap < 0 {
		return fmt.Errorf("--gc-min-heap must not be negative")
	}
	if os.Getenv("GOGC") == "" {
		defer keepHeapFloor(uint64(cfg.gcMinHeap))()
	}
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDataDir(cfg.dataDir)
	if err != nil {
		return err
	}
	defer unlock()

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	adv, err := advertised(cfg, ln.Addr())
	if err != nil {
		return err
	}

	node := replication.Node{ID: replication.NodeID(cfg.nodeID), KafkaAddr: adv}
	var refused <-chan struct{} // closed when the cluster refuses this node (removed)
	var refusedErr func() error
	var handOff func(context.Context) (int, error) // cluster mode: leaderships to other nodes before stopping
	var ctrl replication.Controller
	var repl replication.Replicator
	if cfg.cluster.clustered() {
		cl, err := startCluster(ctx, cfg.cluster, cfg.nodeID, cfg.dataDir, adv, minFree(cfg.minFreeBytes), logger)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctrl, repl = cl.Controller, cl.Replicator
		handOff = cl.HandOff
		refused, refusedErr = cl.Controller.Refused(), cl.Controller.RefusedErr
	} else {
		if err := notClusterData(cfg.dataDir); err != nil {
			return err
		}
		lctrl, err := replication.OpenLocalController(cfg.dataDir, node)
		if err != nil {
			return err
		}
		defer lctrl.Close()
		lrepl := replication.NewLocalReplicator(replication.LocalConfig{
			NodeID:        node.ID,
			Dir:           cfg.dataDir,
			MinFreeBytes:  minFree(cfg.minFreeBytes),
			Fsync:         fsync,
			FsyncInterval: cfg.fsyncInterval,
			OnSyncError: func(key string, err error) {
				logger.Error("fsync failed; the partition refuses writes until restarted", zap.String("key", key), zap.Error(err))
			},
		})
		defer lrepl.Close()
		ctrl, repl = lctrl, lrepl
	}
	stopAdmin, err := startAdmin(cfg.cluster, cfg.nodeID, ctrl, repl, logger)
	if err != nil {
		return err
	}
	defer stopAdmin()
	parts, err := partition.NewManager(partition.ManagerConfig{
		DataDir: cfg.dataDir, NodeID: node.ID, Controller: ctrl, Replicator: repl, Logger: logger,
	})
	if err != nil {
		return err
	}
	partsClosed := false
	defer func() {
		if !partsClosed {
			parts.Close()
		}
	}()

	srv, err := protocol.New(protocol.Config{
		NodeID:            cfg.nodeID,
		MaxRequestBytes:   cfg.maxRequestBytes,
		IdleTimeout:       cfg.idleTimeout,
		AutoCreateTopics:  cfg.autoCreateTopics,
		DefaultPartitions: cfg.defaultPartitions,
		CopyFetch:         cfg.copyFetch,
		Logger:            logger,
		Controller:        ctrl,
		Replicator:        repl,
		Partitions:        parts,
		Groups: group.Config{
			Partitions:            cfg.offsetsPartitions,
			OffsetsRetention:      time.Duration(cfg.offsetsRetentionMinutes) * time.Minute,
			InitialRebalanceDelay: initialRebalanceDelay(cfg.groupInitialDelay),
		},
	})
	if err != nil {
		return err
	}
	logger.Info("sluice serving",
		zap.String("listen", ln.Addr().String()), zap.String("advertise", adv), zap.Int32("node_id", cfg.nodeID),
		zap.String("data_dir", cfg.dataDir), zap.String("fsync", fsync.String()),
		zap.Int("partitions", len(parts.Partitions())), zap.Int("pid", os.Getpid()))

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: finishing in-flight requests")
	case err := <-serveErr:
		logger.Error("listener failed; shutting down", zap.Error(err))
	case <-refused:
		runErr = refusedErr()
		logger.Error("the cluster refused this node; shutting down", zap.Error(runErr))
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if handOff != nil && runErr == nil {
		// Like Kafka's controlled shutdown: the partitions led here get new leaders now,
		// not after an election timeout, and clients asking here are told where they went.
		hctx, hcancel := context.WithTimeout(sctx, handOffTimeout)
		handed, err := handOff(hctx)
		if err != nil {
			logger.Warn("handing off leadership before shutting down", zap.Error(err))
		}
		hcancel()
		if handed > 0 {
			// Clients still sending here now get NOT_LEADER_OR_FOLLOWER naming the new
			// leader (KIP-951) and move at once; a closed port would leave them to find
			// it through a metadata refresh, which they rate-limit (about a second).
			select {
			case <-time.After(handOffLinger):
			case <-sctx.Done():
			}
		}
	}
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("in-flight requests did not finish in time", zap.Error(err))
	}
	partsClosed = true
	if err := parts.Close(); err != nil {
		return fmt.Errorf("closing partitions: %w", err)
	}
	logger.Info("shutdown complete")
	return runErr
}

// lockDataDir takes an exclusive lock on DATA/.lock so that two servers never share a
// data directory.
func lockDataDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data dir %s: another process is using it: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// initialRebalanceDelay maps --group-initial-rebalance-delay to group.Config, where zero
// means the default and a negative value none.
func initialRebalanceDelay(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// defaultGCMinHeap is the default of --gc-min-heap.
const defaultGCMinHeap = 64 << 20

// keepHeapFloor lets the heap grow to floor bytes between garbage collections while
// little of it is live, and returns a function that stops doing so. A node's live heap is
// small (a few MB) while every request allocates a little, so with the runtime's default
// (collect when the heap doubles, at least 4 MB) it collects several times a second, and
// each collection delays the requests in flight. After each collection the GC percentage
// is set so that the next one comes at max(2 x live, floor); with a large live heap that
// is the runtime's default of 100.
func keepHeapFloor(floor uint64) (stop func()) {
	if floor == 0 {
		return func() {}
	}
	var stopped atomic.Bool
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	tune := func() {
		metrics.Read(sample)
		pct := 100
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if live := sample[0].Value.Uint64(); live > 0 && live < floor/2 {
				pct = int(min(float64(floor)/float64(live), 1000)*100) - 100
			}
		}
		debug.SetGCPercent(pct)
	}
	// A finalizer runs after the collection that found its object unreachable: each one
	// re-tunes and arms the next.
	var arm func()
	arm = func() {
		sentinel := new([64]byte) // not a tiny allocation: its finalizer runs alone
		runtime.SetFinalizer(sentinel, func(*[64]byte) {
			if stopped.Load() {
				return
			}
			tune()
			arm()
		})
	}
	tune()
	arm()
	return func() {
		stopped.Store(true)
		debug.SetGCPercent(100)
	}
}

// minFree turns --min-free-bytes into the replicators' MinFreeBytes (negative: off).
func minFree(flag int64) int64 {
	if flag <= 0 {
		return -1
	}
	return flag
}

// handOffTimeout bounds how long a shutting-down cluster node waits for its leaderships to
// move to other nodes.
const handOffTimeout = 10 * time.Second

// handOffLinger is how long a node that handed off leaderships keeps answering before it
// stops serving.
const handOffLinger = 500 * time.Millisecond
