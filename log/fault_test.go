package log

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/sluicemq/sluice/vfs"
)

// faultWorkload runs a fixed random workload on a log over fs; the log may fail at any
// point. It returns the model and the log (nil if it could not be opened).
func faultWorkload(t *testing.T, fs vfs.FS, format Format, seed uint64, steps int) (*model, *Log) {
	rng := rand.New(rand.NewPCG(seed, 11))
	cfg := randomConfig(rng, format, fs)
	cfg.SegmentBytes = 600
	m := newModel(format)
	l, err := Open("/log", cfg)
	if err != nil {
		m.failures++
		return m, nil
	}
	for i := 0; i < steps; i++ {
		m.step(t, l, rng, true)
		if l.closed.Load() {
			if l, err = Open("/log", cfg); err != nil {
				m.failures++
				return m, nil
			}
			// A failed operation may complete (a reset) or be undone at Open.
			m.follow(l)
		}
	}
	return m, l
}

// TestFaultAtEveryOperation fails each file-system operation of a workload in turn
// (once, or that one and all after it), then crashes and reopens: whatever failed, every
// synced entry is there, nothing torn is served, the next append gets the next offset.
func TestFaultAtEveryOperation(t *testing.T) {
	// $SLUICE_FAULT_SEEDS runs more workloads, for a longer soak.
	workloads := 1
	if v, err := strconv.Atoi(os.Getenv("SLUICE_FAULT_SEEDS")); err == nil && v > 0 {
		workloads = v
	}
	for seed := uint64(1); seed <= uint64(workloads); seed++ {
		for _, format := range []Format{FormatKafka, FormatEntries} {
			for _, errKind := range []error{vfs.ErrInjected, syscall.ENOSPC, syscall.EIO} {
				faultAtEveryOperation(t, seed, format, errKind)
			}
		}
	}
}

func faultAtEveryOperation(t *testing.T, seed uint64, format Format, errKind error) {
	t.Run(fmt.Sprintf("seed%d/%v/%v", seed, format, errKind), func(t *testing.T) {
		steps := 120
		count := vfs.NewFaultFS(vfs.NewMem())
		faultWorkload(t, count, format, seed, steps)
		total := count.Count()
		if total < 300 {
			t.Fatalf("only %d operations counted", total)
		}
		stride := int64(1)
		if testing.Short() {
			stride = 7
		}
		for n := int64(1); n <= total; n += stride {
			sticky := n%3 == 0
			t.Run(fmt.Sprintf("op%d", n), func(t *testing.T) {
				mem := vfs.NewMem()
				fs := vfs.NewFaultFS(mem)
				fs.FailAt(n, errKind, sticky)
				m, l := faultWorkload(t, fs, format, seed, steps)
				if l != nil {
					checkLiveReads(t, l, m, n)
					defer l.Close()
				}
				rng := rand.New(rand.NewPCG(uint64(n), 3))
				cfg := randomConfig(rng, format, mem.CrashClone(rng))
				l2, err := Open("/log", cfg)
				if err != nil {
					t.Fatalf("fault at op %d (sticky %v): open after crash: %v", n, sticky, err)
				}
				defer l2.Close()
				m.verify(t, l2)
			})
		}
	})
}

// checkLiveReads checks that a log that met faults still serves only whole, valid
// entries.
func checkLiveReads(t *testing.T, l *Log, m *model, n int64) {
	t.Helper()
	r, err := l.Read(l.LogStartOffset(), 1<<30, l.LogEndOffset())
	if err != nil {
		// Closed, or the fault hit this very read (sticky faults hit every read): what
		// matters is that what is served is whole.
		return
	}
	defer r.Release()
	b, err := r.Bytes()
	if err != nil {
		// The fault may have hit this very read (sticky faults hit every read).
		return
	}
	if m.format == FormatEntries {
		_, _, err = entriesOf(b)
	} else {
		_, _, err = kafkaEntries(b)
	}
	if err != nil {
		t.Fatalf("fault at op %d: live log serves a bad entry: %v", n, err)
	}
}
