package replication

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// A data group's log entries carry one state machine's entry each. The routing header is
// in the Raft entry's Extensions, the state machine's own bytes are its Data, untouched
// (so the leader hands Raft the caller's buffer without copying it):
//
//	format      uint8   1
//	version     uvarint the controller metadata version the leader had when it submitted
//	                    the entry (the key existed there)
//	keyLen      uvarint
//	key         [keyLen]byte
//
// The version lets a replica that has not yet heard of a new partition wait for the
// controller instead of dropping the entry (see groupFSM.lookup).
const entryFormat = 1

func encodeEntryHeader(version uint64, key string) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64*2+len(key))
	b = append(b, entryFormat)
	b = binary.AppendUvarint(b, version)
	b = binary.AppendUvarint(b, uint64(len(key)))
	return append(b, key...)
}

func decodeEntryHeader(b []byte) (version uint64, key string, err error) {
	if len(b) < 1 || b[0] != entryFormat {
		return 0, "", fmt.Errorf("data group entry: %w: format byte", ErrInvalid)
	}
	b = b[1:]
	version, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, "", fmt.Errorf("data group entry: %w: version", ErrInvalid)
	}
	b = b[n:]
	kl, n := binary.Uvarint(b)
	if n <= 0 || kl != uint64(len(b)-n) {
		return 0, "", fmt.Errorf("data group entry: %w: key length", ErrInvalid)
	}
	return version, string(b[n:]), nil
}

// dataEntry is a data group's Raft entry for key.
func dataEntry(version uint64, key string, payload []byte) raft.Log {
	return raft.Log{Data: payload, Extensions: encodeEntryHeader(version, key)}
}

// smEntry is one registered state machine. mu serializes every call into sm: the FSM
// goroutine's Apply, Commit, Sync and Snapshot, and Register's and Restore's Restore.
type smEntry struct {
	mu sync.Mutex
	sm StateMachine
}

// keyExpecter says, for an entry of a key no state machine is registered for, whether a
// state machine will be registered (wait) or the key is gone (drop). It blocks until it
// knows, or until stop is closed (then ok is false).
type keyExpecter func(key string, version uint64, stop <-chan struct{}) (expected, ok bool)

// keyGone says, without blocking, whether key's partition is known to be deleted, so its
// kept snapshot state may be forgotten.
type keyGone func(key string) bool

// groupFSM routes a data group's committed entries to the state machines registered under
// their keys.
//
// Snapshots hold, per key, what StateMachine.Snapshot returned after a Sync. Restore puts
// each registered state machine back to its snapshot (Restore(nil) when absent); keys of
// the snapshot with no state machine yet are kept (base) and given to the state machine
// when it registers, and written into later snapshots unchanged, so a partition that
// registers late is still cut back to the right place before entries are replayed.
type groupFSM struct {
	name   string
	logger *zap.Logger
	expect keyExpecter
	gone   keyGone
	source dataSource // where missing data is copied from (set before raft starts)
	// onSnapshot, if set, is called when a snapshot is taken (on the FSM goroutine).
	onSnapshot func()
	// applied is the index of the last entry applied (raft's AppliedIndex counts entries
	// handed to the FSM, which may still be waiting on them).
	applied atomic.Uint64
	// busy counts the Apply and ApplyBatch calls in progress (one may wait a long time
	// for a partition to be registered).
	busy atomic.Int32
	// failing holds, while an entry's Apply keeps failing for a reason of this node's own,
	// that failure (the leader then refuses new entries).
	failing atomic.Pointer[error]
	stop    chan struct{} // closed by the group before raft shuts down

	mu          sync.Mutex // guards the fields below; never held over I/O
	sms         map[string]*smEntry
	base        map[string][]byte // snapshot state of keys with no state machine
	initialized bool              // a snapshot (or the absence of one) has been applied
	cond        *sync.Cond        // signalled when sms changes
	poisoned    error             // an entry was skipped; no snapshot may cover it
}

