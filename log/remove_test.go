package log

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// blockingFS holds every Remove of a segment's .log file until released, and records
// segment files created while such a Remove is held.
type blockingFS struct {
	vfs.FS
	once     sync.Once
	mu       sync.Mutex
	held     chan struct{} // receives once per Remove that starts waiting
	release  chan struct{} // closed to let Removes go
	holding  int
	violated []string // segment files created while a Remove was held
}

func newBlockingFS(fs vfs.FS) *blockingFS {
	return &blockingFS{FS: fs, held: make(chan struct{}, 100), release: make(chan struct{})}
}

// letGo releases the held Removes (once).
func (b *blockingFS) letGo() { b.once.Do(func() { close(b.release) }) }

func (b *blockingFS) Remove(name string) error {
	if _, ext, ok := segment.ParseFileName(path.Base(name)); ok && ext == segment.LogExt {
		b.mu.Lock()
		b.holding++
		b.mu.Unlock()
		b.held <- struct{}{}
		<-b.release
		b.mu.Lock()
		b.holding--
		b.mu.Unlock()
	}
	return b.FS.Remove(name)
}

func (b *blockingFS) Create(name string) (vfs.File, error) {
	if _, _, ok := segment.ParseFileName(path.Base(name)); ok {
		b.mu.Lock()
		if b.holding > 0 {
			b.violated = append(b.violated, name)
		}
		b.mu.Unlock()
	}
	return b.FS.Create(name)
}

// waitDone waits for done, failing the test after a generous deadline (a deadlock).
func waitDone(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not finish: blocked behind the removal of segment files", what)
		return nil
	}
}

// filledLog returns a FormatEntries log of 100-byte segments holding entries 0..n-1
// (two per segment), synced.
func filledLog(t *testing.T, fs vfs.FS, n int) *Log {
	t.Helper()
	l := mustOpen(t, "/log", Config{Format: FormatEntries, FS: fs, SegmentBytes: 100})
	for i := 0; i < n; i++ {
		mustAppend(t, l, bytes.Repeat([]byte{byte(i)}, 34))
	}
	mustSync(t, l)
	return l
}

// TestDeleteBeforeRemovesFilesOutsideTheLocks: while DeleteBefore removes the files of
// the segments it dropped, appends, syncs and reads go on; a reader holding entries of a
// dropped segment reads them; once DeleteBefore returns the files are gone.
func TestDeleteBeforeRemovesFilesOutsideTheLocks(t *testing.T) {
	mem := vfs.NewMem()
	bfs := newBlockingFS(mem)
	l := filledLog(t, bfs, 8)
	defer l.Close()
	defer bfs.letGo() // before Close, should the test fail with removals held
	r, err := l.Read(0, 1<<20, 8)
	if err != nil {
		t.Fatal(err)
	}
	deleted := make(chan error, 1)
	go func() { deleted <- l.DeleteBefore(5) }()
	<-bfs.held // DeleteBefore is removing segment 0's files

	if l.LogStartOffset() != 5 {
		t.Fatalf("start %d while files are removed, want 5", l.LogStartOffset())
	}
	if _, err := l.Entry(3); !isOutOfRange(err) {
		t.Fatalf("Entry(3) after DeleteBefore(5): %v", err)
	}
	writes := make(chan error, 1)
	go func() {
		for i := 0; i < 5; i++ {
			if _, err := l.Append([]byte("more"), 0); err != nil {
				writes <- err
				return
			}
		}
		writes <- l.Sync()
	}()
	if err := waitDone(t, writes, "Append and Sync"); err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != 13 {
		t.Fatalf("end %d, want 13", l.LogEndOffset())
	}
	b, err := r.Bytes()
	if err != nil {
		t.Fatalf("reading entries of dropped segments: %v", err)
	}
	if offs, _, err := entriesOf(b); err != nil || len(offs) != 8 {
		t.Fatalf("read %v, %v; want 8 entries", offs, err)
	}
	r.Release()

	bfs.letGo()
	if err := waitDone(t, deleted, "DeleteBefore"); err != nil {
		t.Fatal(err)
	}
	names, _ := mem.List("/log")
	for _, base := range []Offset{0, 2} {
		if slices.Contains(names, segment.FileName(base, segment.LogExt)) {
			t.Fatalf("segment %d still listed after DeleteBefore: %v", base, names)
		}
	}
	if !slices.Contains(names, segment.FileName(4, segment.LogExt)) {
		t.Fatalf("segment 4 (holds the new start) removed: %v", names)
	}
}

