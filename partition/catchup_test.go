package partition

import (
	"bytes"
	"context"
	"testing"

	"github.com/sluicemq/sluice/replication"
)

// A replica that restores a snapshot ahead of its log copies the missing batches from
// another replica (ReadData there, WriteData here), then restores: it ends with the same
// bytes at the same offsets and the same producer state.
func TestCatchUpFromAnotherReplica(t *testing.T) {
	repl := replication.NewLocalReplicator(replication.LocalConfig{})
	defer repl.Close()
	open := func(dir string) *Partition {
		p, err := Open(OpenConfig{Dir: dir, Topic: "t", Partition: 0, Config: DefaultConfig(), Replicator: repl})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	src := open(t.TempDir())
	if err := repl.Register(src.Key(), src); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 20 {
		if _, err := src.Produce(ctx, testBatch(3, 7, 0, int32(3*i), int64(100+i))); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := src.SnapshotEnd(snap)
	if err != nil || want != 60 {
		t.Fatalf("snapshot end %d %v, want 60", want, err)
	}

	dst := open(t.TempDir())
	if err := dst.Restore(snap); err == nil {
		t.Fatal("restoring a snapshot ahead of an empty log succeeded")
	}
	// Copy in small reads: each returns whole batches and at least one.
	for {
		_, end := dst.DataBounds()
		if end >= want {
			break
		}
		data, err := src.ReadData(end, want, 100)
		if err != nil || len(data) == 0 {
			t.Fatalf("read data at %d: %d bytes, %v", end, len(data), err)
		}
		if err := dst.WriteData(end, data); err != nil {
			t.Fatal(err)
		}
	}
	// Writing what it already has again changes nothing.
	again, _ := src.ReadData(0, want, 1<<20)
	if err := dst.WriteData(0, again); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if _, end := dst.DataBounds(); end != 60 || dst.HighWatermark() != 60 {
		t.Fatalf("after catch-up: end %d hw %d", end, dst.HighWatermark())
	}
	a, _ := src.ReadData(0, 60, 1<<20)
	b, err := dst.ReadData(0, 60, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("copied log differs: %d and %d bytes", len(a), len(b))
	}
	// The producer table came with the snapshot: a retry is a duplicate.
	if err := repl.Register(dst.Key()+"-dst", dst); err != nil {
		t.Fatal(err)
	}
	dst.key = dst.Key() + "-dst"
	if r, err := dst.Produce(ctx, testBatch(3, 7, 0, 57, 119)); err != nil || !r.Duplicate || r.BaseOffset != 57 {
		t.Fatalf("retry on the caught-up replica: %+v %v", r, err)
	}
	// A source whose log starts past this replica's end (mid-batch, at 40): the replica
	// starts over at the batch holding it, with the same start offset.
	fresh := open(t.TempDir())
	tail, _ := src.ReadData(40, 60, 1<<20)
	if err := fresh.WriteData(40, tail); err != nil {
		t.Fatal(err)
	}
	if start, end := fresh.DataBounds(); start != 40 || end != 60 {
		t.Fatalf("after copying from 40: [%d, %d)", start, end)
	}
	// With nothing to copy, the replica just starts at the position.
	empty := open(t.TempDir())
	if err := empty.WriteData(60, nil); err != nil {
		t.Fatal(err)
	}
	if start, end := empty.DataBounds(); start != 60 || end != 60 {
		t.Fatalf("after a reset to 60: [%d, %d)", start, end)
	}
}
