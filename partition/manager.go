package partition

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/replication"
	"github.com/sluicemq/sluice/vfs"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// DataDir holds one directory per partition, DATA/<topic>-<partition>/.
	DataDir    string
	NodeID     replication.NodeID
	Controller replication.Controller
	Replicator replication.Replicator
	Logger     *zap.Logger
	// RetentionInterval is how often retention runs (default 1 minute).
	RetentionInterval time.Duration
	// CheckpointInterval is how often producer-state checkpoints are written (default 1
	// minute); they bound how much log a restart scans.
	CheckpointInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// topicIDFile, in a partition directory, holds the topic ID the directory belongs to, so
// that a directory left by a deleted topic is not mistaken for a new one of the same name.
const topicIDFile = "topic_id"

// deletedSuffix marks a partition directory being removed.
const deletedSuffix = "-delete"

// Manager opens, registers and closes the partitions this node holds, following the
// controller's state, and runs retention and checkpoints on them.
type Manager struct {
	cfg ManagerConfig
	log *zap.Logger

	mu sync.RWMutex
	// parts holds the open partitions. Invariant: every partition registered with the
	// replicator is in parts (open stores before it registers, remove unregisters before
	// it deletes); one stored but not registered is detached.
	parts map[topicPartition]*Partition
	// applied is the controller state version last reconciled.
	applied atomic.Uint64

	// reconcileMu serialises reconciles (the follow loop and Close).
	reconcileMu sync.Mutex
	closed      bool

	stop chan struct{}
	done chan struct{}
}

type topicPartition struct {
	topic     string
	partition int32
}

// NewManager opens every partition the current state assigns to this node and registers
// it with the replicator, then follows state changes until Close.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.RetentionInterval <= 0 {
		cfg.RetentionInterval = time.Minute
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("partition manager: %w", err)
	}
	m := &Manager{
		cfg:   cfg,
		log:   cfg.Logger,
		parts: make(map[topicPartition]*Partition),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	m.removeDeleted()
	if err := m.reconcile(cfg.Controller.State(), true); err != nil {
		m.closeAll()
		return nil, err
	}
	go m.run()
	return m, nil
}

// Get returns the open partition, if this node holds it.
func (m *Manager) Get(topic string, partition int32) (*Partition, bool) {
	m.mu.RLock()
	p, ok := m.parts[topicPartition{topic, partition}]
	m.mu.RUnlock()
	return p, ok
}

// Partitions returns the open partitions, sorted by topic and partition.
func (m *Manager) Partitions() []*Partition {
	m.mu.RLock()
	out := make([]*Partition, 0, len(m.parts))
	for _, p := range m.parts {
		out = append(out, p)
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic != out[j].topic {
			return out[i].topic < out[j].topic
		}
		return out[i].index < out[j].index
	})
	return out
}

// DataDir returns the directory that holds the partitions' directories.
func (m *Manager) DataDir() string { return m.cfg.DataDir }

// AppliedVersion returns the controller state version the open partitions reflect.
func (m *Manager) AppliedVersion() uint64 { return m.applied.Load() }

// run follows the controller and runs the periodic work.
func (m *Manager) run() {
	defer close(m.done)
	retention := time.NewTicker(m.cfg.RetentionInterval)
	defer retention.Stop()
	checkpoint := time.NewTicker(m.cfg.CheckpointInterval)
	defer checkpoint.Stop()
	// A failed reconcile (a partition that would not open) is retried on this tick.
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	for {
		changed := m.cfg.Controller.Changed()
		st := m.cfg.Controller.State()
		if st.Version != m.applied.Load() {
			if err := m.reconcile(st, false); err != nil {
				m.log.Error("applying cluster metadata failed; retrying", zap.Error(err))
			}
		}
		select {
		case <-m.stop:
			return
		case <-changed:
		case <-retry.C:
			if err := m.reconcile(m.cfg.Controller.State(), false); err != nil {
				m.log.Error("applying cluster metadata failed; retrying", zap.Error(err))
			}
		case <-retention.C:
			m.enforceRetention()
		case <-checkpoint.C:
			m.checkpointAll()
		}
	}
}

