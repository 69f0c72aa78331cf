package log

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/segment/segmenttest"
)

// kafkaLog builds a log of batches with the given record counts; it returns the log,
// the batches and their base offsets.
func kafkaLog(t *testing.T, cfg Config, counts []int) (*Log, [][]byte, []Offset) {
	t.Helper()
	l := mustOpen(t, "/log", cfg)
	var batches [][]byte
	var bases []Offset
	for i, n := range counts {
		b := batch(n, int64(1000+i))
		off := mustAppend(t, l, b)
		batches = append(batches, b)
		bases = append(bases, off)
	}
	return l, batches, bases
}

func TestAppendAssignsOffsets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format Format
		counts []int
		want   []Offset
		end    Offset
	}{
		{"kafka one record", FormatKafka, []int{1, 1, 1}, []Offset{0, 1, 2}, 3},
		{"kafka many records", FormatKafka, []int{3, 1, 5}, []Offset{0, 3, 4}, 9},
		{"entries", FormatEntries, []int{1, 1, 1, 1}, []Offset{0, 1, 2, 3}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := memConfig(tc.format)
			l := mustOpen(t, "/log", cfg)
			defer l.Close()
			for i, n := range tc.counts {
				e := batch(n, 5)
				if tc.format == FormatEntries {
					e = []byte(fmt.Sprint("entry", i))
				}
				if got := mustAppend(t, l, e); got != tc.want[i] {
					t.Errorf("append %d: offset %d, want %d", i, got, tc.want[i])
				}
			}
			if got := l.LogEndOffset(); got != tc.end {
				t.Errorf("LogEndOffset %d, want %d", got, tc.end)
			}
			if got := l.LogStartOffset(); got != 0 {
				t.Errorf("LogStartOffset %d, want 0", got)
			}
		})
	}
}

func TestAppendSetsBaseOffsetAndEpochOnly(t *testing.T) {
	cfg, _ := memConfig(FormatKafka)
	l := mustOpen(t, "/log", cfg)
	defer l.Close()
	mustAppend(t, l, batch(4, 1))
	in := batch(2, 9)
	orig := slices.Clone(in)
	if _, err := l.Append(in, 42); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, orig) {
		t.Fatal("Append modified its argument")
	}
	got, err := l.Entry(4)
	if err != nil {
		t.Fatal(err)
	}
	h := segmenttest.Header(got)
	if h.BaseOffset != 4 || h.PartitionLeaderEpoch != 42 {
		t.Fatalf("stored baseOffset %d epoch %d, want 4 and 42", h.BaseOffset, h.PartitionLeaderEpoch)
	}
	if _, err := segment.CheckBatch(got); err != nil {
		t.Fatalf("stored batch fails its CRC: %v", err)
	}
	if !sameBatch(got, in) {
		t.Fatal("stored batch differs beyond baseOffset and epoch")
	}
}

func TestAppendRejects(t *testing.T) {
	good := batch(1, 1)
	badMagic := slices.Clone(good)
	badMagic[segment.BatchMagicPos] = 1
	short := good[:40]
	badLen := append(slices.Clone(good), 0)
	for _, tc := range []struct {
		name  string
		entry []byte
		want  error
	}{
		{"short header", short, ErrInvalidEntry},
		{"magic 1", badMagic, ErrInvalidEntry},
		{"length mismatch", badLen, ErrInvalidEntry},
		{"too large", segmenttest.Batch(1, 2000, 1, 1, 0), ErrEntryTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := memConfig(FormatKafka)
			cfg.MaxEntryBytes = 1024
			l := mustOpen(t, "/log", cfg)
			defer l.Close()
			if _, err := l.Append(tc.entry, 0); !errors.Is(err, tc.want) {
				t.Fatalf("Append: %v, want %v", err, tc.want)
			}
			if l.LogEndOffset() != 0 || l.Size() != 0 {
				t.Fatalf("log changed: end %d size %d", l.LogEndOffset(), l.Size())
			}
		})
	}
}

