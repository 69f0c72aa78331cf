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
// checks it byte for byte against kmsg's encoding of the same response for every version,
// tagged fields included. UnknownTags are never set here and are not encoded.
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
		switch {
		case v >= 13:
			dst = kbin.AppendUuid(dst, t.TopicID)
		case flex:
			dst = kbin.AppendCompactString(dst, t.Topic)
		default:
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
				dst = appendFetchPartitionTags(dst, p)
			}
		}
		if flex {
			dst = append(dst, 0) // topic tagged fields
		}
	}
	if flex {
		dst = appendFetchResponseTags(dst, f.Brokers)
	}
	pieces = append(pieces, fetchPiece{end: len(dst)})
	total += len(dst) - start
	binary.BigEndian.PutUint32(dst[start:], uint32(total-4))
	return dst, pieces, total
}

// appendFetchPartitionTags appends a flexible partition's tagged fields as kmsg does: each
// of DivergingEpoch (0), CurrentLeader (1) and SnapshotID (2) that is not at its default
// (-1, -1), in tag order, after their count; each is its tag, its size and its fields
// followed by an empty tag section of its own.
func appendFetchPartitionTags(dst []byte, p *kmsg.FetchResponseTopicPartition) []byte {
	diverging := p.DivergingEpoch.Epoch != -1 || p.DivergingEpoch.EndOffset != -1
	leader := p.CurrentLeader.LeaderID != -1 || p.CurrentLeader.LeaderEpoch != -1
	snapshot := p.SnapshotID.EndOffset != -1 || p.SnapshotID.Epoch != -1
	n := 0
	for _, set := range []bool{diverging, leader, snapshot} {
		if set {
			n++
		}
	}
	dst = kbin.AppendUvarint(dst, uint32(n))
	if diverging {
		dst = append(dst, 0, 4+8+1)
		dst = kbin.AppendInt32(dst, p.DivergingEpoch.Epoch)
		dst = kbin.AppendInt64(dst, p.DivergingEpoch.EndOffset)
		dst = append(dst, 0)
	}
	if leader {
		dst = append(dst, 1, 4+4+1)
		dst = kbin.AppendInt32(dst, p.CurrentLeader.LeaderID)
		dst = kbin.AppendInt32(dst, p.CurrentLeader.LeaderEpoch)
		dst = append(dst, 0)
	}
	if snapshot {
		dst = append(dst, 2, 8+4+1)
		dst = kbin.AppendInt64(dst, p.SnapshotID.EndOffset)
		dst = kbin.AppendInt32(dst, p.SnapshotID.Epoch)
		dst = append(dst, 0)
	}
	return dst
}

// appendFetchResponseTags appends a flexible response's tagged fields as kmsg does:
// NodeEndpoints (tag 0) when there are any, as a compact array of node ID, host, port and
// nullable rack, each with an empty tag section.
func appendFetchResponseTags(dst []byte, brokers []kmsg.FetchResponseBroker) []byte {
	if len(brokers) == 0 {
		return append(dst, 0)
	}
	size := kbin.UvarintLen(uint32(len(brokers) + 1))
	for i := range brokers {
		b := &brokers[i]
		size += 4 + kbin.UvarintLen(uint32(len(b.Host)+1)) + len(b.Host) + 4 + 1
		if b.Rack == nil {
			size++
		} else {
			size += kbin.UvarintLen(uint32(len(*b.Rack)+1)) + len(*b.Rack)
		}
	}
	dst = append(dst, 1, 0) // one tag: 0
	dst = kbin.AppendUvarint(dst, uint32(size))
	dst = kbin.AppendCompactArrayLen(dst, len(brokers))
	for i := range brokers {
		b := &brokers[i]
		dst = kbin.AppendInt32(dst, b.NodeID)
		dst = kbin.AppendCompactString(dst, b.Host)
		dst = kbin.AppendInt32(dst, b.Port)
		dst = kbin.AppendCompactNullableString(dst, b.Rack)
		dst = append(dst, 0)
	}
	return dst
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
