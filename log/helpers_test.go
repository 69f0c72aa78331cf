package log

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/segment/segmenttest"
	"github.com/sluicemq/sluice/vfs"
)

// fakeClock is a settable clock for ages.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func newClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

func mustOpen(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return l
}

func memConfig(format Format) (Config, *vfs.MemFS) {
	fs := vfs.NewMem()
	return Config{Format: format, FS: fs}, fs
}

// batch returns a Kafka batch of n records of 100 bytes, timestamps ts.
func batch(n int, ts int64) []byte { return segmenttest.Batch(n, 100, ts, ts, byte(n)) }

func mustAppend(t testing.TB, l *Log, entry []byte) Offset {
	t.Helper()
	off, err := l.Append(entry, 7)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return off
}

func mustSync(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// readAll reads [off, upTo) with maxBytes per read and returns the bytes.
func readBytes(t testing.TB, l *Log, off Offset, maxBytes int, upTo Offset) ([]byte, Offset) {
	t.Helper()
	r, err := l.Read(off, maxBytes, upTo)
	if err != nil {
		t.Fatalf("Read(%d, %d, %d): %v", off, maxBytes, upTo, err)
	}
	defer r.Release()
	b, err := r.Bytes()
	if err != nil {
		t.Fatalf("Bytes: %v", err)
	}
	return b, r.NextOffset()
}

// kafkaEntries splits stored Kafka bytes into batches, checking each one's CRC, and
// returns their base offsets.
func kafkaEntries(b []byte) ([]Offset, [][]byte, error) {
	var offs []Offset
	var batches [][]byte
	for len(b) > 0 {
		h, err := segment.ParseBatchHeader(b)
		if err != nil {
			return offs, batches, err
		}
		if h.Size() > int64(len(b)) {
			return offs, batches, fmt.Errorf("partial batch: %d of %d bytes", len(b), h.Size())
		}
		if _, err := segment.CheckBatch(b[:h.Size()]); err != nil {
			return offs, batches, err
		}
		offs = append(offs, h.BaseOffset)
		batches = append(batches, b[:h.Size()])
		b = b[h.Size():]
	}
	return offs, batches, nil
}

// entriesOf decodes FormatEntries bytes.
func entriesOf(b []byte) ([]Offset, [][]byte, error) {
	var offs []Offset
	var payloads [][]byte
	for len(b) > 0 {
		off, p, n, err := segment.DecodeEntry(b)
		if err != nil {
			return offs, payloads, err
		}
		offs = append(offs, off)
		payloads = append(payloads, p)
		b = b[n:]
	}
	return offs, payloads, nil
}

// sameBatch reports whether stored is want with baseOffset and leader epoch rewritten.
func sameBatch(stored, want []byte) bool {
	if len(stored) != len(want) {
		return false
	}
	return bytes.Equal(stored[segment.BatchMagicPos:], want[segment.BatchMagicPos:]) &&
		bytes.Equal(stored[segment.BatchLengthPos:segment.BatchLeaderEpochPos], want[segment.BatchLengthPos:segment.BatchLeaderEpochPos])
}

func isOutOfRange(err error) bool { return errors.Is(err, ErrOffsetOutOfRange) }

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 99)) }