func TestRead(t *testing.T) {
	// Batches of 3, 1, 2, 4 records (~380, ~170, ~275, ~485 bytes); segments roll at
	// 700 bytes: [0..3] [4..] and so on.
	counts := []int{3, 1, 2, 4, 1, 1, 3}
	cfg, _ := memConfig(FormatKafka)
	cfg.SegmentBytes = 700
	l, batches, bases := kafkaLog(t, cfg, counts)
	defer l.Close()
	end := l.LogEndOffset()
	size := func(i int) int { return len(batches[i]) }
	if l.Segments() < 3 {
		t.Fatalf("want several segments, got %d", l.Segments())
	}
	for _, tc := range []struct {
		name     string
		off      Offset
		maxBytes int
		upTo     Offset
		want     []int // indexes of batches
		err      error
	}{
		{name: "first batch exactly", off: 0, maxBytes: size(0), upTo: end, want: []int{0}},
		{name: "middle of a batch", off: 2, maxBytes: size(0), upTo: end, want: []int{0}},
		{name: "two batches", off: 0, maxBytes: size(0) + size(1), upTo: end, want: []int{0, 1}},
		{name: "one byte short of two", off: 0, maxBytes: size(0) + size(1) - 1, upTo: end, want: []int{0}},
		{name: "larger than maxBytes", off: 4, maxBytes: 10, upTo: end, want: []int{2}},
		{name: "maxBytes zero", off: 0, maxBytes: 0, upTo: end, want: []int{0}},
		{name: "everything", off: 0, maxBytes: 1 << 20, upTo: end, want: []int{0, 1, 2, 3, 4, 5, 6}},
		{name: "up to a batch boundary", off: 0, maxBytes: 1 << 20, upTo: bases[3], want: []int{0, 1, 2}},
		{name: "up to inside a batch", off: 0, maxBytes: 1 << 20, upTo: bases[3] + 1, want: []int{0, 1, 2}},
		{name: "first batch straddles upTo", off: bases[3], maxBytes: 1 << 20, upTo: bases[3] + 2, want: nil},
		{name: "at upTo", off: bases[2], maxBytes: 1 << 20, upTo: bases[2], want: nil},
		{name: "segment boundary start", off: bases[2], maxBytes: size(2), upTo: end, want: []int{2}},
		{name: "last batch", off: end - 1, maxBytes: 1, upTo: end, want: []int{6}},
		{name: "at end", off: end, maxBytes: 100, upTo: end, want: nil},
		{name: "past end", off: end + 1, maxBytes: 100, upTo: end, err: ErrOffsetOutOfRange},
		{name: "negative", off: -1, maxBytes: 100, upTo: end, err: ErrOffsetOutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := l.Read(tc.off, tc.maxBytes, tc.upTo)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Read: %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			b, err := r.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if r.Len() != len(b) {
				t.Fatalf("Len %d, Bytes %d", r.Len(), len(b))
			}
			offs, got, err := kafkaEntries(b)
			if err != nil {
				t.Fatal(err)
			}
			var want []Offset
			for _, i := range tc.want {
				want = append(want, bases[i])
			}
			if !slices.Equal(offs, want) {
				t.Fatalf("read batches at %v, want %v", offs, want)
			}
			for k, i := range tc.want {
				if !sameBatch(got[k], batches[i]) {
					t.Fatalf("batch %d differs", i)
				}
			}
			wantNext := tc.off
			if len(tc.want) > 0 {
				last := tc.want[len(tc.want)-1]
				wantNext = bases[last] + Offset(counts[last])
			}
			if len(tc.want) > 0 && r.NextOffset() != wantNext {
				t.Fatalf("NextOffset %d, want %d", r.NextOffset(), wantNext)
			}
			var buf bytes.Buffer
			if _, err := r.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), b) {
				t.Fatalf("WriteTo: %v, %d bytes equal %v", err, buf.Len(), bytes.Equal(buf.Bytes(), b))
			}
		})
	}
}

