// Command fsynclat measures the latency of write+fdatasync on the disk holding a
// directory, the way a log appends: each step writes -size bytes after the previous ones
// and fdatasyncs the file, at a fixed open-loop -rate (0: back to back). It prints the
// latency distribution of the fdatasync alone and of write+fdatasync, then one JSON line.
//
// Modes say what lies past the end of the data when it is written:
//
//	grow       nothing: every write grows the file (size change: a journal commit on ext4)
//	written    zeros written and synced beforehand: the file does not grow and its blocks are
//	           allocated and initialised, so fdatasync has no metadata to commit
//	fallocate  fallocate(2)'d space (unwritten extents on ext4: each first write converts
//	           an extent, which is metadata), file size already covering it
//	keepsize   fallocate(2) with FALLOC_FL_KEEP_SIZE: blocks reserved, file grows on write
//
//	go run ./scripts/fsynclat -dir /tmp/x -mode grow -size 1024 -rate 2000 -n 20000
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// fallocKeepSize is FALLOC_FL_KEEP_SIZE.
const fallocKeepSize = 1

type summary struct {
	Tool      string  `json:"tool"`
	Mode      string  `json:"mode"`
	Size      int     `json:"size"`
	Rate      float64 `json:"rate"`
	N         int     `json:"n"`
	SyncP50   float64 `json:"sync_p50_ms"`
	SyncP90   float64 `json:"sync_p90_ms"`
	SyncP99   float64 `json:"sync_p99_ms"`
	SyncP999  float64 `json:"sync_p999_ms"`
	SyncMax   float64 `json:"sync_max_ms"`
	TotalP50  float64 `json:"write_sync_p50_ms"`
	TotalP99  float64 `json:"write_sync_p99_ms"`
	TotalP999 float64 `json:"write_sync_p999_ms"`
	Late      int     `json:"late"` // steps that started behind schedule (the disk could not keep the rate)
}

func main() {
	dir := flag.String("dir", os.TempDir(), "directory on the disk to measure")
	mode := flag.String("mode", "grow", "grow | written | fallocate | keepsize")
	size := flag.Int("size", 1024, "bytes per write")
	rate := flag.Float64("rate", 2000, "writes per second, open loop (0: back to back)")
	n := flag.Int("n", 20000, "writes")
	chunk := flag.Int64("chunk", 64<<20, "bytes prepared ahead for written, fallocate and keepsize")
	flag.Parse()
	if err := run(*dir, *mode, *size, *rate, *n, *chunk); err != nil {
		fmt.Fprintln(os.Stderr, "fsynclat:", err)
		os.Exit(1)
	}
}

func run(dir, mode string, size int, rate float64, n int, chunk int64) error {
	f, err := os.CreateTemp(dir, "fsynclat-*.dat")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	fd := int(f.Fd())
	total := int64(size) * int64(n)
	chunk = max(chunk, int64(size))
	prepared := int64(0)
	prepare := func(upTo int64) error {
		for prepared < upTo {
			end := prepared + chunk
			switch mode {
			case "written":
				zero := make([]byte, 1<<20)
				for off := prepared; off < end; off += int64(len(zero)) {
					if _, err := f.WriteAt(zero, off); err != nil {
						return err
					}
				}
				if err := syscall.Fdatasync(fd); err != nil {
					return err
				}
			case "fallocate":
				if err := syscall.Fallocate(fd, 0, prepared, chunk); err != nil {
					return fmt.Errorf("fallocate: %w", err)
				}
			case "keepsize":
				if err := syscall.Fallocate(fd, fallocKeepSize, prepared, chunk); err != nil {
					return fmt.Errorf("fallocate: %w", err)
				}
			case "grow":
				prepared = upTo
				return nil
			default:
				return fmt.Errorf("unknown -mode %q", mode)
			}
			prepared = end
		}
		return nil
	}
	// Prepare everything before timing so that preparation never lands inside a
	// measured step (a real log prepares the next chunk off the critical path).
	if err := prepare(total); err != nil {
		return err
	}
	if err := syscall.Fsync(fd); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(f.Name())); err == nil {
		d.Sync()
		d.Close()
	}
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	syncs := make([]time.Duration, 0, n)
	totals := make([]time.Duration, 0, n)
	late := 0
	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	for i := 0; i < n; i++ {
		if interval > 0 {
			at := start.Add(time.Duration(i) * interval)
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			} else if d < -interval {
				late++
			}
		}
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*int64(size)); err != nil {
			return err
		}
		t1 := time.Now()
		if err := syscall.Fdatasync(fd); err != nil {
			return err
		}
		t2 := time.Now()
		syncs = append(syncs, t2.Sub(t1))
		totals = append(totals, t2.Sub(t0))
	}
	s := summary{Tool: "fsynclat", Mode: mode, Size: size, Rate: rate, N: n, Late: late}
	s.SyncP50, s.SyncP90, s.SyncP99, s.SyncP999, s.SyncMax = pct(syncs, 0.5), pct(syncs, 0.9), pct(syncs, 0.99), pct(syncs, 0.999), pct(syncs, 1)
	s.TotalP50, s.TotalP99, s.TotalP999 = pct(totals, 0.5), pct(totals, 0.99), pct(totals, 0.999)
	fmt.Printf("fsynclat %s: %d x %d B at %.0f/s: fdatasync ms p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f max=%.3f; write+fdatasync p50=%.3f p99=%.3f\n",
		mode, n, size, rate, s.SyncP50, s.SyncP90, s.SyncP99, s.SyncP999, s.SyncMax, s.TotalP50, s.TotalP99)
	out, _ := json.Marshal(s)
	fmt.Println(string(out))
	return nil
}

// pct returns the q-quantile of ds in milliseconds (sorting ds).
func pct(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := min(int(q*float64(len(ds))), len(ds)-1)
	return float64(ds[i]) / 1e6
}
