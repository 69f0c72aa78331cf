package log

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sluicemq/sluice/vfs"
)

// crashSeeds returns n, or $SLUICE_CRASH_SEEDS for a longer run.
func crashSeeds(n int) int {
	if v, err := strconv.Atoi(os.Getenv("SLUICE_CRASH_SEEDS")); err == nil && v > 0 {
		return v
	}
	return n
}

// randomConfig returns a config with small, random sizes so that a short run rolls,
// indexes and checkpoints often.
func randomConfig(rng *rand.Rand, format Format, fs vfs.FS) Config {
	cfg := Config{
		Format:          format,
		FS:              fs,
		SegmentBytes:    int64(300 + rng.IntN(3000)),
		IndexInterval:   int64(32 + rng.IntN(512)),
		CheckpointBytes: int64(1 + rng.IntN(4000)),
	}
	if rng.IntN(2) == 0 {
		cfg.RetentionBytes = int64(1000 + rng.IntN(6000))
	}
	if rng.IntN(2) == 0 {
		cfg.RetentionAge = time.Duration(200+rng.IntN(800)) * time.Millisecond // timestamps are 1000-2000 ms
	}
	if rng.IntN(2) == 0 {
		cfg.RecycleSegments = 1 + rng.IntN(3)
	}
	return cfg
}

// TestCrashRecovery appends, syncs some, truncates and deletes at random, then takes
// the file system a power failure would leave, reopens it and checks that every synced
// entry is there in order, nothing torn is served and the next append gets the next
// offset. Over many seeds.
func TestCrashRecovery(t *testing.T) {
	seeds := crashSeeds(400)
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
			recovered := l2.LogEndOffset()
			m.verify(t, l2)
			// A second crash right after Open loses nothing recovery found: Open made it
			// durable (the append of verify is not synced and may go).
			cfg.FS = crashed.CrashClone(rng)
			l3 := mustOpen(t, "/log", cfg)
			if got := l3.LogEndOffset(); got < recovered {
				t.Fatalf("end %d after a second crash, want at least %d", got, recovered)
			}
			if err := l3.Close(); err != nil {
				t.Fatal(err)
			}
			l.Close()
		})
	}
}

// TestKillThenPowerFailure: a process killed with unsynced appends leaves them in the
// page cache, where recovery finds them; a power failure right after that Open must not
// lose what Open recovered (Open makes it durable before it checkpoints it).
func TestKillThenPowerFailure(t *testing.T) {
	seeds := crashSeeds(200)
	if testing.Short() {
		seeds = 40
	}
	for seed := 0; seed < seeds; seed++ {
		format := FormatKafka
		if seed%2 == 1 {
			format = FormatEntries
		}
		t.Run(fmt.Sprintf("seed%d-%v", seed, format), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 8))
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
			// Killed: l is abandoned with its page cache intact; a new process opens.
			l2 := mustOpen(t, "/log", cfg)
			if l2.LogEndOffset() != m.end() {
				t.Fatalf("end %d after a kill, want everything appended: %d", l2.LogEndOffset(), m.end())
			}
			m.durableEnd = m.end() // Open has made everything durable
			cfg.FS = mem.CrashClone(rng)
			l3 := mustOpen(t, "/log", cfg)
			defer l3.Close()
			m.verify(t, l3)
		})
	}
}
