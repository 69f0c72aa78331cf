package log

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/segment/segmenttest"
)

const killWriterEnv = "SLUICE_LOG_KILL_WRITER_DIR"

// killBatch is the i-th batch the writer appends: both sides can rebuild it.
func killBatch(i int) []byte {
	return segmenttest.Batch(1+i%4, 50+i%700, int64(i), int64(i)+3, byte(i))
}

// TestKillWriterHelper is the writer process of TestKill9; it does nothing in a normal
// test run.
func TestKillWriterHelper(t *testing.T) {
	dir := os.Getenv(killWriterEnv)
	if dir == "" {
		t.Skip("runs only as the writer process of TestKill9")
	}
	l, err := Open(dir, Config{SegmentBytes: 256 << 10, CheckpointBytes: 1 << 20})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		if _, err := l.Append(killBatch(i), 1); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		if i%16 == 15 {
			if err := l.Sync(); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("synced", i+1, l.LogEndOffset())
		}
	}
}

// TestKill9 runs a writer process that appends and syncs without end, kills it with
// SIGKILL, and reopens its log: every batch it reported synced is there, in order and
// whole, and the next append gets the next offset.
func TestKill9(t *testing.T) {
	if os.Getenv(killWriterEnv) != "" {
		t.Skip("in the writer process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillWriterHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), killWriterEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var syncedBatches int
	var syncedEnd Offset
	lines := bufio.NewScanner(out)
	deadline := time.Now().Add(30 * time.Second)
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) > 0 && f[0] == "error" {
			t.Fatalf("writer: %s", lines.Text())
		}
		if len(f) == 3 && f[0] == "synced" {
			syncedBatches, _ = strconv.Atoi(f[1])
			end, _ := strconv.ParseInt(f[2], 10, 64)
			syncedEnd = Offset(end)
		}
		// Several segments' worth, then kill in the middle of whatever it is doing.
		if syncedBatches >= 3000 || time.Now().After(deadline) {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	go func() {
		for lines.Scan() {
		}
	}()
	cmd.Wait()
	if syncedBatches == 0 {
		t.Fatal("the writer never synced")
	}

	l := mustOpen(t, dir, Config{SegmentBytes: 256 << 10})
	defer l.Close()
	if l.LogEndOffset() < syncedEnd {
		t.Fatalf("end %d after kill -9, below the synced end %d", l.LogEndOffset(), syncedEnd)
	}
	if l.Segments() < 3 {
		t.Fatalf("only %d segments: the test should span several", l.Segments())
	}
	i := 0
	for off := Offset(0); off < l.LogEndOffset(); {
		b, next := readBytes(t, l, off, 1<<20, l.LogEndOffset())
		_, got, err := kafkaEntries(b)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		for _, g := range got {
			if !sameBatch(g, killBatch(i)) {
				t.Fatalf("batch %d differs", i)
			}
			i++
		}
		off = next
	}
	if i < syncedBatches {
		t.Fatalf("%d batches after kill -9, %d were synced", i, syncedBatches)
	}
	t.Logf("writer synced %d batches (to offset %d); %d found after kill -9", syncedBatches, syncedEnd, i)
	if off := mustAppend(t, l, killBatch(i)); off != l.LogEndOffset()-Offset(segmenttest.Header(killBatch(i)).LastOffsetDelta+1) {
		t.Fatalf("append after recovery at %d", off)
	}
}
