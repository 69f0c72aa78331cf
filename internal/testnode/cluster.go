package testnode

import (
	"fmt"
	"os"
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

// peersArg is the --peers value naming every node's Raft address.
func (c *Cluster) peersArg() string {
	peers := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		peers[i] = strconv.Itoa(n.ID) + "@" + n.RaftAddr
	}
	return strings.Join(peers, ",")
}

// newRaftAddrs gives every node a fresh Raft address and the --peers naming them, and
// empties the data dirs (a cluster formed with the old addresses is gone): for a first
// start that failed because a Raft address was taken.
func (c *Cluster) newRaftAddrs() error {
	for _, n := range c.Nodes {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		n.mu.Lock()
		n.RaftAddr = addr
		n.mu.Unlock()
	}
	peers := c.peersArg()
	for _, n := range c.Nodes {
		n.mu.Lock()
		for i := 0; i+1 < len(n.cfg.Args); i++ {
			switch n.cfg.Args[i] {
			case "--raft-listen":
				n.cfg.Args[i+1] = n.RaftAddr
			case "--peers":
				n.cfg.Args[i+1] = peers
			}
		}
		n.mu.Unlock()
		if err := os.RemoveAll(n.DataDir); err != nil {
			return err
		}
	}
	return nil
}

// raftConflict says whether a node exited because its Raft address was taken.
func (c *Cluster) raftConflict() bool {
	for _, n := range c.Nodes {
		if n.Running() {
			continue
		}
		if addr, ok := n.bindConflict(); ok && addr == n.RaftAddr {
			return true
		}
	}
	return false
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
// group leaders) is the test's to wait for with WaitFor. A taken Kafka or admin port is
// replaced as WaitReady does; when a node cannot bind its Raft address, the cluster is
// formed again from empty data dirs with fresh Raft addresses (up to three times). Once
// formed, the Raft addresses are fixed: a later start waits for a taken one to be free.
func StartCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	return startCluster(t, cfg, nil)
}

// startCluster is StartCluster; tests of the harness take a port in beforeStart.
func startCluster(t testing.TB, cfg ClusterConfig, beforeStart func(*Cluster)) *Cluster {
	t.Helper()
	c := NewCluster(t, cfg)
	if beforeStart != nil {
		beforeStart(c)
	}
	for attempt := 1; ; attempt++ {
		for _, n := range c.Nodes {
			if err := n.Start(); err != nil {
				t.Fatalf("testnode: %v", err)
			}
		}
		err := c.WaitReady(c.Nodes[0].cfg.ReadyTimeout)
		if err == nil {
			break
		}
		if attempt == 3 || !c.raftConflict() {
			t.Fatalf("testnode: %v", err)
		}
		for _, n := range c.Nodes {
			n.note("a Raft address was taken by another process; forming the cluster again with fresh Raft addresses and empty data dirs")
			if err := n.Kill(); err != nil {
				t.Fatalf("testnode: %v", err)
			}
		}
		if err := c.newRaftAddrs(); err != nil {
			t.Fatalf("testnode: %v", err)
		}
	}
	for _, n := range c.Nodes {
		n.mu.Lock()
		n.fixedRaft = true
		n.mu.Unlock()
	}
	return c
}

// WaitReady waits, in parallel, until every node started and not stopped or killed since
// answers ApiVersions. A node that exited on its own is an error (after the retries of
// Node.WaitReady).
func (c *Cluster) WaitReady(timeout time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		if !n.meantToRun() {
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
