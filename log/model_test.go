package log

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/segment/segmenttest"
)

// model is what a log should hold, for crash and fault tests. It tracks each entry ever
// appended at an offset, what is known durable, and which operations failed (whose
// effect is then unknown).
type model struct {
	format  Format
	entries []modelEntry // the log's content, in order
	start   Offset
	endOff  Offset // the log end offset
	// durable: every entry below durableEnd (and at or past start) survives a crash.
	durableEnd Offset
	history    map[Offset][][]byte // every entry ever appended at a base offset
	// startMaybe holds log starts that a failed operation may have left.
	startMaybe []Offset
	failures   int
}

type modelEntry struct {
	base, next Offset
	data       []byte
}

func newModel(format Format) *model {
	return &model{format: format, history: map[Offset][][]byte{}}
}

func (m *model) end() Offset { return m.endOff }

// makeEntry returns a random entry.
func (m *model) makeEntry(rng *rand.Rand) []byte {
	if m.format == FormatEntries {
		b := make([]byte, 1+rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	ts := int64(1000 + rng.IntN(1000))
	return segmenttest.Batch(1+rng.IntN(5), rng.IntN(80), ts-5, ts, byte(rng.Uint32()))
}

func (m *model) count(e []byte) Offset {
	if m.format == FormatEntries {
		return 1
	}
	return Offset(segmenttest.Header(e).LastOffsetDelta) + 1
}

// cutAt drops the entries at or after the one holding off; it returns the new end.
func (m *model) cutAt(off Offset) Offset {
	i := slices.IndexFunc(m.entries, func(e modelEntry) bool { return e.next > off })
	if i >= 0 {
		m.endOff = min(m.entries[i].base, off)
		m.entries = m.entries[:i]
	} else {
		m.endOff = min(m.endOff, off)
	}
	if m.endOff < m.start { // the batch holding off began below the start: reset
		m.entries, m.endOff = nil, m.start
	}
	return m.end()
}

// follow brings the model in line with the log's end after an operation that failed
// (a failed Sync may cut the log back).
func (m *model) follow(l *Log) {
	if start := l.LogStartOffset(); start != m.start {
		m.startMaybe = append(m.startMaybe, m.start, start)
		m.start = start
		m.entries = slices.DeleteFunc(m.entries, func(e modelEntry) bool { return e.next <= start })
	}
	switch end := l.LogEndOffset(); {
	case end < m.end():
		m.cutAt(end)
		m.durableEnd = min(m.durableEnd, end)
	case end > m.end(): // a reset to an empty log past the end
		m.entries, m.endOff = nil, end
	}
}

// step runs one random operation on l and updates the model. With faulty, errors are
// expected and make the model unsure; without, they fail the test.
func (m *model) step(t *testing.T, l *Log, rng *rand.Rand, faulty bool) {
	t.Helper()
	failed := func(op string, err error) bool {
		if err == nil {
			return false
		}
		if !faulty {
			t.Fatalf("%s: %v", op, err)
		}
		m.failures++
		return true
	}
	switch r := rng.IntN(100); {
	case r < 70:
		e := m.makeEntry(rng)
		off, err := l.Append(e, 3)
		if failed("append", err) {
			m.follow(l)
			return
		}
		if off != m.end() {
			t.Fatalf("append got offset %d, model end %d", off, m.end())
		}
		m.entries = append(m.entries, modelEntry{base: off, next: off + m.count(e), data: e})
		m.endOff = off + m.count(e)
		m.history[off] = append(m.history[off], e)
	case r < 88:
		end := l.LogEndOffset()
		if failed("sync", l.Sync()) {
			m.follow(l)
			return
		}
		m.durableEnd = end
	case r < 93 && m.end() > m.start:
		off := m.start + Offset(rng.Int64N(int64(m.end()-m.start)+1))
		if rng.IntN(8) == 0 {
			off = max(0, m.start-Offset(rng.IntN(3)))
		}
		err := l.TruncateTo(off)
		// Whether or not it worked, nothing at or past the cut is durable any more.
		if off <= m.start {
			m.durableEnd = min(m.durableEnd, off)
			if failed("truncate", err) {
				m.startMaybe = append(m.startMaybe, off)
				m.follow(l)
				return
			}
			m.entries, m.start, m.endOff = nil, off, off
			m.durableEnd = off
			return
		}
		cut := off
		if i := slices.IndexFunc(m.entries, func(e modelEntry) bool { return e.next > off }); i >= 0 {
			cut = m.entries[i].base
		}
		m.durableEnd = min(m.durableEnd, cut)
		if failed("truncate", err) {
			m.follow(l)
			return
		}
		if got := m.cutAt(off); l.LogEndOffset() != got {
			t.Fatalf("truncate to %d: end %d, model %d", off, l.LogEndOffset(), got)
		}
	case r < 95:
		// Retention by size and by age. Its new start is durable when it returns: a
		// crash never brings the segments it deleted back.
		prev := m.start
		var bases []Offset
		l.mu.RLock()
		for _, s := range l.segs {
			bases = append(bases, s.Base())
		}
		l.mu.RUnlock()
		if failed("retention", l.EnforceRetention(time.UnixMilli(int64(1500+rng.IntN(1500))))) {
			// The new start (the base of the first segment kept) may have reached the disk.
			m.startMaybe = append(m.startMaybe, prev)
			m.startMaybe = append(m.startMaybe, bases...)
			m.follow(l)
			return
		}
		if start := l.LogStartOffset(); start != m.start {
			m.start = start
			m.entries = slices.DeleteFunc(m.entries, func(e modelEntry) bool { return e.next <= start })
			if len(m.entries) == 0 {
				m.endOff = max(m.endOff, start)
			}
		}
		if l.LogEndOffset() != m.end() {
			t.Fatalf("retention moved the end to %d, model %d", l.LogEndOffset(), m.end())
		}
	case r < 97:
		off := m.start + Offset(rng.Int64N(int64(m.end()-m.start)+3))
		err := l.DeleteBefore(off)
		if off <= m.start {
			failed("delete before", err)
			return
		}
		if failed("delete before", err) {
			m.startMaybe = append(m.startMaybe, off)
			m.follow(l)
			return
		}
		if off >= m.end() {
			m.entries = nil
			m.durableEnd, m.endOff = off, off
		} else {
			m.entries = slices.DeleteFunc(m.entries, func(e modelEntry) bool { return e.next <= off })
		}
		m.start = off
	default:
		// A clean close and reopen.
		err := l.Close()
		if failed("close", err) {
			return
		}
		m.durableEnd = m.end()
	}
}

// verify checks a log opened after a crash against the model: every durable entry is
// there, in order; every other entry it serves is one that was appended at its offset;
// nothing torn; the next append gets the next offset.
func (m *model) verify(t *testing.T, l *Log) {
	t.Helper()
	start, end := l.LogStartOffset(), l.LogEndOffset()
	if start != m.start && !slices.Contains(m.startMaybe, start) {
		t.Fatalf("start %d, model %d or one of %v", start, m.start, m.startMaybe)
	}
	if end < m.durableEnd {
		t.Fatalf("end %d below the durable end %d (start %d)", end, m.durableEnd, start)
	}
	r, err := l.Read(start, 1<<30, end)
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	b, err := r.Bytes()
	r.Release()
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	var offs []Offset
	var got [][]byte
	if m.format == FormatEntries {
		offs, got, err = entriesOf(b)
	} else {
		offs, got, err = kafkaEntries(b)
	}
	if err != nil {
		t.Fatalf("torn or corrupt entry served: %v", err)
	}
	next := Offset(-1)
	for i, off := range offs {
		if next >= 0 && off != next {
			t.Fatalf("entry %d at offset %d, want %d", i, off, next)
		}
		e := got[i]
		var n Offset = 1
		if m.format == FormatKafka {
			h := segmenttest.Header(e)
			n = Offset(h.LastOffsetDelta) + 1
			if h.PartitionLeaderEpoch != 3 {
				t.Fatalf("entry at %d: epoch %d", off, h.PartitionLeaderEpoch)
			}
		}
		next = off + n
		// A durable entry must be the model's.
		if next <= m.durableEnd && off >= m.start {
			j := slices.IndexFunc(m.entries, func(me modelEntry) bool { return me.base == off })
			if j < 0 || !m.same(e, m.entries[j].data) {
				t.Fatalf("durable entry at %d is not the model's", off)
			}
		}
		if !slices.ContainsFunc(m.history[off], func(h []byte) bool { return m.same(e, h) }) {
			t.Fatalf("entry at %d was never appended there", off)
		}
	}
	if len(offs) > 0 && next != end {
		t.Fatalf("entries end at %d, log end %d", next, end)
	}
	// The durable entries at or past the start are all there.
	for _, me := range m.entries {
		if me.next > m.durableEnd || me.next <= start {
			continue
		}
		if !slices.Contains(offs, me.base) {
			t.Fatalf("durable entry at %d lost (log [%d, %d), durable end %d)", me.base, start, end, m.durableEnd)
		}
	}
	e := m.makeEntry(rand.New(rand.NewPCG(1, 1)))
	off, err := l.Append(e, 3)
	if err != nil || off != end {
		t.Fatalf("append after recovery: offset %d, %v; want %d", off, err, end)
	}
}

func (m *model) same(stored, appended []byte) bool {
	if m.format == FormatEntries {
		return bytes.Equal(stored, appended)
	}
	return sameBatch(stored, appended)
}

func (m *model) String() string {
	return fmt.Sprintf("start %d end %d durable %d entries %d failures %d", m.start, m.end(), m.durableEnd, len(m.entries), m.failures)
}
