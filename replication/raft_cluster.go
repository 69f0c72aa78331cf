package replication

import (
	"context"
	"errors"
	"fmt"
)

// Cluster is the Raft side of one node: the shared Raft port, the controller group and
// the data groups.
//
//	c, err := replication.StartCluster(replication.ClusterConfig{
//		NodeID: 1, Peers: peers, KafkaAddr: "10.0.0.1:9092", Dir: "data/raft",
//	})
//	// c.Controller and c.Replicator go to partition.Manager and protocol.Server.
//	defer c.Close()
type Cluster struct {
	Mux        *Mux
	Controller *RaftController
	Replicator *RaftReplicator
	nodeID     NodeID
}

// StartCluster opens the shared Raft port and starts the controller and the replicator.
// It does not wait for a controller leader: call Controller.WaitReady.
func StartCluster(cfg ClusterConfig) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	collectRaftMetrics()
	mux, err := NewMux(cfg.RaftListen, cfg.selfAddr(), cfg.Logger)
	if err != nil {
		return nil, err
	}
	ctrl, err := NewRaftController(cfg, mux)
	if err != nil {
		mux.Close()
		return nil, err
	}
	repl, err := NewRaftReplicator(cfg, mux, ctrl)
	if err != nil {
		ctrl.Close()
		mux.Close()
		return nil, fmt.Errorf("start replicator: %w", err)
	}
	return &Cluster{Mux: mux, Controller: ctrl, Replicator: repl, nodeID: cfg.NodeID}, nil
}

// Status is this node's view of the cluster.
func (c *Cluster) Status() *ClusterStatus { return Status(c.nodeID, c.Controller, c.Replicator) }

// HandOff prepares a shutdown (see RaftReplicator.HandOff and RaftController.HandOff):
// the data groups and the controller group led here get other leaders, and the node
// stops its heartbeats. It returns when that is done or ctx ends, with the number of data
// groups handed off.
func (c *Cluster) HandOff(ctx context.Context) (int, error) {
	n, err := c.Replicator.HandOff(ctx)
	return n, errors.Join(err, c.Controller.HandOff(ctx))
}

// Close stops the data groups, the controller and the Raft port, in that order.
func (c *Cluster) Close() error {
	return errors.Join(c.Replicator.Close(), c.Controller.Close(), c.Mux.Close())
}
