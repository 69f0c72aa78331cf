package main

import (
	"context"
	"fmt"
	"path/filepath"
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
	raftListen      string
	groupsPerNode   int
	electionTimeout time.Duration
	snapThreshold   uint64
	snapBytes       int64
	snapInterval    time.Duration
	trailingLogs    uint64
	trailingBytes   int64
	adminListen     string
}

func addClusterFlags(fs *pflag.FlagSet, c *clusterFlags) {
	fs.StringVar(&c.peers, "peers", "", "every node of the cluster as ID@HOST:PORT (Raft addresses), comma-separated, the same on every node; empty: a single node without Raft")
	fs.StringVar(&c.raftListen, "raft-listen", "", "host:port of the Raft port shared by all groups (default: this node's address in --peers)")
	fs.IntVar(&c.groupsPerNode, "raft-groups-per-node", 3, "data Raft groups per node for each replication factor; partitions are spread over them")
	fs.DurationVar(&c.electionTimeout, "raft-election-timeout", time.Second, "Raft heartbeat and election timeout")
	fs.Uint64Var(&c.snapThreshold, "raft-snapshot-threshold", 8192, "data-group entries between snapshots (a snapshot fsyncs the partitions and lets Raft drop its log head)")
	fs.Int64Var(&c.snapBytes, "raft-snapshot-bytes", 256<<20, "bytes of data-group Raft log between snapshots")
	fs.DurationVar(&c.snapInterval, "raft-snapshot-interval", 2*time.Minute, "how often data groups check whether a snapshot is due")
	fs.Uint64Var(&c.trailingLogs, "raft-trailing-logs", 1024, "data-group entries kept behind a snapshot for followers that lag (one further behind copies what it misses from the leader)")
	fs.Int64Var(&c.trailingBytes, "raft-trailing-bytes", 64<<20, "about how many bytes of data-group Raft log to keep behind a snapshot (fewer entries than --raft-trailing-logs when they are large, at least 64)")
	fs.StringVar(&c.adminListen, "admin-listen", "", "host:port of the admin HTTP endpoint (health, metrics, /v1/cluster); empty: off")
}

// clustered says whether the node runs as part of a Raft cluster.
func (c *clusterFlags) clustered() bool { return c.peers != "" }

// startCluster starts the Raft side of the node (data under DATA/raft) and waits until
// the controller has a leader and this node has its metadata, or ctx ends.
func startCluster(ctx context.Context, c clusterFlags, nodeID int32, dataDir, kafkaAddr string, logger *zap.Logger) (*replication.Cluster, error) {
	peers, err := replication.ParsePeers(c.peers)
	if err != nil {
		return nil, fmt.Errorf("--peers: %w", err)
	}
	cl, err := replication.StartCluster(replication.ClusterConfig{
		NodeID:          replication.NodeID(nodeID),
		Peers:           peers,
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
	})
	if err != nil {
		return nil, err
	}
	logger.Info("waiting for the cluster's controller", zap.String("peers", c.peers))
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
