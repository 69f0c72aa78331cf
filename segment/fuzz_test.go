package segment_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/segment/segmenttest"
	"github.com/sluicemq/sluice/vfs"
)

// The seeds under testdata/fuzz/ are written by TestWriteFuzzSeeds (run with
// SLUICE_WRITE_FUZZ_SEEDS=1) from real batches, entries and index files; `go test` runs
// them, `make fuzz` explores from them.

// FuzzParseBatchHeader: decoding succeeds or returns an error, never panics, and what
// it accepts is consistent.
func FuzzParseBatchHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := segment.ParseBatchHeader(b)
		if err != nil {
			if !errors.Is(err, segment.ErrInvalidEntry) {
				t.Fatalf("error %v is not ErrInvalidEntry", err)
			}
			return
		}
		if h.Magic != 2 || h.Size() < segment.BatchHeaderSize || h.LastOffset() < h.BaseOffset {
			t.Fatalf("accepted %+v", h)
		}
		// CheckBatch never reads past b, whatever the header claims.
		if _, err := segment.CheckBatch(b); err == nil && h.Size() != int64(len(b)) {
			t.Fatalf("CheckBatch accepted %d bytes for a batch of %d", len(b), h.Size())
		}
		info, err := segment.FormatKafka.ParseHeader(b)
		if err != nil || info.Size != h.Size() || info.Base != h.BaseOffset {
			t.Fatalf("Format.ParseHeader = %+v, %v", info, err)
		}
	})
}

// FuzzDecodeEntry: a FormatEntries frame decodes or fails cleanly; a decoded frame
// encodes back to the same bytes.
func FuzzDecodeEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		off, payload, n, err := segment.DecodeEntry(b)
		if err != nil {
			if !errors.Is(err, segment.ErrInvalidEntry) && !errors.Is(err, segment.ErrCorrupt) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if n > len(b) || n != segment.EntryHeaderSize+len(payload) {
			t.Fatalf("n %d of %d bytes, payload %d", n, len(b), len(payload))
		}
		re := make([]byte, segment.EntryHeaderSize)
		segment.PutEntryHeader(re, off, payload)
		if !bytes.Equal(re, b[:segment.EntryHeaderSize]) {
			t.Fatalf("header does not encode back")
		}
	})
}

// FuzzDecodeIndex: the valid prefix is whole entries and decodes again without error.
func FuzzDecodeIndex(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, logSize int64, relEnd uint64) {
		valid, err := segment.DecodeIndex(b, logSize, relEnd)
		if valid < 0 || valid > len(b) || valid%segment.IndexEntrySize != 0 {
			t.Fatalf("valid %d of %d", valid, len(b))
		}
		if (err == nil) != (valid == len(b)) {
			t.Fatalf("valid %d of %d with error %v", valid, len(b), err)
		}
		if err != nil && !errors.Is(err, segment.ErrCorrupt) {
			t.Fatalf("error %v is not ErrCorrupt", err)
		}
		if again, err := segment.DecodeIndex(b[:valid], logSize, relEnd); err != nil || again != valid {
			t.Fatalf("prefix decodes to %d, %v", again, err)
		}
	})
}

// FuzzDecodeTimeIndex: as FuzzDecodeIndex for the time index.
func FuzzDecodeTimeIndex(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, relEnd uint64) {
		valid, err := segment.DecodeTimeIndex(b, relEnd)
		if valid < 0 || valid > len(b) || valid%segment.TimeIndexEntrySize != 0 {
			t.Fatalf("valid %d of %d", valid, len(b))
		}
		if (err == nil) != (valid == len(b)) {
			t.Fatalf("valid %d of %d with error %v", valid, len(b), err)
		}
		if again, err := segment.DecodeTimeIndex(b[:valid], relEnd); err != nil || again != valid {
			t.Fatalf("prefix decodes to %d, %v", again, err)
		}
	})
}

