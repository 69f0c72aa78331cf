package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/admin"
	"github.com/sluicemq/sluice/replication"
)

// clusterFlags are the flags of `sluice serve` for running as one node of a Raft cluster,
// and the admin endpoint (which a single node serves too).
type clusterFlags struct {
	peers           string
	join            string
	raftListen      string
	groupsPerNode   int
	electionTimeout time.Duration
	snapThreshold   uint64
	snapBytes       int64
	snapInterval    time.Duration
	trailingLogs    uint64
	trailingBytes   int64
	autoRebalance   bool
	adminListen     string
}

func addClusterFlags(fs *pflag.FlagSet, c *clusterFlags) {
	fs.StringVar(&c.peers, "peers", "", "every node of the cluster as ID@HOST:PORT (Raft addresses), comma-separated, the same on every node; empty (and no --join): a single node without Raft")
	fs.StringVar(&c.join, "join", "", "Raft addresses (HOST:PORT, comma-separated) of some nodes of a running cluster for this node to join as a new voter, instead of --peers; needs --raft-listen (its own advertised Raft address); restart a joined node with the same flags")
	fs.StringVar(&c.raftListen, "raft-listen", "", "host:port of the Raft port shared by all groups, which other nodes dial (default: this node's address in --peers; required with --join)")
	fs.IntVar(&c.groupsPerNode, "raft-groups-per-node", 3, "data Raft groups per node for each replication factor; partitions are spread over them")
	fs.DurationVar(&c.electionTimeout, "raft-election-timeout", time.Second, "Raft heartbeat and election timeout")
	fs.Uint64Var(&c.snapThreshold, "raft-snapshot-threshold", 8192, "data-group entries between snapshots (a snapshot fsyncs the partitions and lets Raft drop its log head)")
	fs.Int64Var(&c.snapBytes, "raft-snapshot-bytes", 256<<20, "bytes of data-group Raft log between snapshots")
	fs.DurationVar(&c.snapInterval, "raft-snapshot-interval", 2*time.Minute, "how often data groups check whether a snapshot is due")
	fs.Uint64Var(&c.trailingLogs, "raft-trailing-logs", 1024, "data-group entries kept behind a snapshot for followers that lag (one further behind copies what it misses from the leader)")
	fs.Int64Var(&c.trailingBytes, "raft-trailing-bytes", 64<<20, "about how many bytes of data-group Raft log to keep behind a snapshot (fewer entries than --raft-trailing-logs when they are large, at least 64)")
	fs.BoolVar(&c.autoRebalance, "auto-leader-rebalance", true, "a data group led by another member hands its leadership back to its preferred member once that node has been up for 5 s, so leadership stays spread over the nodes (Kafka's auto.leader.rebalance.enable); when false, kafka-leader-election or `sluice cluster elect-leaders` does it")
	fs.StringVar(&c.adminListen, "admin-listen", "", "host:port of the admin HTTP endpoint (health, metrics, /v1/cluster); empty: off")
}

// clustered says whether the node runs as part of a Raft cluster: with --peers, or with
// --join for a node joining a running one.
func (c *clusterFlags) clustered() bool { return c.peers != "" || c.join != "" }

// clusterConfig checks the cluster flags and turns them into the replication config.
// --join and --peers are exclusive; --join needs --raft-listen, the address the other
// nodes will dial.
func clusterConfig(c clusterFlags, nodeID int32, dataDir, kafkaAddr string, logger *zap.Logger) (replication.ClusterConfig, error) {
	cfg := replication.ClusterConfig{
		NodeID:          replication.NodeID(nodeID),
		RaftListen:      c.raftListen,
		KafkaAddr:       kafkaAddr,
		Dir:             filepath.Join(dataDir, "raft"),
		GroupsPerNode:   c.groupsPerNode,
		ElectionTimeout: c.electionTimeout,

		SnapshotThreshold: c.snapThreshold,
		SnapshotBytes:     c.snapBytes,
		SnapshotInterval:  c.snapInterval,
		TrailingLogs:      c.trailingLogs,
		TrailingBytes:     c.trailingBytes,
		Logger:            logger,

		NoAutoLeaderRebalance: !c.autoRebalance,
	}
	if c.join == "" {
		peers, err := replication.ParsePeers(c.peers)
		if err != nil {
			return cfg, fmt.Errorf("--peers: %w", err)
		}
		cfg.Peers = peers
		return cfg, nil
	}
	if c.peers != "" {
		return cfg, errors.New("--join and --peers do not go together: --peers forms a new cluster, --join adds this node to a running one")
	}
	if c.raftListen == "" {
		return cfg, errors.New("--join needs --raft-listen: this node's Raft HOST:PORT, which the other nodes dial")
	}
	if _, _, err := net.SplitHostPort(c.raftListen); err != nil {
		return cfg, fmt.Errorf("--raft-listen: %w", err)
	}
	for _, addr := range strings.Split(c.join, ",") {
		addr = strings.TrimSpace(addr)
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return cfg, fmt.Errorf("--join %q: %w", addr, err)
		}
		cfg.Join = append(cfg.Join, addr)
	}
	if len(cfg.Join) == 0 {
		return cfg, fmt.Errorf("--join %q names no address", c.join)
	}
	return cfg, nil
}

// notClusterData refuses to start a single node on the data directory of a cluster node
// (one with DATA/raft): it would serve an empty metadata of its own beside the cluster's.
func notClusterData(dataDir string) error {
	dir := filepath.Join(dataDir, "raft")
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%s holds a cluster node's Raft state: start it with --peers (or --join) as before, not as a single node", dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data dir: %w", err)
	}
	return nil
}

// startCluster starts the Raft side of the node (data under DATA/raft) and waits until
// the controller has a leader and this node has its metadata, or ctx ends. A joining node
// waits until the cluster has made it a voter.
func startCluster(ctx context.Context, c clusterFlags, nodeID int32, dataDir, kafkaAddr string, minFreeBytes int64, logger *zap.Logger) (*replication.Cluster, error) {
	cfg, err := clusterConfig(c, nodeID, dataDir, kafkaAddr, logger)
	if err != nil {
		return nil, err
	}
	cfg.MinFreeBytes = minFreeBytes
	cl, err := replication.StartCluster(cfg)
	if err != nil {
		return nil, err
	}
	if c.join != "" {
		logger.Info("joining the cluster; waiting for its controller", zap.Strings("join", cfg.Join), zap.String("raft_addr", c.raftListen))
	} else {
		logger.Info("waiting for the cluster's controller", zap.String("peers", c.peers))
	}
	start := time.Now()
	if err := cl.Controller.WaitReady(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("waiting for the controller: %w", err)
	}
	leader, _ := cl.Controller.Leader()
	logger.Info("cluster metadata ready", zap.Int32("controller", int32(leader)), zap.Duration("after", time.Since(start)))
	return cl, nil
}

// startAdmin starts the admin endpoint when --admin-listen is set; the returned function
// stops it.
func startAdmin(c clusterFlags, nodeID int32, ctrl replication.Controller, repl replication.Replicator, logger *zap.Logger) (func(), error) {
	if c.adminListen == "" {
		return func() {}, nil
	}
	s, err := admin.Start(admin.Config{
		Listen: c.adminListen, NodeID: replication.NodeID(nodeID),
		Controller: ctrl, Replicator: repl, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	return func() { s.Close() }, nil
}
