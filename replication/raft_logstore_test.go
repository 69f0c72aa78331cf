package replication

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/sluicemq/sluice/vfs"
)

func testLogs(from, to uint64, term uint64, size int) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		data := bytes.Repeat([]byte{byte(i)}, size)
		copy(data, fmt.Sprintf("entry-%d", i))
		out = append(out, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: data, AppendedAt: time.Unix(0, int64(i))})
	}
	return out
}

func openTestLogStore(t testing.TB, dir string, cache int64) *logStore {
	t.Helper()
	s, err := openEntryLogStore(dir, logStoreConfig{CacheBytes: cache})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checkRange(t *testing.T, s *logStore, first, last uint64) {
	t.Helper()
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	if f != first || l != last {
		t.Fatalf("range [%d, %d], want [%d, %d]", f, l, first, last)
	}
}

func checkEntries(t *testing.T, s *logStore, from, to, term uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		want := fmt.Sprintf("entry-%d", i)
		if l.Index != i || l.Term != term || l.Type != raft.LogCommand || !bytes.HasPrefix(l.Data, []byte(want)) || l.AppendedAt.UnixNano() != int64(i) {
			t.Fatalf("get %d: index %d term %d type %v data %.12q at %v", i, l.Index, l.Term, l.Type, l.Data, l.AppendedAt)
		}
	}
}

func TestLogStore(t *testing.T) {
	for _, cache := range []int64{0, 1 << 20} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			dir := t.TempDir()
			s := openTestLogStore(t, dir, cache)
			checkRange(t, s, 0, 0)
			var l raft.Log
			if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("get from empty: %v", err)
			}
			if err := s.StoreLogs(testLogs(1, 10, 1, 100)); err != nil {
				t.Fatal(err)
			}
			if err := s.StoreLog(testLogs(11, 11, 1, 100)[0]); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 1, 11)
			checkEntries(t, s, 1, 11, 1)
			if err := s.GetLog(12, &l); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("get past the end: %v", err)
			}
			// Overlapping the end is refused (raft truncates first).
			if err := s.StoreLogs(testLogs(5, 6, 1, 10)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("store over existing entries: %v", err)
			}
			// Suffix truncation: a new leader overwrites 9.. with term 2.
			if err := s.DeleteRange(9, 11); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 1, 8)
			if err := s.GetLog(9, &l); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("get truncated: %v", err)
			}
			if err := s.StoreLogs(testLogs(9, 20, 2, 100)); err != nil {
				t.Fatal(err)
			}
			checkEntries(t, s, 9, 20, 2)
			// Head compaction.
			if err := s.DeleteRange(1, 5); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 6, 20)
			if err := s.GetLog(5, &l); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("get compacted: %v", err)
			}
			checkEntries(t, s, 6, 8, 1)
			// Reopen: everything is where it was.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTestLogStore(t, dir, cache)
			checkRange(t, s, 6, 20)
			checkEntries(t, s, 6, 8, 1)
			checkEntries(t, s, 9, 20, 2)
			// After a snapshot install raft may keep a few old entries and store the new
			// ones past a gap: the log restarts there.
			if err := s.StoreLogs(testLogs(31, 32, 3, 100)); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 31, 32)
			checkEntries(t, s, 31, 32, 3)
			if err := s.GetLog(20, &l); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("get before the gap: %v", err)
			}
			if err := s.StoreLogs(testLogs(33, 40, 3, 100)); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 31, 40)
			// A snapshot install drops everything, then entries follow the snapshot.
			if err := s.DeleteRange(31, 40); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 0, 0)
			if err := s.StoreLogs(testLogs(101, 105, 3, 100)); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 101, 105)
			checkEntries(t, s, 101, 105, 3)
			// And back to a lower index after another full drop.
			if err := s.DeleteRange(101, 105); err != nil {
				t.Fatal(err)
			}
			if err := s.StoreLogs(testLogs(50, 52, 4, 100)); err != nil {
				t.Fatal(err)
			}
			checkEntries(t, s, 50, 52, 4)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTestLogStore(t, dir, cache)
			checkRange(t, s, 50, 52)
			checkEntries(t, s, 50, 52, 4)
			s.Close()
		})
	}
}

