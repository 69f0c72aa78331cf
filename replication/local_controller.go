package replication

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/sluicemq/sluice/vfs"
)

// LocalControllerFile is the name of the single-node controller's metadata file in the
// data directory.
const LocalControllerFile = "cluster.json"

// LocalController is the single-node Controller: this node is the whole cluster, holds
// every partition, and keeps metadata in DATA/cluster.json, rewritten atomically (temp
// file, fsync, rename, directory fsync) on every change.
type LocalController struct {
	dir  string
	node Node

	mu sync.Mutex
	// state is replaced, never modified, on each change; readers hold on to old ones.
	state          *ClusterState
	changed        chan struct{}
	nextProducerID int64
	closed         bool
}

// localFile is the on-disk form of the single-node metadata.
type localFile struct {
	Format         int                   `json:"format"`
	Version        uint64                `json:"version"`
	ClusterID      string                `json:"cluster_id"`
	NextProducerID int64                 `json:"next_producer_id"`
	Topics         map[string]localTopic `json:"topics"`
}

type localTopic struct {
	ID         string            `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
}

const localFormat = 1

// ErrCorruptMetadata is returned by OpenLocalController when cluster.json cannot be parsed.
var ErrCorruptMetadata = errors.New("replication: corrupt cluster metadata")

// OpenLocalController loads (or, in an empty directory, creates) the metadata of a
// single-node cluster whose only node is node.
func OpenLocalController(dataDir string, node Node) (*LocalController, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("open controller: %w", err)
	}
	node.Alive = true
	c := &LocalController{dir: dataDir, node: node, changed: make(chan struct{})}
	path := filepath.Join(dataDir, LocalControllerFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		id, err := newUUID()
		if err != nil {
			return nil, fmt.Errorf("open controller: %w", err)
		}
		f := localFile{Format: localFormat, Version: 1, ClusterID: clusterIDString(id), NextProducerID: 1,
			Topics: map[string]localTopic{}}
		if err := c.write(&f); err != nil {
			return nil, fmt.Errorf("open controller: %w", err)
		}
		c.load(&f)
	case err != nil:
		return nil, fmt.Errorf("open controller: %w", err)
	default:
		var f localFile
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("open controller: %s: %w: %v", path, ErrCorruptMetadata, err)
		}
		if f.Format != localFormat {
			return nil, fmt.Errorf("open controller: %s: %w: format %d", path, ErrCorruptMetadata, f.Format)
		}
		if f.Topics == nil {
			f.Topics = map[string]localTopic{}
		}
		if err := c.loadChecked(&f); err != nil {
			return nil, fmt.Errorf("open controller: %s: %w", path, err)
		}
	}
	// Remove a temp file left by a crash between write and rename.
	os.Remove(path + ".tmp")
	return c, nil
}

// clusterIDString formats a cluster ID the way Kafka does: URL-safe base64 of a UUID would
// be closer, but any stable string is accepted by clients; hex keeps it readable.
func clusterIDString(id [16]byte) string { return hex.EncodeToString(id[:]) }

func newUUID() ([16]byte, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("new uuid: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // variant 10
	return id, nil
}

func (c *LocalController) loadChecked(f *localFile) error {
	for name, t := range f.Topics {
		if _, err := parseUUID(t.ID); err != nil {
			return fmt.Errorf("%w: topic %q: %v", ErrCorruptMetadata, name, err)
		}
		if t.Partitions <= 0 {
			return fmt.Errorf("%w: topic %q: %d partitions", ErrCorruptMetadata, name, t.Partitions)
		}
	}
	c.load(f)
	return nil
}

func parseUUID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("bad topic id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// load builds the in-memory state from f (already validated).
func (c *LocalController) load(f *localFile) {
	st := &ClusterState{
		Version:      f.Version,
		ClusterID:    f.ClusterID,
		ControllerID: c.node.ID,
		Nodes:        []Node{c.node},
		Topics:       make(map[string]*Topic, len(f.Topics)),
	}
	for name, lt := range f.Topics {
		id, _ := parseUUID(lt.ID)
		t := &Topic{Name: name, ID: id, Configs: maps.Clone(lt.Configs), Internal: lt.Internal}
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		for p := int32(0); p < lt.Partitions; p++ {
			t.Partitions = append(t.Partitions, PartitionAssignment{Partition: p, Replicas: []NodeID{c.node.ID}})
		}
		st.Topics[name] = t
	}
	c.state = st
	c.nextProducerID = f.NextProducerID
}

// file returns the on-disk form of st.
func (c *LocalController) file(st *ClusterState, nextProducerID int64) *localFile {
	f := &localFile{Format: localFormat, Version: st.Version, ClusterID: st.ClusterID,
		NextProducerID: nextProducerID, Topics: make(map[string]localTopic, len(st.Topics))}
	for name, t := range st.Topics {
		f.Topics[name] = localTopic{ID: hex.EncodeToString(t.ID[:]), Partitions: int32(len(t.Partitions)),
			Configs: t.Configs, Internal: t.Internal}
	}
	return f
}

// write replaces cluster.json with f durably.
func (c *LocalController) write(f *localFile) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	if err := vfs.ReplaceFile(vfs.Default, filepath.Join(c.dir, LocalControllerFile), data); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	return nil
}

// errClosed is returned by changes after Close.
var errClosed = errors.New("replication: controller closed")

// change applies mutate to a copy of the state and commits it: file first, then memory,
// then the Changed channel. mutate returns an error to abandon the change.
func (c *LocalController) change(mutate func(st *ClusterState, nextProducerID *int64) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	st := c.copyState()
	next := c.nextProducerID
	if err := mutate(st, &next); err != nil {
		return err
	}
	st.Version++
	// The file is written under the lock so that writes land in version order; metadata
	// changes are rare.
	if err := c.write(c.file(st, next)); err != nil {
		return err
	}
	c.state = st
	c.nextProducerID = next
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

// copyState copies the top level and the topic map; topics are replaced, never modified.
func (c *LocalController) copyState() *ClusterState {
	st := *c.state
	st.Topics = maps.Clone(c.state.Topics)
	return &st
}

// State implements Controller.
func (c *LocalController) State() *ClusterState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Changed implements Controller.
func (c *LocalController) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// CreateTopic implements Controller. The replication factor must be -1, 0 or 1.
func (c *LocalController) CreateTopic(ctx context.Context, spec TopicSpec) (*Topic, error) {
	if spec.Partitions <= 0 {
		return nil, fmt.Errorf("create topic %q: %w: %d partitions", spec.Name, ErrInvalid, spec.Partitions)
	}
	if spec.ReplicationFactor > 1 {
		return nil, fmt.Errorf("create topic %q: %w: replication factor %d on a single node",
			spec.Name, ErrNotEnoughNodes, spec.ReplicationFactor)
	}
	if spec.ReplicationFactor < -1 {
		return nil, fmt.Errorf("create topic %q: %w: replication factor %d", spec.Name, ErrInvalid, spec.ReplicationFactor)
	}
	id, err := newUUID()
	if err != nil {
		return nil, fmt.Errorf("create topic %q: %w", spec.Name, err)
	}
	t := &Topic{Name: spec.Name, ID: id, Configs: maps.Clone(spec.Configs), Internal: spec.Internal}
	if t.Configs == nil {
		t.Configs = map[string]string{}
	}
	for p := int32(0); p < spec.Partitions; p++ {
		t.Partitions = append(t.Partitions, PartitionAssignment{Partition: p, Replicas: []NodeID{c.node.ID}})
	}
	err = c.change(func(st *ClusterState, _ *int64) error {
		if _, ok := st.Topics[spec.Name]; ok {
			return fmt.Errorf("create topic %q: %w", spec.Name, ErrTopicExists)
		}
		st.Topics[spec.Name] = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// DeleteTopic implements Controller.
func (c *LocalController) DeleteTopic(ctx context.Context, name string) error {
	return c.change(func(st *ClusterState, _ *int64) error {
		if _, ok := st.Topics[name]; !ok {
			return fmt.Errorf("delete topic %q: %w", name, ErrUnknownTopic)
		}
		delete(st.Topics, name)
		return nil
	})
}

// CreatePartitions implements Controller; count must exceed the current count.
func (c *LocalController) CreatePartitions(ctx context.Context, name string, count int32) error {
	return c.change(func(st *ClusterState, _ *int64) error {
		old, ok := st.Topics[name]
		if !ok {
			return fmt.Errorf("create partitions %q: %w", name, ErrUnknownTopic)
		}
		if count <= int32(len(old.Partitions)) {
			return fmt.Errorf("create partitions %q: %w: %d does not exceed the current %d",
				name, ErrInvalid, count, len(old.Partitions))
		}
		t := *old
		t.Partitions = append([]PartitionAssignment(nil), old.Partitions...)
		for p := int32(len(old.Partitions)); p < count; p++ {
			t.Partitions = append(t.Partitions, PartitionAssignment{Partition: p, Replicas: []NodeID{c.node.ID}})
		}
		st.Topics[name] = &t
		return nil
	})
}

// AlterConfigs implements Controller.
func (c *LocalController) AlterConfigs(ctx context.Context, name string, set map[string]*string) error {
	return c.change(func(st *ClusterState, _ *int64) error {
		old, ok := st.Topics[name]
		if !ok {
			return fmt.Errorf("alter configs %q: %w", name, ErrUnknownTopic)
		}
		t := *old
		t.Configs = maps.Clone(old.Configs)
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		keys := make([]string, 0, len(set))
		for k := range set {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if v := set[k]; v != nil {
				t.Configs[k] = *v
			} else {
				delete(t.Configs, k)
			}
		}
		st.Topics[name] = &t
		return nil
	})
}

// AllocateProducerIDs implements Controller. The block is on disk before it is returned,
// so IDs are never handed out twice, even across a crash.
func (c *LocalController) AllocateProducerIDs(ctx context.Context, n int64) (int64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("allocate producer ids: %w: n=%d", ErrInvalid, n)
	}
	var first int64
	err := c.change(func(_ *ClusterState, next *int64) error {
		first = *next
		*next += n
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("allocate producer ids: %w", err)
	}
	return first, nil
}

// WaitReady implements Controller; a single node is always ready.
func (c *LocalController) WaitReady(ctx context.Context) error { return nil }

// Close implements Controller; later changes fail.
func (c *LocalController) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

var _ Controller = (*LocalController)(nil)
