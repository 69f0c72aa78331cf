package protocol

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/log"
)

// fetchResponse is a Fetch response whose records stay in the segment files until the
// writer sends them. The embedded kmsg response carries every field except the partitions'
// RecordBatches, which records holds instead ([topic][partition], nil for none).
//
// writeFrame encodes the response by hand around the record bytes; TestFetchEncoding
// checks it byte for byte against kmsg's encoding of the same response for every version.
type fetchResponse struct {
	*kmsg.FetchResponse
	records [][]*log.ReadResult
	bytes   int  // record bytes held
	failed  bool // some partition has an error: answer at once
}

// release frees the held reads.
func (f *fetchResponse) release() {
	for _, t := range f.records {
		for j, rr := range t {
			if rr != nil {
				rr.Release()
				t[j] = nil
			}
		}
	}
}

// fetchPiece is a stretch of the encoded frame: bytes of enc up to end, then the records
// of rr (nil at the end).
type fetchPiece struct {
	end int
	rr  *log.ReadResult
}

// encode appends the frame around the records to dst and returns the pieces: the frame is
// dst[start:pieces[0].end], pieces[0].rr, dst[pieces[0].end:pieces[1].end], ...
func (f *fetchResponse) encode(dst []byte, corr int32) ([]byte, []fetchPiece, int) {
	v := f.Version
	flex := v >= 12
	start := len(dst)
	dst = appendResponseHeader(dst, corr, flex)
	var pieces []fetchPiece
	total := 0
	if v >= 1 {
		dst = kbin.AppendInt32(dst, f.ThrottleMillis)
	}
	if v >= 7 {
		dst = kbin.AppendInt16(dst, f.ErrorCode)
		dst = kbin.AppendInt32(dst, f.SessionID)
	}
	dst = appendArrayLen(dst, len(f.Topics), flex)
	for i := range f.Topics {
		t := &f.Topics[i]
		if flex {
			dst = kbin.AppendCompactString(dst, t.Topic)
		} else {
			dst = kbin.AppendString(dst, t.Topic)
		}
		dst = appendArrayLen(dst, len(t.Partitions), flex)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			dst = kbin.AppendInt32(dst, p.Partition)
			dst = kbin.AppendInt16(dst, p.ErrorCode)
			dst = kbin.AppendInt64(dst, p.HighWatermark)
			dst = kbin.AppendInt64(dst, p.LastStableOffset) // v4+
			if v >= 5 {
				dst = kbin.AppendInt64(dst, p.LogStartOffset)
			}
			// No aborted transactions: a null array.
			if flex {
				dst = kbin.AppendUvarint(dst, 0)
			} else {
				dst = kbin.AppendInt32(dst, -1)
			}
			if v >= 11 {
				dst = kbin.AppendInt32(dst, p.PreferredReadReplica)
			}
			var rr *log.ReadResult
			if i < len(f.records) && j < len(f.records[i]) {
				rr = f.records[i][j]
			}
			n := 0
			if rr != nil {
				n = rr.Len()
			}
			// Records: empty rather than null when there are none.
			if flex {
				dst = kbin.AppendUvarint(dst, uint32(n)+1)
			} else {
				dst = kbin.AppendInt32(dst, int32(n))
			}
			if n > 0 {
				pieces = append(pieces, fetchPiece{end: len(dst), rr: rr})
				total += n
			}
			if flex {
				dst = append(dst, 0) // partition tagged fields
			}
		}
		if flex {
			dst = append(dst, 0) // topic tagged fields
		}
	}
	if flex {
		dst = append(dst, 0) // response tagged fields
	}
	pieces = append(pieces, fetchPiece{end: len(dst)})
	total += len(dst) - start
	binary.BigEndian.PutUint32(dst[start:], uint32(total-4))
	return dst, pieces, total
}

func appendArrayLen(dst []byte, n int, flex bool) []byte {
	if flex {
		return kbin.AppendCompactArrayLen(dst, n)
	}
	return kbin.AppendArrayLen(dst, n)
}

// writeFrame implements streamedResponse.
func (f *fetchResponse) writeFrame(w *frameWriter, corr int32) error {
	enc, pieces, _ := f.encode(w.scratch[:0], corr)
	if cap(enc) <= 1<<20 {
		w.scratch = enc
	}
	prev := 0
	for _, pc := range pieces {
		w.buf = append(w.buf, enc[prev:pc.end]...)
		prev = pc.end
		if pc.rr != nil {
			if err := w.records(pc.rr); err != nil {
				return err
			}
		}
	}
	return nil
}