func TestReadEmptyLog(t *testing.T) {
	for _, format := range []Format{FormatKafka, FormatEntries} {
		cfg, _ := memConfig(format)
		l := mustOpen(t, "/log", cfg)
		r, err := l.Read(0, 100, 100)
		if err != nil || r.Len() != 0 {
			t.Fatalf("%v: Read of an empty log: %v, %d bytes", format, err, r.Len())
		}
		r.Release()
		if _, err := l.Read(1, 100, 100); !isOutOfRange(err) {
			t.Fatalf("%v: Read(1) of an empty log: %v", format, err)
		}
		if _, err := l.Entry(0); !isOutOfRange(err) {
			t.Fatalf("%v: Entry(0) of an empty log: %v", format, err)
		}
		if ts, off := l.MaxTimestamp(); ts != -1 || off != -1 {
			t.Fatalf("%v: MaxTimestamp of an empty log: %d %d", format, ts, off)
		}
		if _, _, err := l.OffsetForTimestamp(0); !errors.Is(err, ErrTimestampNotFound) {
			t.Fatalf("%v: OffsetForTimestamp of an empty log: %v", format, err)
		}
		l.Close()
	}
}

func TestEntries(t *testing.T) {
	cfg, _ := memConfig(FormatEntries)
	cfg.SegmentBytes = 200
	l := mustOpen(t, "/log", cfg)
	defer l.Close()
	payload := func(i Offset) []byte { return []byte(fmt.Sprintf("entry-%d-%s", i, bytes.Repeat([]byte("x"), int(i)))) }
	for i := Offset(0); i < 40; i++ {
		if off := mustAppend(t, l, payload(i)); off != i {
			t.Fatalf("offset %d, want %d", off, i)
		}
	}
	if l.Segments() < 5 {
		t.Fatalf("want several segments, got %d", l.Segments())
	}
	for i := Offset(0); i < 40; i++ {
		got, err := l.Entry(i)
		if err != nil || !bytes.Equal(got, payload(i)) {
			t.Fatalf("Entry(%d) = %q, %v", i, got, err)
		}
	}
	b, next := readBytes(t, l, 7, 1<<20, 40)
	offs, payloads, err := entriesOf(b)
	if err != nil || next != 40 || len(offs) != 33 || offs[0] != 7 || !bytes.Equal(payloads[5], payload(12)) {
		t.Fatalf("Read from 7: %v entries from %v, next %d, err %v", len(offs), offs, next, err)
	}

	// Raft's head compaction, then a reset past the end, then a truncation below the
	// start: the next offset follows the value given each time.
	steps := []struct {
		name       string
		do         func() error
		start, end Offset
	}{
		{"delete before 10", func() error { return l.DeleteBefore(10) }, 10, 40},
		{"delete before 10 again", func() error { return l.DeleteBefore(10) }, 10, 40},
		{"delete before 5 (no-op)", func() error { return l.DeleteBefore(5) }, 10, 40},
		{"truncate to 30", func() error { return l.TruncateTo(30) }, 10, 30},
		{"truncate past end (no-op)", func() error { return l.TruncateTo(35) }, 10, 30},
		{"delete before 100 (past end)", func() error { return l.DeleteBefore(100) }, 100, 100},
		{"truncate to 50 (below start)", func() error { return l.TruncateTo(50) }, 50, 50},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if l.LogStartOffset() != st.start || l.LogEndOffset() != st.end {
			t.Fatalf("%s: start %d end %d, want %d %d", st.name, l.LogStartOffset(), l.LogEndOffset(), st.start, st.end)
		}
		if _, err := l.Entry(st.start - 1); st.start > 0 && !isOutOfRange(err) {
			t.Fatalf("%s: Entry below start: %v", st.name, err)
		}
		if _, err := l.Entry(st.end); !isOutOfRange(err) {
			t.Fatalf("%s: Entry at end: %v", st.name, err)
		}
		if st.end > st.start {
			if got, err := l.Entry(st.end - 1); err != nil || !bytes.Equal(got, payload(st.end-1)) {
				t.Fatalf("%s: last entry %q, %v", st.name, got, err)
			}
		}
	}
	if off := mustAppend(t, l, []byte("after")); off != 50 {
		t.Fatalf("append after reset: offset %d, want 50", off)
	}
	mustSync(t, l)
}

