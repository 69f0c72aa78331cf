package log

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/segment/segmenttest"
)

// Benchmarks. Physical limits are measured in the same run and reported as ratios
// (x-raw); take medians of several runs:
//
//	go test -run '^$' -bench 'Append' -benchtime 16384x -count 5 ./log
//	go test -run '^$' -bench 'BenchmarkRead$|Recovery|OpenClean' -benchtime 10x -count 5 ./log
//	go test -run '^$' -bench 'IndexMemory' -benchtime 1x ./log
//	go test -run '^$' -bench 'FreeSegment' -benchtime 3x -count 3 ./log
//
// BenchmarkAppend: 16 KiB batches of 1 KiB records, with Sync every 1 MiB against raw
// write(2)+fdatasync(2) of the same sizes to a new file in the same directory, and with
// no Sync against raw buffered write(2), in alternating 32 MiB rounds.

const (
	benchRecords   = 16
	benchValueSize = 1010 // a 1 KiB record with its framing
	syncEvery      = 1 << 20
)

func benchBatch() []byte {
	return segmenttest.Batch(benchRecords, benchValueSize, time.Now().UnixMilli(), time.Now().UnixMilli(), 'v')
}

// fillRising appends bench batches to l until it holds size bytes, each batch's
// timestamp 1 ms after the last (so the time index grows as in real use).
func fillRising(b testing.TB, l *Log, size int64) {
	batch := benchBatch()
	ts := time.Now().UnixMilli()
	for l.Size() < size {
		ts++
		if err := segment.SetLogAppendTime(batch, ts); err != nil {
			b.Fatal(err)
		}
		if _, err := l.Append(batch, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// rawWriter is the physical limit: write(2) of chunks to a new file, with fdatasync(2)
// every syncEvery bytes when sync is set.
type rawWriter struct {
	dir   string
	chunk []byte
	sync  bool
	took  time.Duration
	bytes int64
}

// round writes n chunks to a new file and adds the time it took.
func (w *rawWriter) round(b *testing.B, n int) {
	f, err := os.Create(filepath.Join(w.dir, "raw"))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var since int
	for i := 0; i < n; i++ {
		if _, err := f.Write(w.chunk); err != nil {
			b.Fatal(err)
		}
		since += len(w.chunk)
		if w.sync && since >= syncEvery {
			if err := fdatasync(f); err != nil {
				b.Fatal(err)
			}
			since = 0
		}
	}
	if w.sync {
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	}
	w.took += time.Since(start)
	w.bytes += int64(n * len(w.chunk))
	// Leave no dirty pages to the next round.
	fdatasync(f)
	f.Close()
	os.Remove(f.Name())
}

func (w *rawWriter) mbps() float64 { return float64(w.bytes) / w.took.Seconds() / 1e6 }

// benchRound is the bytes of one round; log and raw rounds alternate so that the
// disk's ups and downs hit both alike.
const benchRound = 32 << 20

func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{true, false} {
		name := "sync=1MiB"
		if !sync {
			name = "sync=none"
		}
		b.Run(name, func(b *testing.B) {
			batch := benchBatch()
			dir := b.TempDir()
			l, err := Open(filepath.Join(dir, "log"), Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			raw := &rawWriter{dir: dir, chunk: make([]byte, len(batch)), sync: sync}
			perRound := max(1, benchRound/len(batch))
			var logTook time.Duration
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(perRound, b.N-done)
				b.StopTimer()
				raw.round(b, n)
				b.StartTimer()
				start := time.Now()
				var since int
				for i := 0; i < n; i++ {
					if _, err := l.Append(batch, 1); err != nil {
						b.Fatal(err)
					}
					since += len(batch)
					if sync && since >= syncEvery {
						if err := l.Sync(); err != nil {
							b.Fatal(err)
						}
						since = 0
					}
				}
				if sync {
					if err := l.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				logTook += time.Since(start)
				b.StopTimer()
				if !sync {
					l.Sync() // leave no dirty pages to the next round
				}
				b.StartTimer()
				done += n
			}
			b.StopTimer()
			logMBps := float64(b.N*len(batch)) / logTook.Seconds() / 1e6
			b.ReportMetric(raw.mbps(), "raw-MB/s")
			b.ReportMetric(logMBps/raw.mbps(), "x-raw")
		})
	}
}

// BenchmarkRead reads a 256 MiB log from the page cache in 1 MiB reads into a reused
// buffer, against pread(2) of the same sizes.
func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	l, err := Open(dir, Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := benchBatch()
	for l.Size() < 256<<20 {
		if _, err := l.Append(batch, 1); err != nil {
			b.Fatal(err)
		}
	}
	end := l.LogEndOffset()
	buf := make([]byte, 0, 2<<20)
	read := func() int64 {
		var total int64
		for off := Offset(0); off < end; {
			r, err := l.Read(off, 1<<20, end)
			if err != nil {
				b.Fatal(err)
			}
			if buf, err = r.AppendTo(buf[:0]); err != nil {
				b.Fatal(err)
			}
			total += int64(len(buf))
			off = r.NextOffset()
			r.Release()
		}
		return total
	}
	size := read() // warm the page cache
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		read()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	logMBps := float64(int64(b.N)*size) / elapsed.Seconds() / 1e6
	// The same bytes with pread(2).
	l.mu.RLock()
	f := l.segs[0].File()
	l.mu.RUnlock()
	raw := make([]byte, 1<<20)
	start = time.Now()
	for i := 0; i < b.N; i++ {
		for pos := int64(0); pos < size; pos += int64(len(raw)) {
			n, err := f.ReadAt(raw, pos)
			if err != nil && err != io.EOF {
				b.Fatal(err)
			}
			_ = n
		}
	}
	rawMBps := float64(int64(b.N)*size) / time.Since(start).Seconds() / 1e6
	b.ReportMetric(rawMBps, "raw-MB/s")
	b.ReportMetric(logMBps/rawMBps, "x-raw")
}

// BenchmarkRecovery opens a 1 GiB log, one segment, whose tail is torn and whose
// checkpoint is at the segment's start: recovery scans and checks all of it. It
// reports the scan rate and the index memory per GiB after recovery.
func BenchmarkRecovery(b *testing.B) {
	dir := b.TempDir()
	cfg := Config{SegmentBytes: 2 << 30}
	l, err := Open(dir, cfg)
	if err != nil {
		b.Fatal(err)
	}
	batch := benchBatch()
	ck, err := os.ReadFile(filepath.Join(dir, checkpointName)) // at position 0
	if err != nil {
		b.Fatal(err)
	}
	fillRising(b, l, 1<<30)
	size := l.Size()
	l.Sync()
	l.Close()
	logPath := filepath.Join(dir, segment.FileName(0, segment.LogExt))
	var indexMem int64
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Tear the tail and put the old checkpoint back: an unclean shutdown.
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			b.Fatal(err)
		}
		f.Write(batch[:len(batch)/2])
		f.Close()
		if err := os.WriteFile(filepath.Join(dir, checkpointName), ck, 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		l, err := Open(dir, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if l.Size() != size {
			b.Fatalf("recovered %d bytes, want %d", l.Size(), size)
		}
		indexMem = l.IndexMemory()
		l.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(indexMem)/(float64(size)/(1<<30)), "index-B/GiB")
}

// BenchmarkIndexMemory reports the index memory per GiB of a cleanly reopened log once
// every segment's index is loaded.
func BenchmarkIndexMemory(b *testing.B) {
	dir := b.TempDir()
	cfg := Config{SegmentBytes: 256 << 20}
	l, err := Open(dir, cfg)
	if err != nil {
		b.Fatal(err)
	}
	fillRising(b, l, 1<<30)
	l.Close()
	var perGiB float64
	for i := 0; i < b.N; i++ {
		l, err := Open(dir, cfg)
		if err != nil {
			b.Fatal(err)
		}
		l.OffsetForTimestamp(0) // loads every segment's indexes
		for off := Offset(0); off < l.LogEndOffset(); off += 1000 {
			l.Entry(off)
		}
		perGiB = float64(l.IndexMemory()) / (float64(l.Size()) / (1 << 30))
		l.Close()
	}
	b.ReportMetric(perGiB, "index-B/GiB")
}

// BenchmarkOpenClean opens cleanly closed logs of 16 MiB and 1 GiB (one segment each):
// no entry is read, so the time should not depend on the size.
func BenchmarkOpenClean(b *testing.B) {
	for _, size := range []int64{16 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("size=%dMiB", size>>20), func(b *testing.B) {
			dir := b.TempDir()
			cfg := Config{SegmentBytes: 2 << 30}
			l, err := Open(dir, cfg)
			if err != nil {
				b.Fatal(err)
			}
			fillRising(b, l, size)
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			syscall.Sync() // no writeback of the fill under the timed opens
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, err := Open(dir, cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				l.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkFreeSegment: what dropping a 256 MiB segment from a log's head costs a writer
// that fsyncs another file on the same file system (64 KiB write + fdatasync in a loop),
// with the removed segment's blocks freed a step at a time (gradual, the default) and
// all at once by the last close (at-once). Reports the writer's longest and 99th
// percentile fsync while the blocks are freed, and the same loop's with nothing freed
// (quiet) in the same run:
//
//	go test -run '^$' -bench FreeSegment -benchtime 3x -count 3 ./log
func BenchmarkFreeSegment(b *testing.B) {
	for _, mode := range []string{"gradual", "at-once"} {
		b.Run(mode, func(b *testing.B) {
			step := freeStep
			if mode == "at-once" {
				step = 0
			}
			defer func(s int64) { freeStep = s }(freeStep)
			freeStep = step
			var maxQuiet, maxFree, p99Quiet, p99Free float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir := b.TempDir()
				l, err := Open(filepath.Join(dir, "log"), Config{Format: FormatEntries, SegmentBytes: 256 << 20})
				if err != nil {
					b.Fatal(err)
				}
				entry := make([]byte, 1<<20)
				for l.Segments() < 2 {
					if _, err := l.Append(entry, 0); err != nil {
						b.Fatal(err)
					}
				}
				if err := l.Sync(); err != nil {
					b.Fatal(err)
				}
				quiet := fsyncLatencies(b, dir, 500*time.Millisecond, func() {})
				b.StartTimer()
				freed := fsyncLatencies(b, dir, 0, func() {
					if err := l.DeleteBefore(l.LogEndOffset() - 1); err != nil {
						b.Error(err)
					}
					l.freeing.Wait()
				})
				b.StopTimer()
				l.Close()
				maxQuiet, p99Quiet = max(maxQuiet, quiet[len(quiet)-1]), max(p99Quiet, quiet[len(quiet)*99/100])
				maxFree, p99Free = max(maxFree, freed[len(freed)-1]), max(p99Free, freed[len(freed)*99/100])
			}
			b.ReportMetric(maxFree, "max-fsync-ms")
			b.ReportMetric(p99Free, "p99-fsync-ms")
			b.ReportMetric(maxQuiet, "quiet-max-fsync-ms")
			b.ReportMetric(p99Quiet, "quiet-p99-fsync-ms")
		})
	}
}

// fsyncLatencies runs 64 KiB write + fdatasync of a file in dir in a loop while work
// runs (and for at least d), and returns the latencies in ms, sorted.
func fsyncLatencies(b *testing.B, dir string, d time.Duration, work func()) []float64 {
	f, err := os.Create(filepath.Join(dir, "fsync-loop"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var finished atomic.Bool
	done := make(chan struct{})
	var lat []float64
	go func() {
		defer close(done)
		start := time.Now()
		for !finished.Load() || time.Since(start) < d {
			t := time.Now()
			if _, err := f.Write(buf); err != nil {
				b.Error(err)
				return
			}
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, float64(time.Since(t).Microseconds())/1000)
		}
	}()
	work()
	finished.Store(true)
	<-done
	if len(lat) == 0 {
		b.Fatal("no fsync measured")
	}
	slices.Sort(lat)
	return lat
}