// FuzzRecover: any bytes as a segment's .log (and index files) recover without panic
// into a segment whose every offset can be found and whose entries pass their checks.
func FuzzRecover(f *testing.F) {
	f.Fuzz(func(t *testing.T, logBytes, index, timeIndex []byte, entries bool) {
		fs := vfs.NewMem()
		fs.MkdirAll("/d", 0o755)
		for ext, b := range map[string][]byte{segment.LogExt: logBytes, segment.IndexExt: index, segment.TimeIndexExt: timeIndex} {
			w, _ := fs.Create("/d/" + segment.FileName(5, ext))
			w.Write(b)
			w.Close()
		}
		format := segment.FormatKafka
		if entries {
			format = segment.FormatEntries
		}
		o := segment.Options{FS: fs, Dir: "/d", Format: format, IndexInterval: 64}
		p := segment.Point{Next: 5, MaxTimestamp: -1, MaxTimestampOffset: -1,
			IndexBytes: int64(len(index)), TimeIndexBytes: int64(len(timeIndex))}
		s, cut, err := segment.Recover(o, 5, p)
		if err != nil {
			t.Fatalf("Recover: %v", err)
		}
		defer s.Release()
		// Only a tail of zeros (what preallocation leaves) goes without a reported cut.
		dropped := logBytes[min(s.Size(), int64(len(logBytes))):]
		if (cut == nil) != bytes.Equal(dropped, make([]byte, len(dropped))) {
			t.Fatalf("cut %v, kept %d of %d bytes", cut, s.Size(), len(logBytes))
		}
		for off := s.Base(); off < s.Next(); off++ {
			pos, info, err := s.Find(off)
			if err != nil || info.Base > off || info.Last < off {
				t.Fatalf("Find(%d) = %d %+v %v", off, pos, info, err)
			}
			b := make([]byte, info.Size)
			if _, err := s.ReadAt(b, pos); err != nil {
				t.Fatal(err)
			}
			if format == segment.FormatKafka {
				_, err = segment.CheckBatch(b)
			} else {
				_, _, _, err = segment.DecodeEntry(b)
			}
			if err != nil {
				t.Fatalf("recovered entry at %d fails its check: %v", off, err)
			}
		}
	})
}

func frame(off segment.Offset, p []byte) []byte {
	b := make([]byte, segment.EntryHeaderSize, segment.EntryHeaderSize+len(p))
	segment.PutEntryHeader(b, off, p)
	return append(b, p...)
}

// seedSegment returns the files of a real segment at base 5.
func seedSegment(format segment.Format, n int) (logBytes, index, timeIndex []byte) {
	fs := vfs.NewMem()
	fs.MkdirAll("/d", 0o755)
	s, _ := segment.Create(segment.Options{FS: fs, Dir: "/d", Format: format, IndexInterval: 64}, 5)
	for i := 0; i < n; i++ {
		if format == segment.FormatKafka {
			s.Append(segmenttest.Batch(1+i%3, 10+i, int64(100+i*7%20), int64(100+i*7%20+3), byte(i)), 2)
		} else {
			s.Append(bytes.Repeat([]byte{byte(i)}, i*3), 0)
		}
	}
	s.Seal()
	read := func(ext string) []byte {
		f, _ := fs.Open("/d/" + segment.FileName(5, ext))
		st, _ := f.Stat()
		b := make([]byte, st.Size())
		f.ReadAt(b, 0)
		f.Close()
		return b
	}
	logBytes, index, timeIndex = read(segment.LogExt), read(segment.IndexExt), read(segment.TimeIndexExt)
	s.Release()
	return logBytes, index, timeIndex
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("SLUICE_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set SLUICE_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	write := func(target, name string, values ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, v := range values {
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case int64:
				fmt.Fprintf(&b, "int64(%d)\n", v)
			case uint64:
				fmt.Fprintf(&b, "uint64(%d)\n", v)
			case bool:
				fmt.Fprintf(&b, "bool(%v)\n", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	one := segmenttest.Batch(1, 5, 10, 10, 'a')
	many := segmenttest.Batch(7, 40, 10, 90, 'b')
	lat := segmenttest.Batch(2, 3, 10, 10, 'c')
	segment.SetLogAppendTime(lat, 12345)
	write("FuzzParseBatchHeader", "one-record", one)
	write("FuzzParseBatchHeader", "seven-records", many)
	write("FuzzParseBatchHeader", "log-append-time", lat)
	write("FuzzParseBatchHeader", "header-only", one[:segment.BatchHeaderSize])
	write("FuzzParseBatchHeader", "short", one[:40])
	write("FuzzDecodeEntry", "entry", frame(9, []byte("payload")))
	write("FuzzDecodeEntry", "empty-payload", frame(0, nil))
	write("FuzzDecodeEntry", "two-entries", append(frame(1, []byte("a")), frame(2, []byte("bc"))...))
	kl, ki, kt := seedSegment(segment.FormatKafka, 20)
	el, ei, et := seedSegment(segment.FormatEntries, 20)
	write("FuzzDecodeIndex", "kafka", ki, int64(len(kl)), uint64(40))
	write("FuzzDecodeIndex", "entries", ei, int64(len(el)), uint64(20))
	write("FuzzDecodeTimeIndex", "kafka", kt, uint64(40))
	write("FuzzRecover", "kafka", kl, ki, kt, false)
	write("FuzzRecover", "kafka-torn", kl[:len(kl)-7], ki, kt, false)
	write("FuzzRecover", "entries", el, ei, et, true)
	write("FuzzRecover", "entries-bad-index", el, ki, kt, true)
}