func TestTruncateTo(t *testing.T) {
	counts := []int{3, 1, 2, 4, 1, 1, 3} // bases 0 3 4 6 10 11 12, end 15
	for _, tc := range []struct {
		name     string
		off      Offset
		end      Offset
		batches  int
		startArg Offset // DeleteBefore first, 0: none
		start    Offset
	}{
		{name: "past end", off: 20, end: 15, batches: 7},
		{name: "at end", off: 15, end: 15, batches: 7},
		{name: "last batch boundary", off: 12, end: 12, batches: 6},
		{name: "inside the last batch", off: 13, end: 12, batches: 6},
		{name: "segment boundary", off: 6, end: 6, batches: 3},
		{name: "inside first batch", off: 1, end: 0, batches: 0},
		{name: "to zero", off: 0, end: 0, batches: 0},
		{name: "to the start", off: 4, end: 4, batches: 0, startArg: 4, start: 4},
		{name: "below the start", off: 2, end: 2, batches: 0, startArg: 4, start: 2},
		{name: "into the batch holding the start", off: 7, end: 6, batches: 0, startArg: 6, start: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := memConfig(FormatKafka)
			cfg.SegmentBytes = 700
			l, batches, _ := kafkaLog(t, cfg, counts)
			defer l.Close()
			if tc.startArg > 0 {
				if err := l.DeleteBefore(tc.startArg); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.TruncateTo(tc.off); err != nil {
				t.Fatal(err)
			}
			if l.LogEndOffset() != tc.end {
				t.Fatalf("end %d, want %d", l.LogEndOffset(), tc.end)
			}
			if l.LogStartOffset() != tc.start {
				t.Fatalf("start %d, want %d", l.LogStartOffset(), tc.start)
			}
			check := func(l *Log) {
				t.Helper()
				b, _ := readBytes(t, l, l.LogStartOffset(), 1<<20, 1<<40)
				_, got, err := kafkaEntries(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != tc.batches {
					t.Fatalf("%d batches left, want %d", len(got), tc.batches)
				}
			}
			check(l)
			// Appends continue at the new end, and everything survives a reopen.
			if off := mustAppend(t, l, batch(2, 99)); off != tc.end {
				t.Fatalf("append after truncate: %d, want %d", off, tc.end)
			}
			tc.batches++
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, "/log", cfg)
			defer l.Close()
			check(l)
			_ = batches
		})
	}
}

func TestDeleteBefore(t *testing.T) {
	counts := []int{3, 1, 2, 4, 1, 1, 3} // bases 0 3 4 6 10 11 12, end 15
	for _, tc := range []struct {
		name      string
		off       Offset
		start     Offset
		end       Offset
		firstBase Offset // base of the first batch a read from start returns
	}{
		{"zero", 0, 0, 15, 0},
		{"inside the first batch", 2, 2, 15, 0},
		{"segment boundary", 4, 4, 15, 4},
		{"inside a later segment", 11, 11, 15, 11},
		{"at end", 15, 15, 15, -1},
		{"past end", 20, 20, 20, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := memConfig(FormatKafka)
			cfg.SegmentBytes = 700
			l, _, _ := kafkaLog(t, cfg, counts)
			segsBefore := l.Segments()
			if err := l.DeleteBefore(tc.off); err != nil {
				t.Fatal(err)
			}
			if l.LogStartOffset() != tc.start || l.LogEndOffset() != tc.end {
				t.Fatalf("start %d end %d, want %d %d", l.LogStartOffset(), l.LogEndOffset(), tc.start, tc.end)
			}
			if tc.off >= 4 && l.Segments() >= segsBefore {
				t.Fatalf("no segment deleted: %d before, %d after", segsBefore, l.Segments())
			}
			if _, err := l.Read(tc.start-1, 100, 100); tc.start > 0 && !isOutOfRange(err) {
				t.Fatalf("Read below start: %v", err)
			}
			check := func(l *Log) {
				t.Helper()
				if l.LogStartOffset() != tc.start || l.LogEndOffset() != tc.end {
					t.Fatalf("after reopen: start %d end %d", l.LogStartOffset(), l.LogEndOffset())
				}
				b, _ := readBytes(t, l, tc.start, 1<<20, 100)
				offs, _, err := kafkaEntries(b)
				if err != nil {
					t.Fatal(err)
				}
				if tc.firstBase < 0 && len(offs) != 0 || tc.firstBase >= 0 && (len(offs) == 0 || offs[0] != tc.firstBase) {
					t.Fatalf("read from start: batches at %v, want first %d", offs, tc.firstBase)
				}
			}
			check(l)
			check(reopen(t, l, cfg))
		})
	}
}