// TestResetWaitsForRemovals: a reset to an offset whose segment's files are still being
// removed creates the new files only after the removal, which would otherwise delete
// them; Close waits for removals too.
func TestResetWaitsForRemovals(t *testing.T) {
	mem := vfs.NewMem()
	bfs := newBlockingFS(mem)
	l := filledLog(t, bfs, 8)
	deleted := make(chan error, 1)
	go func() { deleted <- l.DeleteBefore(5) }()
	<-bfs.held
	defer bfs.letGo()

	reset := make(chan error, 1)
	go func() { reset <- l.TruncateTo(0) }() // an empty log at 0: segment 0 again
	// Give a reset that does not wait the chance to create its files now.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && len(reset) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	bfs.letGo()
	if err := waitDone(t, deleted, "DeleteBefore"); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, reset, "TruncateTo"); err != nil {
		t.Fatal(err)
	}
	bfs.mu.Lock()
	violated := bfs.violated
	bfs.mu.Unlock()
	if len(violated) > 0 {
		t.Fatalf("segment files created while a removal was in progress: %v", violated)
	}
	if off := mustAppend(t, l, []byte("after")); off != 0 {
		t.Fatalf("append after reset: offset %d", off)
	}
	mustSync(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, "/log", Config{Format: FormatEntries, FS: mem, SegmentBytes: 100})
	defer l.Close()
	if b, err := l.Entry(0); err != nil || string(b) != "after" {
		t.Fatalf("entry 0 after reopen: %q, %v", b, err)
	}
}

// TestCloseWaitsForRemovals: Close returns only once the files of dropped segments are
// removed.
func TestCloseWaitsForRemovals(t *testing.T) {
	mem := vfs.NewMem()
	bfs := newBlockingFS(mem)
	l := filledLog(t, bfs, 8)
	deleted := make(chan error, 1)
	go func() { deleted <- l.DeleteBefore(5) }()
	<-bfs.held
	defer bfs.letGo()
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && len(closed) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if len(closed) > 0 {
		t.Fatal("Close returned while segment files were being removed")
	}
	bfs.letGo()
	if err := waitDone(t, deleted, "DeleteBefore"); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, closed, "Close"); err != nil {
		t.Fatal(err)
	}
}

// TestRetentionDeletionsAreDurable: the segments retention deletes stay deleted after a
// power failure right after it (the directory is synced), and the log start never moves
// back, whatever part of the directory changes a crash keeps.
func TestRetentionDeletionsAreDurable(t *testing.T) {
	for seed := 0; seed < crashSeeds(50); seed++ {
		for _, mode := range []string{"bytes", "age"} {
			t.Run(fmt.Sprintf("seed%d-%s", seed, mode), func(t *testing.T) {
				rng := newRand(uint64(seed))
				mem := vfs.NewMem()
				cfg := Config{Format: FormatEntries, FS: mem, SegmentBytes: 100}
				if mode == "bytes" {
					cfg.RetentionBytes = 250
				} else {
					cfg.RetentionAge = time.Hour
				}
				l := mustOpen(t, "/log", cfg)
				for i := 0; i < 10; i++ {
					mustAppend(t, l, bytes.Repeat([]byte{byte(i)}, 34))
				}
				mustSync(t, l)
				// Unsynced appends too: the crash may keep part of them.
				for i := 0; i < 1+rng.IntN(4); i++ {
					mustAppend(t, l, bytes.Repeat([]byte{0xee}, 34))
				}
				// By age every segment has expired (FormatEntries goes by the files'
				// modification times): the log is rolled and ends up empty.
				if err := l.EnforceRetention(time.Now().Add(48 * time.Hour)); err != nil {
					t.Fatal(err)
				}
				start := l.LogStartOffset()
				if start == 0 {
					t.Fatal("retention deleted nothing")
				}
				crashed := mem.CrashClone(rng)
				names, _ := crashed.List("/log")
				for _, name := range names {
					if base, ext, ok := segment.ParseFileName(name); ok && ext == segment.LogExt {
						if next := base + 2; next <= start { // two entries a segment
							t.Fatalf("deleted segment %d back after a crash (start %d): %v", base, start, names)
						}
					}
				}
				cfg.FS = crashed
				l2 := mustOpen(t, "/log", cfg)
				defer l2.Close()
				if got := l2.LogStartOffset(); got < start {
					t.Fatalf("log start %d after a crash, retention moved it to %d", got, start)
				}
				l.Close()
			})
		}
	}
}