func newGroupFSM(name string, logger *zap.Logger, expect keyExpecter, gone keyGone) *groupFSM {
	f := &groupFSM{
		name:   name,
		logger: logger,
		expect: expect,
		gone:   gone,
		stop:   make(chan struct{}),
		sms:    map[string]*smEntry{},
		base:   map[string][]byte{},
	}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// register attaches sm under key. Once the group's state is initialized, sm is first
// restored to key's snapshot state, so entries after the snapshot apply once.
func (f *groupFSM) register(key string, sm StateMachine) error {
	e := &smEntry{sm: sm}
	e.mu.Lock()
	defer e.mu.Unlock()
	f.mu.Lock()
	if _, ok := f.sms[key]; ok {
		f.mu.Unlock()
		return fmt.Errorf("register %q: %w: already registered", key, ErrInvalid)
	}
	initialized := f.initialized
	snap, hadSnap := f.base[key]
	delete(f.base, key)
	f.sms[key] = e
	f.mu.Unlock()
	if initialized {
		err := catchUp(key, sm, snap, f.source, f.stop, f.logger)
		if err == nil {
			err = sm.Restore(snap)
		}
		if err != nil {
			f.mu.Lock()
			delete(f.sms, key)
			if hadSnap {
				f.base[key] = snap
			}
			f.mu.Unlock()
			return fmt.Errorf("register %q in group %s: %w", key, f.name, err)
		}
	}
	f.mu.Lock()
	f.cond.Broadcast()
	f.mu.Unlock()
	return nil
}

// syncConcurrently syncs, without stopping applies, the state machines that allow it
// (ConcurrentSyncer), so that dirty data stays bounded and a snapshot's own Sync finds
// little to do.
func (f *groupFSM) syncConcurrently() error {
	f.mu.Lock()
	sms := make([]StateMachine, 0, len(f.sms))
	for _, e := range f.sms {
		if cs, ok := e.sm.(ConcurrentSyncer); ok && cs.SyncConcurrently() {
			sms = append(sms, e.sm)
		}
	}
	f.mu.Unlock()
	var errs []error
	for _, sm := range sms {
		if err := sm.Sync(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// entry returns key's registered state machine, or nil.
func (f *groupFSM) entry(key string) *smEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sms[key]
}

// unregister detaches key. Its state at that moment is kept for later snapshots in case
// the entries before it are compacted away and it registers again.
func (f *groupFSM) unregister(key string) {
	f.mu.Lock()
	e, ok := f.sms[key]
	f.mu.Unlock()
	if !ok {
		return
	}
	e.mu.Lock()
	var snap []byte
	var err error
	if err = e.sm.Sync(); err == nil {
		snap, err = e.sm.Snapshot()
	}
	f.mu.Lock()
	delete(f.sms, key)
	if err == nil {
		f.base[key] = snap
	} else {
		// Without a state to restore to, no later snapshot may be taken: the entries
		// applied to it must be replayed after a restart.
		f.poisoned = fmt.Errorf("unregister %q: %w", key, err)
	}
	f.mu.Unlock()
	e.mu.Unlock()
}

// lookup returns the state machine for key, waiting while the key is expected to be
// registered soon. nil means drop the entry.
func (f *groupFSM) lookup(key string, version uint64) *smEntry {
	f.mu.Lock()
	e := f.sms[key]
	f.mu.Unlock()
	if e != nil {
		return e
	}
	expected, ok := f.expect(key, version, f.stop)
	if !ok {
		f.skip(key)
		return nil
	}
	if !expected {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	warned := false
	for f.sms[key] == nil {
		select {
		case <-f.stop:
			f.poisoned = fmt.Errorf("group %s: entry for %q skipped at shutdown", f.name, key)
			return nil
		default:
		}
		if !warned {
			f.logger.Info("waiting for a state machine to be registered", zap.String("group", f.name), zap.String("key", key))
			warned = true
		}
		f.cond.Wait()
	}
	return f.sms[key]
}

func (f *groupFSM) skip(key string) {
	f.mu.Lock()
	f.poisoned = fmt.Errorf("group %s: entry for %q skipped at shutdown", f.name, key)
	f.mu.Unlock()
}

// close wakes waiters; the group calls it before shutting raft down.
func (f *groupFSM) close() {
	f.mu.Lock()
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *groupFSM) Apply(l *raft.Log) any {
	f.busy.Add(1)
	defer f.busy.Add(-1)
	return f.applyOne(l)
}

func (f *groupFSM) ApplyBatch(logs []*raft.Log) []any {
	f.busy.Add(1)
	defer f.busy.Add(-1)
	out := make([]any, len(logs))
	for i, l := range logs {
		out[i] = f.applyOne(l)
	}
	return out
}

func (f *groupFSM) applyOne(l *raft.Log) any {
	defer f.applied.Store(l.Index)
	if l.Type != raft.LogCommand {
		return nil
	}
	version, key, err := decodeEntryHeader(l.Extensions)
	payload := l.Data
	if err != nil {
		f.logger.Error("undecodable data group entry", zap.String("group", f.name), zap.Uint64("index", l.Index), zap.Error(err))
		return err
	}
	e := f.lookup(key, version)
	if e == nil {
		return fmt.Errorf("apply %q: %w", key, ErrUnknownKey)
	}
	pause := applyRetryMin
	var since time.Time // of the first failure
	var lastLog time.Time
	for {
		e.mu.Lock()
		res := e.sm.Apply(l.Index, l.Term, payload)
		var failure error
		if lf, ok := res.(LocalFailure); ok {
			failure = lf.ApplyFailed()
		}
		if failure == nil {
			e.sm.Commit(l.Index)
		}
		e.mu.Unlock()
		if failure == nil {
			if !since.IsZero() {
				f.failing.Store(nil)
				f.logger.Info("applied an entry that had failed", zap.String("group", f.name), zap.String("key", key),
					zap.Uint64("index", l.Index), zap.Duration("after", time.Since(since)))
			}
			return res
		}
		// Every other replica applies this entry: going on without it would leave this
		// one behind them for good. The entry is tried again until it applies (space
		// was freed), the key is unregistered, or the group stops.
		now := time.Now()
		if since.IsZero() {
			since = now
		}
		f.failing.Store(&failure)
		if now.Sub(lastLog) >= applyRetryLogEvery {
			lastLog = now
			f.logger.Error("applying a committed entry failed on this node; retrying until it applies",
				zap.String("group", f.name), zap.String("key", key), zap.Uint64("index", l.Index),
				zap.Duration("since", now.Sub(since)), zap.Error(failure))
		}
		select {
		case <-f.stop:
			f.skip(key)
			return res
		case <-time.After(pause):
		}
		pause = min(2*pause, applyRetryMax)
		if f.entry(key) != e {
			f.failing.Store(nil)
			return res
		}
	}
}

// applyFailure returns, while an entry keeps failing to apply here, why.
func (f *groupFSM) applyFailure() error {
	if p := f.failing.Load(); p != nil {
		return *p
	}
	return nil
}

// A committed entry that failed to apply for a reason of this node's own is tried again
// after applyRetryMin, doubling up to applyRetryMax; the failure is logged at most every
// applyRetryLogEvery.
const (
	applyRetryMin      = 50 * time.Millisecond
	applyRetryMax      = time.Second
	applyRetryLogEvery = 30 * time.Second
)

// Snapshot syncs every state machine and records its state. It runs on raft's FSM
// goroutine, between applies.
func (f *groupFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	if f.poisoned != nil {
		err := f.poisoned
		f.mu.Unlock()
		return nil, fmt.Errorf("snapshot group %s: %w", f.name, err)
	}
	for key := range f.base {
		if f.gone(key) {
			delete(f.base, key)
		}
	}
	state := maps.Clone(f.base)
	sms := maps.Clone(f.sms)
	f.mu.Unlock()
	for key, e := range sms {
		e.mu.Lock()
		err := e.sm.Sync()
		var snap []byte
		if err == nil {
			snap, err = e.sm.Snapshot()
		}
		e.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("snapshot group %s key %q: %w", f.name, key, err)
		}
		if snap == nil {
			snap = []byte{}
		}
		state[key] = snap
	}
	state[appliedKey] = binary.BigEndian.AppendUint64(nil, f.applied.Load())
	if f.onSnapshot != nil {
		f.onSnapshot()
	}
	return bytesSnapshot(encodeGroupSnapshot(state)), nil
}

// Restore puts every registered state machine back to its state in the snapshot.
func (f *groupFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	state, err := decodeGroupSnapshot(bufio.NewReader(rc))
	if err != nil {
		return fmt.Errorf("restore group %s: %w", f.name, err)
	}
	return f.restoreState(state)
}

// restoreState is Restore from decoded state; with an empty map it initializes a group
// that has no snapshot.
func (f *groupFSM) restoreState(state map[string][]byte) error {
	if b, ok := state[appliedKey]; ok {
		if len(b) == 8 {
			f.applied.Store(binary.BigEndian.Uint64(b))
		}
		delete(state, appliedKey)
	}
	f.mu.Lock()
	sms := maps.Clone(f.sms)
	base := map[string][]byte{}
	for k, v := range state {
		if _, ok := sms[k]; !ok {
			base[k] = v
		}
	}
	f.base = base
	f.initialized = true
	f.poisoned = nil
	f.mu.Unlock()
	var errs []error
	for key, e := range sms {
		e.mu.Lock()
		err := catchUp(key, e.sm, state[key], f.source, f.stop, f.logger)
		if err == nil {
			err = e.sm.Restore(state[key])
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", key, err))
		}
		e.mu.Unlock()
	}
	if len(errs) > 0 {
		return fmt.Errorf("restore group %s: %w", f.name, errors.Join(errs...))
	}
	return nil
}

// appliedKey holds, in a snapshot, the index of the last entry it covers (partition keys
// never begin with a zero byte).
const appliedKey = "\x00applied"

// The snapshot file: count uvarint, then per key (sorted) keyLen uvarint, key, stateLen
// uvarint, state.
func encodeGroupSnapshot(state map[string][]byte) []byte {
	keys := make([]string, 0, len(state))
	for k := range state {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := binary.AppendUvarint(nil, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(state[k])))
		b = append(b, state[k]...)
	}
	return b
}

func decodeGroupSnapshot(r *bufio.Reader) (map[string][]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("snapshot count: %w", err)
	}
	state := make(map[string][]byte, min(n, 1<<16))
	readBytes := func() ([]byte, error) {
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if l > 1<<30 {
			return nil, fmt.Errorf("%w: length %d", ErrInvalid, l)
		}
		b := make([]byte, l)
		_, err = io.ReadFull(r, b)
		return b, err
	}
	for i := uint64(0); i < n; i++ {
		k, err := readBytes()
		if err != nil {
			return nil, fmt.Errorf("snapshot key %d: %w", i, err)
		}
		v, err := readBytes()
		if err != nil {
			return nil, fmt.Errorf("snapshot state of %q: %w", k, err)
		}
		if len(v) == 0 {
			v = nil
		}
		state[string(k)] = v
	}
	return state, nil
}