// reopen closes l cleanly and opens it again; the new log is closed at the test's end.
func reopen(t *testing.T, l *Log, cfg Config) *Log {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n := mustOpen(t, l.Dir(), cfg)
	t.Cleanup(func() { n.Close() })
	return n
}

func TestOffsetForTimestamp(t *testing.T) {
	// Out-of-order timestamps across several segments and index entries.
	tss := []int64{100, 50, 300, 200, 200, 250, 400, 10, 350, 500, 450, 500, 600}
	cfg, _ := memConfig(FormatKafka)
	cfg.SegmentBytes = 900
	cfg.IndexInterval = 200
	l := mustOpen(t, "/log", cfg)
	defer l.Close()
	var bases []Offset
	for i, ts := range tss {
		bases = append(bases, mustAppend(t, l, segmenttest.Batch(1+i%2, 100, ts-5, ts, 0)))
	}
	check := func(l *Log) {
		for q := int64(0); q <= 700; q += 5 {
			wantOff, wantTS := Offset(-1), int64(-1)
			for i, ts := range tss {
				if ts >= q {
					wantOff, wantTS = bases[i], ts
					break
				}
			}
			off, ts, err := l.OffsetForTimestamp(q)
			if wantOff < 0 {
				if !errors.Is(err, ErrTimestampNotFound) {
					t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v; want not found", q, off, ts, err)
				}
				continue
			}
			if err != nil || off != wantOff || ts != wantTS {
				t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v; want %d, %d", q, off, ts, err, wantOff, wantTS)
			}
		}
		if ts, off := l.MaxTimestamp(); ts != 600 || off != bases[len(bases)-1] {
			t.Fatalf("MaxTimestamp = %d at %d", ts, off)
		}
	}
	if l.Segments() < 3 {
		t.Fatalf("want several segments, got %d", l.Segments())
	}
	check(l)
	check(reopen(t, l, cfg))
}

func TestMaxTimestampFirstOffset(t *testing.T) {
	cfg, _ := memConfig(FormatKafka)
	l := mustOpen(t, "/log", cfg)
	defer l.Close()
	mustAppend(t, l, batch(1, 10))
	mustAppend(t, l, batch(2, 30)) // offset 1
	mustAppend(t, l, batch(1, 30))
	mustAppend(t, l, batch(1, 20))
	if ts, off := l.MaxTimestamp(); ts != 30 || off != 1 {
		t.Fatalf("MaxTimestamp = %d at %d, want 30 at 1", ts, off)
	}
	if err := l.TruncateTo(1); err != nil {
		t.Fatal(err)
	}
	if ts, off := l.MaxTimestamp(); ts != 10 || off != 0 {
		t.Fatalf("after truncate: MaxTimestamp = %d at %d, want 10 at 0", ts, off)
	}
}

