package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/log"
)

// TestFetchEncoding checks the hand-written Fetch encoding against kmsg's, byte for byte,
// at every version served, with partitions with and without records and with errors, for
// both the copying and the sendfile path: topic names up to v12, topic IDs from v13, and
// from v12 (the first flexible version) without and with the tagged fields (a partition's
// current leader, diverging epoch and snapshot ID; the response's node endpoints).
func TestFetchEncoding(t *testing.T) {
	// Records from a real log: one small batch and one over sendfileMin.
	l, err := log.Open(t.TempDir(), log.Config{Format: log.FormatKafka})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	small := makeBatch([][]byte{[]byte("a"), []byte("bc")}, batchOpts{})
	large := makeBatch([][]byte{bytes.Repeat([]byte("x"), 100<<10)}, batchOpts{})
	for _, b := range [][]byte{small, large} {
		if _, err := l.Append(append([]byte(nil), b...), 0); err != nil {
			t.Fatal(err)
		}
	}
	read := func(off int64, max int) (*log.ReadResult, []byte) {
		rr, err := l.Read(log.Offset(off), max, l.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		b, err := rr.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return rr, b
	}
	rack := "rack-b"
	brokers := []kmsg.FetchResponseBroker{
		{NodeID: 2, Host: "10.0.0.2", Port: 9092},
		// A host over 127 bytes makes both its length and the tag's size two-byte uvarints.
		{NodeID: 5, Host: strings.Repeat("h", 200) + ".example", Port: 19092, Rack: &rack},
	}
	for v := int16(4); v <= 16; v++ {
		// From v12 the tagged fields: none, then the leader hint and node endpoints
		// (kmsg encodes them at every flexible version; the server sets them from v16).
		for _, hints := range []bool{false, true} {
			if hints && v < 12 {
				continue
			}
			name := fmt.Sprintf("v%d hints=%v", v, hints)
			fr, wantFrame := fetchEncodingCase(v, hints, brokers, read)
			for _, viaSendfile := range []bool{false, true} {
				got := writeOverTCP(t, fr, 42, viaSendfile)
				if !bytes.Equal(got, wantFrame) {
					t.Fatalf("%s sendfile=%v: frame differs from kmsg's (%d vs %d bytes)\ngot  %x\nwant %x",
						name, viaSendfile, len(got), len(wantFrame), head(got), head(wantFrame))
				}
			}
			fr.release()
		}
	}
}

// head is b shortened for a failure message.
func head(b []byte) []byte { return b[:min(len(b), 512)] }

// fetchEncodingCase builds a response at version v over records from read, and the frame
// kmsg encodes for it. With hints, the failed partition names its current leader, another
// carries a diverging epoch and a snapshot ID, and the response lists brokers.
func fetchEncodingCase(v int16, hints bool, brokers []kmsg.FetchResponseBroker,
	read func(off int64, max int) (*log.ReadResult, []byte)) (*fetchResponse, []byte) {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = v
	resp.ThrottleMillis = 7
	if hints {
		resp.Brokers = brokers
	}
	want := kmsg.NewPtrFetchResponse()
	*want = *resp
	fr := &fetchResponse{FetchResponse: resp}
	type part struct {
		off int64 // -1: no records; -2: an error
		max int
	}
	layout := []struct {
		name  string
		parts []part
	}{
		{"alpha", []part{{0, 1}, {-1, 0}, {-2, 0}}},
		{"beta-with-a-longer-name", []part{{2, 1 << 20}}},
		{"empty", nil},
	}
	for ti, tt := range layout {
		ot, wt := kmsg.NewFetchResponseTopic(), kmsg.NewFetchResponseTopic()
		ot.Topic, wt.Topic = tt.name, tt.name
		ot.TopicID = [16]byte{0xa0 + byte(ti), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff}
		wt.TopicID = ot.TopicID
		fr.records = append(fr.records, make([]*log.ReadResult, len(tt.parts)))
		for pi, pp := range tt.parts {
			op := kmsg.NewFetchResponseTopicPartition()
			op.Partition = int32(pi)
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = 1000+int64(pi), 1000+int64(pi), 3
			switch {
			case hints && pp.off == -2:
				op.CurrentLeader.LeaderID, op.CurrentLeader.LeaderEpoch = 5, 9
			case hints && pp.off == -1:
				op.DivergingEpoch.Epoch, op.DivergingEpoch.EndOffset = 4, 77
				op.SnapshotID.EndOffset, op.SnapshotID.Epoch = 66, 3
			}
			wp := op
			wp.RecordBatches = []byte{}
			switch {
			case pp.off == -2:
				op.ErrorCode, wp.ErrorCode = 1, 1
			case pp.off >= 0:
				rr, b := read(pp.off, pp.max)
				fr.records[ti][pi] = rr
				wp.RecordBatches = b
			}
			ot.Partitions = append(ot.Partitions, op)
			wt.Partitions = append(wt.Partitions, wp)
		}
		resp.Topics = append(resp.Topics, ot)
		want.Topics = append(want.Topics, wt)
	}
	wantFrame := appendResponseHeader(nil, 42, v >= 12)
	wantFrame = want.AppendTo(wantFrame)
	binary.BigEndian.PutUint32(wantFrame, uint32(len(wantFrame)-4))
	return fr, wantFrame
}

// writeOverTCP writes fr through a frameWriter on a real loopback TCP connection and
// returns the bytes that arrive.
func writeOverTCP(t *testing.T, fr *fetchResponse, corr int32, sendfile bool) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	w := &frameWriter{nc: nc, timeout: 10 * time.Second, copyRecords: !sendfile}
	raw, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	w.raw = raw
	if err := fr.writeFrame(w, corr); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	return <-got
}
