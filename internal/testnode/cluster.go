package testnode

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ClusterConfig describes a Raft cluster of nodes on 127.0.0.1.
type ClusterConfig struct {
	Nodes   int // default 3
	FirstID int // node IDs are FirstID, FirstID+1, ...; default 1
	// AdminFlag, if set, gives each node a free admin HTTP port through this flag
	// ("--admin-listen"); Node.AdminAddr holds it.
	AdminFlag string
	Args      []string             // extra flags for every node
	NodeArgs  func(i int) []string // extra flags for node i (0-based), if set
	Env       []string
	// ReadyTimeout bounds the wait for every node to answer ApiVersions; default 60 s.
	ReadyTimeout time.Duration
	StopTimeout  time.Duration
}

// Cluster is a set of nodes started together with --node-id, --raft-listen and --peers.
type Cluster struct {
	Nodes []*Node
}

// NewCluster prepares the nodes of a cluster, with free Kafka, Raft and admin ports and
// their own data dirs, without starting them.
func NewCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.FirstID <= 0 {
		cfg.FirstID = 1
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	raft := make([]string, cfg.Nodes)
	peers := make([]string, cfg.Nodes)
	for i := range raft {
		raft[i] = FreeAddr(t)
		peers[i] = strconv.Itoa(cfg.FirstID+i) + "@" + raft[i]
	}
	c := &Cluster{}
	for i := 0; i < cfg.Nodes; i++ {
		id := cfg.FirstID + i
		args := []string{"--node-id", strconv.Itoa(id), "--raft-listen", raft[i], "--peers", strings.Join(peers, ",")}
		admin := ""
		if cfg.AdminFlag != "" {
			admin = FreeAddr(t)
			args = append(args, cfg.AdminFlag, admin)
		}
		args = append(args, cfg.Args...)
		if cfg.NodeArgs != nil {
			args = append(args, cfg.NodeArgs(i)...)
		}
		n := New(t, Config{
			Name:         fmt.Sprintf("node%d", id),
			Args:         args,
			Env:          cfg.Env,
			ReadyTimeout: cfg.ReadyTimeout,
			StopTimeout:  cfg.StopTimeout,
		})
		n.ID, n.RaftAddr, n.AdminAddr = id, raft[i], admin
		c.Nodes = append(c.Nodes, n)
	}
	return c
}

// StartCluster starts every node at once (a node may need a quorum before it serves) and
// waits until each answers ApiVersions. Cluster-level readiness (a controller leader, data
// group leaders) is the test's to wait for with WaitFor.
func StartCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	c := NewCluster(t, cfg)
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			t.Fatalf("testnode: %v", err)
		}
	}
	if err := c.WaitReady(c.Nodes[0].cfg.ReadyTimeout); err != nil {
		t.Fatalf("testnode: %v", err)
	}
	return c
}

// WaitReady waits, in parallel, until every running node answers ApiVersions.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.WaitReady(timeout)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Brokers are the Kafka addresses of every node, for kgo.SeedBrokers.
func (c *Cluster) Brokers() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// Node returns the node with this ID, or nil.
func (c *Cluster) Node(id int) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Stop stops every node cleanly, in parallel, and returns the first error.
func (c *Cluster) Stop() error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Stop()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