func TestRoll(t *testing.T) {
	t.Run("by size", func(t *testing.T) {
		cfg, _ := memConfig(FormatEntries)
		cfg.SegmentBytes = 100 // 16-byte header + 34-byte payload = 50: two per segment
		l := mustOpen(t, "/log", cfg)
		defer l.Close()
		for i := 0; i < 6; i++ {
			mustAppend(t, l, make([]byte, 34))
			if want := i/2 + 1; l.Segments() != want {
				t.Fatalf("after %d appends: %d segments, want %d", i+1, l.Segments(), want)
			}
		}
		// An entry larger than a segment gets a segment of its own.
		mustAppend(t, l, make([]byte, 500))
		mustAppend(t, l, make([]byte, 1))
		if l.Segments() != 5 {
			t.Fatalf("%d segments, want 5", l.Segments())
		}
	})
	t.Run("by age", func(t *testing.T) {
		clock := newClock()
		cfg, _ := memConfig(FormatEntries)
		cfg.SegmentAge = time.Hour
		cfg.Now = clock.Now
		l := mustOpen(t, "/log", cfg)
		defer l.Close()
		mustAppend(t, l, []byte("a"))
		clock.Advance(59 * time.Minute)
		mustAppend(t, l, []byte("b"))
		if l.Segments() != 1 {
			t.Fatalf("rolled too early: %d segments", l.Segments())
		}
		clock.Advance(time.Minute)
		mustAppend(t, l, []byte("c"))
		if l.Segments() != 2 {
			t.Fatalf("did not roll: %d segments", l.Segments())
		}
	})
}

func TestRetention(t *testing.T) {
	t.Run("by size", func(t *testing.T) {
		cfg, _ := memConfig(FormatEntries)
		cfg.SegmentBytes = 100
		cfg.RetentionBytes = 250
		l := mustOpen(t, "/log", cfg)
		defer l.Close()
		for i := 0; i < 10; i++ { // 5 segments of 100 bytes
			mustAppend(t, l, make([]byte, 34))
		}
		if err := l.EnforceRetention(time.Now()); err != nil {
			t.Fatal(err)
		}
		// Deleting keeps at least RetentionBytes: 3 segments (300 bytes) stay.
		if l.Segments() != 3 || l.Size() != 300 || l.LogStartOffset() != 4 {
			t.Fatalf("%d segments, %d bytes, start %d; want 3, 300, 4", l.Segments(), l.Size(), l.LogStartOffset())
		}
		if _, err := l.Entry(3); !isOutOfRange(err) {
			t.Fatalf("Entry(3) after retention: %v", err)
		}
	})
	t.Run("by age", func(t *testing.T) {
		clock := newClock()
		cfg, _ := memConfig(FormatKafka)
		cfg.SegmentBytes = 600
		cfg.RetentionAge = time.Hour
		cfg.Now = clock.Now
		l := mustOpen(t, "/log", cfg)
		defer l.Close()
		now := clock.Now().UnixMilli()
		for i := 0; i < 8; i++ { // timestamps one hour apart, going back 8 hours
			mustAppend(t, l, batch(2, now-int64(8-i)*int64(time.Hour/time.Millisecond)))
		}
		segs := l.Segments()
		if err := l.EnforceRetention(clock.Now()); err != nil {
			t.Fatal(err)
		}
		if l.Segments() >= segs || l.LogStartOffset() == 0 {
			t.Fatalf("nothing deleted: %d segments, start %d", l.Segments(), l.LogStartOffset())
		}
		clock.Advance(10 * time.Hour)
		if err := l.EnforceRetention(clock.Now()); err != nil {
			t.Fatal(err)
		}
		if l.LogStartOffset() != 16 || l.LogEndOffset() != 16 || l.Size() != 0 {
			t.Fatalf("all expired: start %d end %d size %d; want empty at 16", l.LogStartOffset(), l.LogEndOffset(), l.Size())
		}
		if off := mustAppend(t, l, batch(1, clock.Now().UnixMilli())); off != 16 {
			t.Fatalf("append after expiry: %d", off)
		}
	})
}

