package log

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// recyclePayload is entry i of the recycle tests: 100 bytes naming i.
func recyclePayload(i Offset) []byte {
	return []byte(fmt.Sprintf("%-100s", fmt.Sprintf("entry-%d", i)))
}

// retiredFiles lists dir's retired files.
func retiredFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n.Name(), retiredExt) {
			out = append(out, filepath.Join(dir, n.Name()))
		}
	}
	return out
}

// checkEntries checks that the log holds recyclePayload(i) for every i in [from, to).
func checkEntries(t *testing.T, l *Log, from, to Offset) {
	t.Helper()
	if l.LogStartOffset() != from || l.LogEndOffset() != to {
		t.Fatalf("log holds [%d, %d), want [%d, %d)", l.LogStartOffset(), l.LogEndOffset(), from, to)
	}
	for i := from; i < to; i++ {
		got, err := l.Entry(i)
		if err != nil || !bytes.Equal(got, recyclePayload(i)) {
			t.Fatalf("Entry(%d) = %q, %v", i, got, err)
		}
	}
}

func recycleConfig(logger *zap.Logger) Config {
	return Config{Format: FormatEntries, FS: vfs.Default, SegmentBytes: 1000, RecycleSegments: 2, Logger: logger}
}

// Segments dropped from the head leave their .log files for new segments to write over:
// the new segment's file is the old one's, entries read back right through the stale
// bytes past their end, and a clean reopen finds exactly the entries written.
func TestRecycleSegments(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, recycleConfig(nil))
	next := Offset(0)
	appendN := func(n int) {
		for range n {
			if off := mustAppend(t, l, recyclePayload(next)); off != next {
				t.Fatalf("offset %d, want %d", off, next)
			}
			next++
		}
		mustSync(t, l)
	}
	appendN(40) // about 9 entries per segment: 5 segments
	if l.Segments() < 4 {
		t.Fatalf("%d segments, want several", l.Segments())
	}
	first := filepath.Join(dir, segment.FileName(0, segment.LogExt))
	firstInfo, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	// Three segments go: two files are kept (RecycleSegments), the third removed.
	start := Offset(27)
	if err := l.DeleteBefore(start); err != nil {
		t.Fatal(err)
	}
	kept := retiredFiles(t, dir)
	if len(kept) != 2 {
		t.Fatalf("%d retired files, want 2: %v", len(kept), kept)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("the first segment's .log is still there: %v", err)
	}
	reused := false
	for _, p := range kept {
		if fi, err := os.Stat(p); err == nil && os.SameFile(fi, firstInfo) {
			reused = true
		}
	}
	if !reused {
		t.Fatal("the first segment's file is not among the retired ones")
	}
	// The next two segments are written over the retired files, the one after is new.
	before := l.Segments()
	appendN(30)
	if got := retiredFiles(t, dir); len(got) != 0 {
		t.Fatalf("retired files left after rolls: %v", got)
	}
	if l.Segments() < before+3 {
		t.Fatalf("%d segments after the rolls, want at least %d", l.Segments(), before+3)
	}
	found := false
	names, _ := os.ReadDir(dir)
	for _, n := range names {
		if fi, err := os.Stat(filepath.Join(dir, n.Name())); err == nil && os.SameFile(fi, firstInfo) {
			found = strings.HasSuffix(n.Name(), segment.LogExt)
		}
	}
	if !found {
		t.Fatal("no segment was written over the first segment's file")
	}
	checkEntries(t, l, start, next)
	b, upTo := readBytes(t, l, start, 1<<20, next)
	offs, _, err := entriesOf(b)
	if err != nil || upTo != next || len(offs) != int(next-start) {
		t.Fatalf("Read: %d entries to %d, %v", len(offs), upTo, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, recycleConfig(nil))
	defer l.Close()
	checkEntries(t, l, start, next)
	appendN(5)
	checkEntries(t, l, start, next)
}

