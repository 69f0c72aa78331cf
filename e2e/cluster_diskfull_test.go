package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/testnode"
)

// Each node's data directory on a file system of its own, small enough to fill: a file
// system that runs short of space refuses writes with KAFKA_STORAGE_ERROR before it is
// full, while every acknowledged record stays readable, the partition keeps its leader
// (no leader gives up over failed Raft log writes), and writes go on once space is freed.
func TestClusterDiskFull(t *testing.T) {
	const (
		fsBytes     = 512 << 20
		fillerBytes = 64 << 20
		minFree     = 128 << 20
	)
	dirs := make([]string, 3)
	for i := range dirs {
		dirs[i] = mountSmallFS(t, fsBytes)
		if err := os.WriteFile(filepath.Join(dirs[i], "filler"), make([]byte, fillerBytes), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := startClusterHarnessConfig(t, testnode.ClusterConfig{
		Args: []string{"--min-free-bytes", fmt.Sprint(minFree),
			// A short Raft log: the partitions' data fills the file systems.
			"--raft-snapshot-bytes", fmt.Sprint(16 << 20), "--raft-trailing-bytes", fmt.Sprint(8 << 20)},
		NodeArgs: func(i int) []string { return []string{"--data-dir", filepath.Join(dirs[i], "data")} },
	})
	const topic = "filling"
	h.createTopic(topic, 1)
	leader, epoch, err := h.leaderOf(topic)
	if err != nil {
		t.Fatal(err)
	}

	// One producer, 1 KiB records (uncompressed: they must fill the disks). Its retries
	// last about 3 s: a refusal reaches the test, and a record outlasts an election (on a
	// loaded machine a node can stall for longer than the tests' election timeout), since
	// the client also looks the new leader up at once.
	cl := h.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordRetries(30),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.MetadataMinAge(100*time.Millisecond))
	ch := newChecker()
	value := make([]byte, 1024)
	seq := 0
	// produce sends n records and returns the first error, recording what was acknowledged.
	produce := func(n int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		recs := make([]*kgo.Record, n)
		for i := range recs {
			v := fmt.Sprintf("v%d-", seq)
			seq++
			v += string(value[len(v):])
			ch.attempted[v] = true
			recs[i] = &kgo.Record{Value: []byte(v)}
		}
		var first error
		for _, r := range cl.ProduceSync(ctx, recs...) {
			if r.Err != nil {
				ch.failed++
				if first == nil {
					first = r.Err
				}
				if ch.firstErr == nil {
					ch.firstErr, ch.firstErrAt = r.Err, time.Now()
				}
				continue
			}
			ch.acks = append(ch.acks, acked{r.Record.Partition, r.Record.Offset, string(r.Record.Value)})
		}
		return first
	}

	// Write until the nodes refuse: the file systems hold about 320 MiB above the space
	// kept free, which the Raft log and the partition share, so less than 400 MB goes in.
	var refused error
	for sent := 0; refused == nil; sent += 1000 {
		if sent > 400_000 {
			t.Fatalf("%d records of 1 KiB written to file systems of %d MiB (%d acknowledged, %d MiB free on node 1), none refused", sent, fsBytes>>20, len(ch.acks), freeBytes(t, dirs[0])>>20)
		}
		refused = produce(1000)
	}
	if !errors.Is(refused, kerr.KafkaStorageError) {
		t.Fatalf("writing to full disks: %v, want KAFKA_STORAGE_ERROR", refused)
	}
	t.Logf("refused after %d acknowledged records: %v", len(ch.acks), refused)
	for i, dir := range dirs {
		free := freeBytes(t, dir)
		t.Logf("node %d: %d MiB free", i+1, free>>20)
		if free <= 0 {
			t.Errorf("node %d's file system filled up", i+1)
		}
	}
	// Refused again, and nobody gave up leadership over failed writes: no Raft log write
	// failed. The leader is the same unless an election timed out.
	if err := produce(10); !errors.Is(err, kerr.KafkaStorageError) {
		t.Fatalf("writing again: %v, want KAFKA_STORAGE_ERROR", err)
	}
	if line := h.logLine(func(l string) bool {
		return strings.Contains(l, "failed to commit logs") || strings.Contains(l, "failed to append to logs")
	}); line != "" {
		t.Fatalf("a Raft log write failed on a full disk: %s", line)
	}
	if l, e, err := h.leaderOf(topic); err != nil {
		t.Fatal(err)
	} else if l != leader || e != epoch {
		if h.logLine(electionTimedOut) == "" {
			t.Fatalf("leader %d epoch %d while the disks are full, was %d epoch %d, and no election timed out", l, e, leader, epoch)
		}
		t.Logf("leader %d epoch %d while the disks are full, was %d epoch %d: an election timed out", l, e, leader, epoch)
	}
	// Reads go on: everything acknowledged is there, once, in order.
	h.verify(topic, 1, ch)

	// Space freed: writes are taken again, and everything reads back.
	for _, dir := range dirs {
		if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor(30*time.Second, "writes taken again once space is free", func() error {
		return produce(10)
	})
	if err := produce(1000); err != nil {
		t.Fatalf("writing after space was freed: %v", err)
	}
	if got := len(h.running()); got != 3 {
		t.Fatalf("%d of 3 nodes running", got)
	}
	h.verify(topic, 1, ch)
}

// freeBytes is how much space the file system of dir has free.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// mountSmallFS mounts a tmpfs of size bytes on a fresh directory, unmounted when the test
// ends (after the nodes using it have stopped). Mounting needs privileges; without them
// the test is skipped.
func mountSmallFS(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a small file system to fill (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