func TestReadResultOutlivesDeletion(t *testing.T) {
	cfg, fs := memConfig(FormatEntries)
	cfg.SegmentBytes = 100
	l := mustOpen(t, "/log", cfg)
	defer l.Close()
	for i := 0; i < 6; i++ {
		mustAppend(t, l, bytes.Repeat([]byte{byte(i)}, 34))
	}
	r, err := l.Read(0, 1<<20, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteBefore(4); err != nil {
		t.Fatal(err)
	}
	if names, _ := fs.List("/log"); slices.Contains(names, segment.FileName(0, segment.LogExt)) {
		t.Fatalf("segment 0 still listed: %v", names)
	}
	b, err := r.Bytes()
	if err != nil {
		t.Fatalf("reading a deleted segment before Release: %v", err)
	}
	offs, _, err := entriesOf(b)
	if err != nil || len(offs) != 6 {
		t.Fatalf("got %v, %v", offs, err)
	}
	r.Release()
}

func TestConcurrentReadersSeeWholeEntries(t *testing.T) {
	cfg, _ := memConfig(FormatKafka)
	cfg.SegmentBytes = 64 << 10
	cfg.RetentionBytes = 256 << 10
	l := mustOpen(t, "/log", cfg)
	defer l.Close()
	const batches = 2000
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := Offset(0)
			for {
				select {
				case <-done:
					return
				default:
				}
				end := l.LogEndOffset()
				res, err := l.Read(off, 32<<10, end)
				if isOutOfRange(err) { // retention overtook us
					off = l.LogStartOffset()
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				b, err := res.Bytes()
				next := res.NextOffset()
				res.Release()
				if err != nil {
					errs <- err
					return
				}
				offs, _, err := kafkaEntries(b)
				if err != nil {
					errs <- fmt.Errorf("read from %d: %w", off, err)
					return
				}
				for _, o := range offs {
					if o >= end {
						errs <- fmt.Errorf("read offset %d past the end %d", o, end)
						return
					}
				}
				off = next
			}
		}()
	}
	for i := 0; i < batches; i++ {
		mustAppend(t, l, batch(1+i%4, int64(i)))
		if i%100 == 0 {
			if err := l.EnforceRetention(time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if i%250 == 0 {
			mustSync(t, l)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestClosed(t *testing.T) {
	cfg, _ := memConfig(FormatKafka)
	l := mustOpen(t, "/log", cfg)
	mustAppend(t, l, batch(1, 1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(batch(1, 1), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := l.Read(0, 10, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := l.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestReadResultAfterTruncate(t *testing.T) {
	cfg, _ := memConfig(FormatEntries)
	l := mustOpen(t, "/log", cfg)
	defer l.Close()
	for i := 0; i < 10; i++ {
		mustAppend(t, l, []byte("old-entry"))
	}
	r, err := l.Read(5, 1<<20, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if err := l.TruncateTo(5); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		mustAppend(t, l, []byte("new-entry"))
	}
	if _, err := r.Bytes(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Bytes after the entries were truncated and replaced: %v", err)
	}
	if err := r.Check(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Check: %v", err)
	}
	if _, err := r.WriteTo(&bytes.Buffer{}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("WriteTo: %v", err)
	}
}

// TestAppendDuringSync: one goroutine appends while another syncs (group commit), with
// rolls and checkpoints; everything synced survives a crash.
func TestAppendDuringSync(t *testing.T) {
	cfg, mem := memConfig(FormatKafka)
	cfg.SegmentBytes = 4000
	cfg.CheckpointBytes = 3000
	l := mustOpen(t, "/log", cfg)
	var wg sync.WaitGroup
	done := make(chan struct{})
	var mu sync.Mutex
	var durable Offset
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			end := l.LogEndOffset()
			if err := l.Sync(); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			durable = end
			mu.Unlock()
		}
	}()
	for i := 0; i < 3000; i++ {
		mustAppend(t, l, batch(1+i%3, int64(i)))
	}
	close(done)
	wg.Wait()
	cfg.FS = mem.CrashClone(newRand(9))
	l2 := mustOpen(t, "/log", cfg)
	defer l2.Close()
	if l2.LogEndOffset() < durable {
		t.Fatalf("end %d after a crash, %d was synced", l2.LogEndOffset(), durable)
	}
	b, _ := readBytes(t, l2, 0, 1<<30, l2.LogEndOffset())
	if _, _, err := kafkaEntries(b); err != nil {
		t.Fatal(err)
	}
}