// A process killed while it writes over a retired file leaves the file's old bytes past
// the last entry; recovery cuts them off without calling them damage, and serves exactly
// what was written.
func TestRecycleRecoveryCutsOldBytes(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, recycleConfig(nil))
	next := Offset(0)
	for ; next < 40; next++ {
		mustAppend(t, l, recyclePayload(next))
	}
	mustSync(t, l)
	if err := l.DeleteBefore(27); err != nil {
		t.Fatal(err)
	}
	// Roll into a retired file and write a few entries into it, well short of its end.
	for l.Segments() < 3 || l.active().Size() == 0 || l.active().Size() > 300 {
		mustAppend(t, l, recyclePayload(next))
		next++
		if next > 200 {
			t.Fatal("no roll into a reused file")
		}
	}
	mustSync(t, l)
	st, err := os.Stat(filepath.Join(dir, segment.FileName(l.active().Base(), segment.LogExt)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() <= l.active().Size() {
		t.Fatalf("the active segment's file has %d bytes for %d of entries: not a reused file", st.Size(), l.active().Size())
	}
	// Killed: abandoned without Close.
	core, logs := observer.New(zap.WarnLevel)
	l2 := mustOpen(t, dir, recycleConfig(zap.New(core)))
	defer l2.Close()
	checkEntries(t, l2, 27, next)
	for _, e := range logs.All() {
		t.Errorf("recovery warned: %s %v", e.Message, e.ContextMap())
	}
	if st, err := os.Stat(filepath.Join(dir, segment.FileName(l2.active().Base(), segment.LogExt))); err != nil || st.Size() != l2.active().Size() {
		t.Fatalf("the recovered segment's file: %v, %v bytes, want %d", err, st, l2.active().Size())
	}
	if off := mustAppend(t, l2, recyclePayload(next)); off != next {
		t.Fatalf("append after recovery at %d, want %d", off, next)
	}
}

// A read holding a dropped segment keeps its bytes: the file is reused only once the
// last reader released it.
func TestRecycleWaitsForReaders(t *testing.T) {
	dir := t.TempDir()
	cfg := recycleConfig(nil)
	cfg.RecycleSegments = 1
	l := mustOpen(t, dir, cfg)
	defer l.Close()
	next := Offset(0)
	for ; next < 20; next++ {
		mustAppend(t, l, recyclePayload(next))
	}
	mustSync(t, l)
	r, err := l.Read(0, 1<<20, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteBefore(12); err != nil {
		t.Fatal(err)
	}
	// Roll twice: no file is free for reuse while r holds the first segment.
	for segs := l.Segments(); l.Segments() < segs+2; next++ {
		mustAppend(t, l, recyclePayload(next))
	}
	mustSync(t, l)
	b, err := r.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	offs, payloads, err := entriesOf(b)
	if err != nil || len(offs) != 5 {
		t.Fatalf("held read: %d entries, %v", len(offs), err)
	}
	for i, p := range payloads {
		if !bytes.Equal(p, recyclePayload(Offset(i))) {
			t.Fatalf("held read, entry %d: %q", i, p)
		}
	}
	if got := retiredFiles(t, dir); len(got) != 1 {
		t.Fatalf("retired files while the read is held: %v, want the held one", got)
	}
	r.Release()
	// Now the next roll writes over it.
	for segs := l.Segments(); l.Segments() < segs+1; next++ {
		mustAppend(t, l, recyclePayload(next))
	}
	if got := retiredFiles(t, dir); len(got) != 0 {
		t.Fatalf("retired files after the release and a roll: %v", got)
	}
	checkEntries(t, l, 12, next)
}

// A reset may take the log's offsets below those of the retired files' old entries: it
// removes them, those held by readers as soon as they are released, and later rolls
// create new files.
func TestRecycleResetDropsFiles(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, recycleConfig(nil))
	defer l.Close()
	next := Offset(0)
	for ; next < 40; next++ {
		mustAppend(t, l, recyclePayload(next))
	}
	mustSync(t, l)
	r, err := l.Read(9, 1<<20, 12) // holds the second segment
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteBefore(27); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(3); err != nil { // below the start: a reset
		t.Fatal(err)
	}
	if got := retiredFiles(t, dir); len(got) != 1 {
		t.Fatalf("retired files after the reset: %v, want only the one a reader holds", got)
	}
	r.Release()
	if got := retiredFiles(t, dir); len(got) != 0 {
		t.Fatalf("retired files after the reader let go: %v", got)
	}
	for next = 3; next < 40; next++ {
		mustAppend(t, l, recyclePayload(next))
	}
	mustSync(t, l)
	checkEntries(t, l, 3, 40)
}

// Open removes retired files a previous process left.
func TestRecycleOpenRemovesRetired(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, recycleConfig(nil))
	for next := Offset(0); next < 40; next++ {
		mustAppend(t, l, recyclePayload(next))
	}
	mustSync(t, l)
	if err := l.DeleteBefore(27); err != nil {
		t.Fatal(err)
	}
	if len(retiredFiles(t, dir)) == 0 {
		t.Fatal("no retired files")
	}
	// Killed, then opened again.
	l2 := mustOpen(t, dir, recycleConfig(nil))
	defer l2.Close()
	if got := retiredFiles(t, dir); len(got) != 0 {
		t.Fatalf("retired files after Open: %v", got)
	}
	checkEntries(t, l2, 27, 40)
}
