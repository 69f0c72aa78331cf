package log

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/sluicemq/sluice/internal/pagecache"
	"github.com/sluicemq/sluice/segment"
)

// resident returns the page cache residency of the file at path, per page.
func resident(t *testing.T, path string) []bool {
	t.Helper()
	pages, err := pagecache.Resident(path)
	if err != nil {
		t.Fatal(err)
	}
	return pages
}

var countResident = pagecache.Count

// requireDropCache skips the test where the file system keeps pages that fadvise asks
// to drop (tmpfs, say): there is no page cache to look after there.
func requireDropCache(t *testing.T, dir string) {
	t.Helper()
	ok, err := pagecache.DropWorks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skip("this file system keeps pages that fadvise(DONTNEED) asks to drop")
	}
}

const pageBytes = 4096

// appendMiB appends n MiB of 64 KiB entries.
func appendMiB(t *testing.T, l *Log, n int) {
	t.Helper()
	e := bytes.Repeat([]byte{7}, 64<<10)
	for range n * 16 {
		mustAppend(t, l, e)
	}
}

// TestDropCacheAfterSync: a log with DropCacheAfterSync keeps none of what Sync made
// durable in the page cache, save the partial last page; one without keeps all of it,
// and reads of dropped entries still return them.
func TestDropCacheAfterSync(t *testing.T) {
	dir := t.TempDir()
	requireDropCache(t, dir)
	for _, drop := range []bool{false, true} {
		d := filepath.Join(dir, map[bool]string{false: "keep", true: "drop"}[drop])
		l := mustOpen(t, d, Config{Format: FormatEntries, DropCacheAfterSync: drop})
		appendMiB(t, l, 2)
		mustSync(t, l)
		path := filepath.Join(d, segment.FileName(0, segment.LogExt))
		pages := resident(t, path)
		full := int(l.Size() / pageBytes)
		got := countResident(pages, 0, full)
		if drop && got != 0 {
			t.Errorf("DropCacheAfterSync: %d of %d synced pages still cached", got, full)
		}
		if !drop && got != full {
			t.Errorf("without DropCacheAfterSync: %d of %d pages cached, want all", got, full)
		}
		b, err := l.Entry(3)
		if err != nil || len(b) != 64<<10 || b[0] != 7 {
			t.Fatalf("Entry(3) after the drop: %d bytes, %v", len(b), err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUncache: each Uncache drops what the call before started writing back and starts
// the write-back of what was appended since, so the newest bytes stay cached until the
// next call; nothing appended is lost and the log reopens whole.
func TestUncache(t *testing.T) {
	dir := t.TempDir()
	requireDropCache(t, dir)
	l := mustOpen(t, dir, Config{Format: FormatEntries})
	path := filepath.Join(dir, segment.FileName(0, segment.LogExt))

	appendMiB(t, l, 4)
	first := int(l.Size() / pageBytes)
	l.Uncache() // starts the write-back of the first 4 MiB
	mustSync(t, l)
	if got := countResident(resident(t, path), 0, first); got != first {
		t.Fatalf("after the first Uncache %d of %d pages cached, want all (only written back)", got, first)
	}
	appendMiB(t, l, 4)
	second := int(l.Size() / pageBytes)
	l.Uncache() // drops the first 4 MiB, starts the write-back of the next
	pages := resident(t, path)
	if got := countResident(pages, 0, first); got != 0 {
		t.Errorf("after the second Uncache %d of the first %d pages cached, want none", got, first)
	}
	if got := countResident(pages, first, second); got != second-first {
		t.Errorf("after the second Uncache %d of the next %d pages cached, want all", got, second-first)
	}
	mustSync(t, l)
	l.Uncache()
	if got := countResident(resident(t, path), 0, second); got != 0 {
		t.Errorf("after the third Uncache %d of %d pages cached, want none", got, second)
	}
	end := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, Config{Format: FormatEntries})
	defer l.Close()
	if l.LogEndOffset() != end {
		t.Fatalf("reopened log ends at %d, want %d", l.LogEndOffset(), end)
	}
	for off := Offset(0); off < end; off += 37 {
		if b, err := l.Entry(off); err != nil || len(b) != 64<<10 {
			t.Fatalf("Entry(%d): %d bytes, %v", off, len(b), err)
		}
	}
}