func TestLogStoreCacheIsBounded(t *testing.T) {
	s := openTestLogStore(t, t.TempDir(), 64<<10)
	defer s.Close()
	for i := uint64(1); i <= 1000; i += 10 {
		if err := s.StoreLogs(testLogs(i, i+9, 1, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	bytes, n := s.cacheBytes, s.cacheLen
	first := s.cache[s.cacheHead].Index
	s.mu.Unlock()
	if bytes > 64<<10 || n == 0 || first+uint64(n)-1 != 1000 {
		t.Fatalf("cache holds %d entries, %d bytes, from %d", n, bytes, first)
	}
	// Entries before the cache come from disk.
	checkEntries(t, s, 1, 1000, 1)
	// Truncation drops cached entries too.
	if err := s.DeleteRange(990, 1000); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(995, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("get truncated cached entry: %v", err)
	}
	if err := s.StoreLogs(testLogs(990, 995, 7, 10)); err != nil {
		t.Fatal(err)
	}
	checkEntries(t, s, 990, 995, 7)
}

// BenchmarkLogStore compares StoreLogs (one fsync each call) on our log store and on
// raft-boltdb, with the raw write+fdatasync of the same bytes as the limit.
func BenchmarkLogStore(b *testing.B) {
	for _, tc := range []struct{ size, batch int }{{1 << 10, 64}, {16 << 10, 64}, {1 << 20, 1}, {1 << 20, 4}} {
		size, batch := tc.size, tc.batch
		for _, store := range []string{"raw", "sluice", "boltdb"} {
			b.Run(fmt.Sprintf("store=%s/entry=%d/batch=%d", store, size, batch), func(b *testing.B) {
				dir := b.TempDir()
				var s raft.LogStore
				switch store {
				case "raw":
					s = &rawStore{path: filepath.Join(dir, "raw")}
				case "sluice":
					s = openTestLogStore(b, dir, 64<<20)
				case "boltdb":
					bs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
					if err != nil {
						b.Fatal(err)
					}
					s = bs
				}
				defer s.(interface{ Close() error }).Close()
				data := bytes.Repeat([]byte("x"), size)
				logs := make([]*raft.Log, batch)
				for i := range logs {
					logs[i] = &raft.Log{Type: raft.LogCommand, Term: 1, Data: data}
				}
				b.SetBytes(int64(size * batch))
				b.ResetTimer()
				next := uint64(1)
				for range b.N {
					for i := range logs {
						logs[i].Index = next
						next++
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// rawStore writes the entries' bytes to a file and fdatasyncs: the disk's limit for
// StoreLogs, measured in the same run.
type rawStore struct {
	path string
	f    *os.File
	buf  []byte
}

func (r *rawStore) StoreLogs(logs []*raft.Log) error {
	if r.f == nil {
		f, err := os.Create(r.path)
		if err != nil {
			return err
		}
		r.f = f
	}
	r.buf = r.buf[:0]
	for _, l := range logs {
		r.buf = append(r.buf, l.Data...)
	}
	if _, err := r.f.Write(r.buf); err != nil {
		return err
	}
	return unix.Fdatasync(int(r.f.Fd()))
}

func (r *rawStore) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}
func (r *rawStore) FirstIndex() (uint64, error)      { return 0, nil }
func (r *rawStore) LastIndex() (uint64, error)       { return 0, nil }
func (r *rawStore) GetLog(uint64, *raft.Log) error   { return raft.ErrLogNotFound }
func (r *rawStore) StoreLog(l *raft.Log) error       { return r.StoreLogs([]*raft.Log{l}) }
func (r *rawStore) DeleteRange(uint64, uint64) error { return nil }

// removeGate is a file system whose removals of segment files wait for a release.
type removeGate struct {
	vfs.FS
	armed   atomic.Bool
	held    chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *removeGate) Remove(name string) error {
	if g.armed.Load() && strings.HasSuffix(name, ".log") {
		g.held <- struct{}{}
		<-g.release
	}
	return g.FS.Remove(name)
}

func (g *removeGate) letGo() { g.once.Do(func() { close(g.release) }) }

// TestLogStoreCompactionDoesNotBlockStores: while raft compacts the log head (removing
// old segment files, slow on large files), StoreLogs and GetLog go on.
func TestLogStoreCompactionDoesNotBlockStores(t *testing.T) {
	gate := &removeGate{FS: vfs.NewMem(), held: make(chan struct{}, 16), release: make(chan struct{})}
	s, err := openEntryLogStore("/raft", logStoreConfig{CacheBytes: 1 << 20, SegmentBytes: 4 << 10, FS: gate})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer gate.letGo()
	if err := s.StoreLogs(testLogs(1, 40, 1, 1000)); err != nil { // about 10 segments
		t.Fatal(err)
	}
	gate.armed.Store(true)
	compacted := make(chan error, 1)
	go func() { compacted <- s.DeleteRange(1, 30) }()
	<-gate.held
	stored := make(chan error, 1)
	go func() {
		if err := s.StoreLogs(testLogs(41, 50, 2, 1000)); err != nil {
			stored <- err
			return
		}
		var l raft.Log
		if err := s.GetLog(45, &l); err != nil || l.Term != 2 {
			stored <- fmt.Errorf("GetLog(45) = term %d, %v", l.Term, err)
			return
		}
		stored <- nil
	}()
	select {
	case err := <-stored:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("StoreLogs blocked behind a compaction")
	}
	gate.letGo()
	if err := <-compacted; err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 31, 50)
	checkEntries(t, s, 31, 40, 1)
	checkEntries(t, s, 41, 50, 2)
}

// A Raft log fsync slower than slowSync is logged as a warning with its duration and
// size, so that a stalled disk shows in the log of the group it held up; a fast one is not.
func TestLogStoreWarnsOfSlowSync(t *testing.T) {
	defer func(d time.Duration) { slowSync = d }(slowSync)
	slowSync = 50 * time.Millisecond
	fs := vfs.NewFaultFS(vfs.NewMem())
	core, logs := observer.New(zapcore.WarnLevel)
	s, err := openEntryLogStore("/raft", logStoreConfig{FS: fs, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.StoreLogs(testLogs(1, 3, 1, 1000)); err != nil {
		t.Fatal(err)
	}
	if n := logs.Len(); n != 0 {
		t.Fatalf("%d warnings for a fast fsync: %v", n, logs.All())
	}
	var slow atomic.Bool
	slow.Store(true)
	fs.SetMask(vfs.OpSync)
	fs.Trace(func(_ int64, op vfs.Op, _ string) {
		if op == vfs.OpSync && slow.Swap(false) {
			time.Sleep(2 * slowSync)
		}
	})
	if err := s.StoreLogs(testLogs(4, 5, 1, 1000)); err != nil {
		t.Fatal(err)
	}
	warned := logs.FilterMessageSnippet("slow Raft log fsync").All()
	if len(warned) != 1 {
		t.Fatalf("warnings after a slow fsync: %v, want one", logs.All())
	}
	f := warned[0].ContextMap()
	if took, _ := f["took"].(time.Duration); took < 2*slowSync || f["entries"] != int64(2) || f["bytes"] != 2*logBytes(testLogs(4, 4, 1, 1000)[0]) {
		t.Fatalf("slow fsync warning fields %v, want took >= %v, 2 entries and their bytes", f, 2*slowSync)
	}
}
