package partition

import (
	"errors"
	"testing"

	"github.com/sluicemq/sluice/replication"
	"github.com/sluicemq/sluice/vfs"
)

// An entry whose append fails on a full disk leaves the partition as it was and says the
// failure is this replica's own, so a Raft group applies it again; applied again once
// space is free, it lands at the offset it would have had, and an idempotent producer's
// batch is not taken for a duplicate of itself.
func TestApplyFailsLocallyOnFullDisk(t *testing.T) {
	fs := vfs.NewFaultFS(vfs.Default)
	repl := replication.NewLocalReplicator(replication.LocalConfig{})
	defer repl.Close()
	p, err := Open(OpenConfig{Dir: t.TempDir(), Topic: "t", Partition: 0, Config: DefaultConfig(), Replicator: repl, FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	entry := func(b []byte) []byte { return append([]byte{entryBatch}, b...) }
	apply := func(index uint64, b []byte) *applyResult {
		t.Helper()
		res, ok := p.Apply(index, 1, entry(b)).(*applyResult)
		if !ok {
			t.Fatalf("apply %d: result %T", index, res)
		}
		return res
	}

	if r := apply(1, testBatch(3, 9, 0, 0, 100)); r.err != nil || r.baseOffset != 0 || r.ApplyFailed() != nil {
		t.Fatalf("first batch: %+v", r)
	}
	p.Commit(1)

	fs.SetSpace(0)
	second := testBatch(2, 9, 0, 3, 200)
	r := apply(2, second)
	if err := r.ApplyFailed(); err == nil || !errors.Is(err, ErrStorage) {
		t.Fatalf("append on a full disk: %+v, want a local ErrStorage failure", r)
	}
	if end := p.LogEndOffset(); end != 3 {
		t.Fatalf("log end %d after the failed append, want 3", end)
	}

	fs.SetSpace(1 << 30)
	r = apply(2, second)
	if r.err != nil || r.duplicate || r.baseOffset != 3 || r.ApplyFailed() != nil {
		t.Fatalf("the same entry applied again: %+v, want offset 3, not a duplicate", r)
	}
	p.Commit(2)
	if hw := p.HighWatermark(); hw != 5 {
		t.Fatalf("high watermark %d, want 5", hw)
	}
	// A retried producer batch is a duplicate now, and only now.
	if r := apply(3, second); !r.duplicate || r.baseOffset != 3 {
		t.Fatalf("the producer's retry: %+v, want a duplicate at 3", r)
	}

	// A bad entry is every replica's failure, not a local one.
	if r := apply(4, []byte{entryBatch, 1, 2}); r.err == nil || r.ApplyFailed() != nil {
		t.Fatalf("bad entry: %+v, want an error that is not local", r)
	}
}