// wanted is a partition the state assigns to this node.
type wanted struct {
	topicID [16]byte
	configs map[string]string
}

// reconcile makes the open partitions match st. With strict, the first partition that
// fails to open is an error; otherwise failures are logged and the rest proceed.
func (m *Manager) reconcile(st *replication.ClusterState, strict bool) error {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	if m.closed {
		return nil
	}
	want := make(map[topicPartition]wanted)
	for name, t := range st.Topics {
		for _, pa := range t.Partitions {
			for _, r := range pa.Replicas {
				if r == m.cfg.NodeID {
					want[topicPartition{name, pa.Partition}] = wanted{topicID: t.ID, configs: t.Configs}
					break
				}
			}
		}
	}

	// Close what went away or was re-created under a new ID; delete its data if the
	// topic is gone from this node.
	m.mu.RLock()
	var drop []*Partition
	for tp, p := range m.parts {
		if w, ok := want[tp]; !ok || w.topicID != p.topicID {
			drop = append(drop, p)
		}
	}
	m.mu.RUnlock()
	for _, p := range drop {
		if err := m.remove(p); err != nil {
			m.log.Warn("closing removed partition failed", zap.String("topic", p.topic), zap.Int32("partition", p.index), zap.Error(err))
		}
		m.removeDir(p.dir, p.topicID)
		m.log.Info("removed partition", zap.String("topic", p.topic), zap.Int32("partition", p.index))
	}

	var errs []error
	for tp, w := range want {
		cfg, err := ParseConfig(w.configs)
		if err != nil {
			m.log.Warn("topic has invalid configs; using defaults for them", zap.String("topic", tp.topic), zap.Error(err))
			cfg = DefaultConfig()
		}
		if p, ok := m.Get(tp.topic, tp.partition); ok {
			if p.Config() == cfg || !p.SetConfig(cfg) {
				continue
			}
			// Segment and retention settings apply to the log when it opens.
			if err := m.remove(p); err != nil {
				m.log.Warn("closing partition to apply configs failed", zap.String("topic", tp.topic),
					zap.Int32("partition", tp.partition), zap.Error(err))
			}
		}
		if err := m.open(tp, w.topicID, cfg); err != nil {
			if strict {
				return err
			}
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		m.applied.Store(st.Version)
	}
	return errors.Join(errs...)
}

// partitionDir is DATA/<topic>-<partition>.
func (m *Manager) partitionDir(topic string, partition int32) string {
	return filepath.Join(m.cfg.DataDir, fmt.Sprintf("%s-%d", topic, partition))
}

// open opens one partition, stores it and registers it with the replicator, in that order:
// whoever the replicator tells of the partition finds it here. Until Register returns the
// partition is detached (it serves no client); if Register fails, it is taken out again
// and closed.
func (m *Manager) open(tp topicPartition, id [16]byte, cfg Config) error {
	dir := m.partitionDir(tp.topic, tp.partition)
	idHex := fmt.Sprintf("%x", id[:])
	switch data, err := os.ReadFile(filepath.Join(dir, topicIDFile)); {
	case err == nil && strings.TrimSpace(string(data)) != idHex:
		// A directory of an earlier topic with this name whose removal did not finish.
		m.log.Info("removing data of an earlier topic with the same name", zap.String("dir", dir))
		var old [16]byte
		m.removeDir(dir, old)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("open partition %s-%d: %w", tp.topic, tp.partition, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("open partition %s-%d: %w", tp.topic, tp.partition, err)
	}
	if _, err := os.Stat(filepath.Join(dir, topicIDFile)); errors.Is(err, os.ErrNotExist) {
		if err := vfs.WriteFile(vfs.Default, filepath.Join(dir, topicIDFile), []byte(idHex+"\n")); err != nil {
			return fmt.Errorf("open partition %s-%d: %w", tp.topic, tp.partition, err)
		}
		if err := vfs.SyncDir(vfs.Default, dir); err != nil {
			return fmt.Errorf("open partition %s-%d: %w", tp.topic, tp.partition, err)
		}
		if err := vfs.SyncDir(vfs.Default, m.cfg.DataDir); err != nil {
			return fmt.Errorf("open partition %s-%d: %w", tp.topic, tp.partition, err)
		}
	}
	p, err := Open(OpenConfig{
		Dir: dir, Topic: tp.topic, Partition: tp.partition, TopicID: id, Config: cfg,
		Replicator: m.cfg.Replicator, Logger: m.log, Now: m.cfg.Now,
	})
	if err != nil {
		return err
	}
	p.detached.Store(true)
	m.mu.Lock()
	m.parts[tp] = p
	m.mu.Unlock()
	if err := m.cfg.Replicator.Register(p.key, p); err != nil {
		m.mu.Lock()
		delete(m.parts, tp)
		m.mu.Unlock()
		p.Close()
		return fmt.Errorf("open partition %s-%d: %w", tp.topic, tp.partition, err)
	}
	p.detached.Store(false)
	m.log.Debug("opened partition", zap.String("topic", tp.topic), zap.Int32("partition", tp.partition),
		zap.Int64("log_start_offset", p.LogStartOffset()), zap.Int64("log_end_offset", p.LogEndOffset()))
	return nil
}

// remove undoes open in reverse: p is detached, unregistered, taken out of the map (so it
// is here as long as the replicator has it) and closed.
func (m *Manager) remove(p *Partition) error {
	p.detached.Store(true)
	m.cfg.Replicator.Unregister(p.key)
	tp := topicPartition{p.topic, p.index}
	m.mu.Lock()
	if m.parts[tp] == p {
		delete(m.parts, tp)
	}
	m.mu.Unlock()
	return p.Close()
}

// removeDir renames a partition directory aside, syncs the data directory, and removes it.
func (m *Manager) removeDir(dir string, id [16]byte) {
	aside := fmt.Sprintf("%s.%x%s", dir, id[:4], deletedSuffix)
	if err := os.Rename(dir, aside); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("removing partition directory failed", zap.String("dir", dir), zap.Error(err))
		}
		return
	}
	if err := vfs.SyncDir(vfs.Default, m.cfg.DataDir); err != nil {
		m.log.Warn("syncing data directory failed", zap.Error(err))
	}
	if err := os.RemoveAll(aside); err != nil {
		m.log.Warn("removing partition directory failed", zap.String("dir", aside), zap.Error(err))
	}
}

