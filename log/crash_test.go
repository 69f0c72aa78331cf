package log

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sluicemq/sluice/vfs"
)

// randomConfig returns a config with small, random sizes so that a short run rolls,
// indexes and checkpoints often.
func randomConfig(rng *rand.Rand, format Format, fs vfs.FS) Config {
	return Config{
		Format:          format,
		FS:              fs,
		SegmentBytes:    int64(300 + rng.IntN(3000)),
		IndexInterval:   int64(32 + rng.IntN(512)),
		CheckpointBytes: int64(1 + rng.IntN(4000)),
	}
}

// TestCrashRecovery appends, syncs some, truncates and deletes at random, then takes
// the file system a power failure would leave, reopens it and checks that every synced
// entry is there in order, nothing torn is served and the next append gets the next
// offset. Over many seeds.
func TestCrashRecovery(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 60
	}
	for seed := 0; seed < seeds; seed++ {
		format := FormatKafka
		if seed%2 == 1 {
			format = FormatEntries
		}
		t.Run(fmt.Sprintf("seed%d-%v", seed, format), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			mem := vfs.NewMem()
			cfg := randomConfig(rng, format, mem)
			m := newModel(format)
			l := mustOpen(t, "/log", cfg)
			steps := 20 + rng.IntN(200)
			for i := 0; i < steps; i++ {
				m.step(t, l, rng, false)
				if l.closed.Load() {
					l = mustOpen(t, "/log", cfg)
				}
			}
			// Crash: l is abandoned as it is.
			crashed := mem.CrashClone(rng)
			cfg.FS = crashed
			l2, err := Open("/log", cfg)
			if err != nil {
				t.Fatalf("open after crash (%v): %v", m, err)
			}
			m.verify(t, l2)
			// And a second crash right after recovery loses nothing recovery found.
			end := l2.LogEndOffset()
			mustSync(t, l2)
			cfg.FS = crashed.CrashClone(rng)
			l3 := mustOpen(t, "/log", cfg)
			if l3.LogEndOffset() != end {
				t.Fatalf("end %d after a second crash, want %d", l3.LogEndOffset(), end)
			}
			if err := l3.Close(); err != nil {
				t.Fatal(err)
			}
			l.Close()
		})
	}
}
