package replication

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Peer is one voter of the cluster as given to --peers: "ID@HOST:PORT".
type Peer struct {
	ID       NodeID
	RaftAddr string
}

// ParsePeers parses "1@host:port,2@host:port,...". IDs and addresses must be unique.
func ParsePeers(s string) ([]Peer, error) {
	var peers []Peer
	seenID := map[NodeID]bool{}
	seenAddr := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		idStr, addr, ok := strings.Cut(part, "@")
		id, err := strconv.ParseInt(idStr, 10, 32)
		if !ok || err != nil || id < 0 || addr == "" {
			return nil, fmt.Errorf("peer %q: %w: want ID@HOST:PORT", part, ErrInvalid)
		}
		if seenID[NodeID(id)] || seenAddr[addr] {
			return nil, fmt.Errorf("peer %q: %w: duplicate ID or address", part, ErrInvalid)
		}
		seenID[NodeID(id)], seenAddr[addr] = true, true
		peers = append(peers, Peer{ID: NodeID(id), RaftAddr: addr})
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("peers %q: %w: empty", s, ErrInvalid)
	}
	slices.SortFunc(peers, func(a, b Peer) int { return int(a.ID) - int(b.ID) })
	return peers, nil
}

// ClusterConfig configures one node of a Raft cluster.
type ClusterConfig struct {
	NodeID NodeID
	// Peers are all voters, this node included, identical on every node. The first start
	// of a node with an empty Dir bootstraps the controller group with them.
	Peers []Peer
	// Join, instead of Peers, adds this node to a cluster that is already formed: the
	// Raft addresses of some of its nodes, asked in turn until the controller has made
	// this node a voter. A joining node never bootstraps; RaftListen is then its
	// advertised Raft address. A restart gives the same Join: a node that has Raft state
	// does not ask again.
	Join []string
	// RaftListen is the shared Raft port's listen address; empty means this node's address
	// in Peers.
	RaftListen string
	// KafkaAddr is this node's advertised Kafka address, published through the controller.
	KafkaAddr string
	// Dir holds the Raft state: controller/ and groups/<name>/.
	Dir string
	// GroupsPerNode bounds the data groups: about this many per node for each replication
	// factor in use (see raft_placement.go). Default 3.
	GroupsPerNode int
	// ElectionTimeout is Raft's heartbeat and election timeout. Default 1 s.
	ElectionTimeout time.Duration
	// LivenessTimeout is how long the controller leader waits without a heartbeat before it
	// marks a node dead. Default 4 s.
	LivenessTimeout time.Duration
	// SnapshotThreshold (entries) and SnapshotBytes (bytes of Raft log) since the last
	// snapshot make a data group take one; SnapshotInterval is how often raft checks the
	// entry count. TrailingLogs is how many entries a group keeps behind its snapshot for
	// followers that lag (one further behind gets the snapshot and copies the partition
	// data it misses from the leader).
	SnapshotThreshold uint64
	SnapshotBytes     int64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// TrailingBytes bounds the entries kept behind a snapshot by their size as well:
	// a group keeps about this many bytes of log (at least minTrailingLogs entries, at
	// most TrailingLogs). Default 64 MiB.
	TrailingBytes int64
	// FlushBytes: a data group syncs its partitions in the background after this many
	// bytes of Raft log, bounding the dirty data a snapshot or the kernel has to write.
	FlushBytes int64
	// LogCacheBytes bounds the recent entries each data group's log store keeps in memory.
	LogCacheBytes int64
	// MinFreeBytes: a leader refuses new entries (ErrStorage) while the file system of Dir
	// has less free space than this. A filling disk then stops writes cleanly, before a
	// Raft log append fails (the group's leader would step down, again and again) or a
	// partition's append fails after its entry is committed (the replica could not go on
	// until space is freed). Default 1 GiB; negative disables the check.
	MinFreeBytes int64
	// NoAutoLeaderRebalance: a data group led by another member does not hand its
	// leadership back to its preferred member by itself (as Kafka's
	// auto.leader.rebalance.enable=false); ElectPreferred (Kafka's ElectLeaders) does.
	NoAutoLeaderRebalance bool
	Logger                *zap.Logger
}

func (c *ClusterConfig) withDefaults() (ClusterConfig, error) {
	cfg := *c
	if cfg.GroupsPerNode <= 0 {
		cfg.GroupsPerNode = 3
	}
	if cfg.ElectionTimeout <= 0 {
		cfg.ElectionTimeout = time.Second
	}
	if cfg.LivenessTimeout <= 0 {
		cfg.LivenessTimeout = 4 * time.Second
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 8192
	}
	if cfg.SnapshotBytes <= 0 {
		cfg.SnapshotBytes = 256 << 20
	}
	if cfg.FlushBytes <= 0 {
		cfg.FlushBytes = 32 << 20
	}
	if cfg.SnapshotInterval <= 0 {
		cfg.SnapshotInterval = 2 * time.Minute
	}
	if cfg.TrailingLogs == 0 {
		cfg.TrailingLogs = 1024
	}
	if cfg.TrailingBytes <= 0 {
		cfg.TrailingBytes = 64 << 20
	}
	if cfg.LogCacheBytes <= 0 {
		cfg.LogCacheBytes = 64 << 20
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = 1 << 30
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Dir == "" {
		return cfg, fmt.Errorf("cluster config: %w: no data directory", ErrInvalid)
	}
	if len(cfg.Join) > 0 {
		if len(cfg.Peers) > 0 {
			return cfg, fmt.Errorf("cluster config: %w: peers and join are exclusive", ErrInvalid)
		}
		if cfg.RaftListen == "" {
			return cfg, fmt.Errorf("cluster config: %w: a joining node needs its Raft address", ErrInvalid)
		}
		return cfg, nil
	}
	found := false
	for _, p := range cfg.Peers {
		if p.ID == cfg.NodeID {
			found = true
			if cfg.RaftListen == "" {
				cfg.RaftListen = p.RaftAddr
			}
		}
	}
	if !found {
		return cfg, fmt.Errorf("cluster config: %w: node %d is not in the peers", ErrInvalid, cfg.NodeID)
	}
	return cfg, nil
}

// selfAddr is this node's advertised Raft address.
func (c *ClusterConfig) selfAddr() string {
	for _, p := range c.Peers {
		if p.ID == c.NodeID {
			return p.RaftAddr
		}
	}
	return c.RaftListen
}

// raftConfig is the hashicorp/raft configuration shared by all groups of the node.
func (c *ClusterConfig) raftConfig(name string) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = serverID(c.NodeID)
	rc.HeartbeatTimeout = c.ElectionTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.ElectionTimeout / 2
	rc.Logger = hclogFor(c.Logger.With(zap.String("group", name)), "raft")
	rc.NoLegacyTelemetry = true
	return rc
}

func serverID(id NodeID) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

// parseServerID returns the node of a raft server ID, or -1.
func parseServerID(id raft.ServerID) NodeID {
	n, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return -1
	}
	return NodeID(n)
}