// removeDeleted finishes removals interrupted by a crash.
func (m *Manager) removeDeleted() {
	entries, err := os.ReadDir(m.cfg.DataDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), deletedSuffix) {
			os.RemoveAll(filepath.Join(m.cfg.DataDir, e.Name()))
		}
	}
}

func (m *Manager) enforceRetention() {
	now := m.cfg.Now()
	for _, p := range m.Partitions() {
		if err := p.EnforceRetention(now); err != nil && !errors.Is(err, ErrClosed) {
			m.log.Warn("retention failed", zap.String("topic", p.topic), zap.Int32("partition", p.index), zap.Error(err))
		}
	}
}

func (m *Manager) checkpointAll() {
	for _, p := range m.Partitions() {
		if err := p.Checkpoint(); err != nil && !errors.Is(err, ErrClosed) {
			m.log.Warn("checkpoint failed", zap.String("topic", p.topic), zap.Int32("partition", p.index), zap.Error(err))
		}
	}
}

// Close stops following the controller, unregisters every partition and closes it
// cleanly (checkpoint, sync, clean log close).
func (m *Manager) Close() error {
	m.reconcileMu.Lock()
	if m.closed {
		m.reconcileMu.Unlock()
		return nil
	}
	m.closed = true
	m.reconcileMu.Unlock()
	close(m.stop)
	<-m.done
	return m.closeAll()
}

func (m *Manager) closeAll() error {
	var errs []error
	for _, p := range m.Partitions() {
		if err := m.remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
