package protocol

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/log"
)

// TestFetchEncoding checks the hand-written Fetch encoding against kmsg's, byte for byte,
// at every version served, with partitions with and without records and with errors, for
// both the copying and the sendfile path.
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
	for v := int16(4); v <= 12; v++ {
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = v
		resp.ThrottleMillis = 7
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
			fr.records = append(fr.records, make([]*log.ReadResult, len(tt.parts)))
			for pi, pp := range tt.parts {
				op := kmsg.NewFetchResponseTopicPartition()
				op.Partition = int32(pi)
				op.HighWatermark, op.LastStableOffset, op.LogStartOffset = 1000+int64(pi), 1000+int64(pi), 3
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

		for _, viaSendfile := range []bool{false, true} {
			got := writeOverTCP(t, fr, 42, viaSendfile)
			if !bytes.Equal(got, wantFrame) {
				t.Fatalf("v%d sendfile=%v: frame differs from kmsg's (%d vs %d bytes)", v, viaSendfile, len(got), len(wantFrame))
			}
		}
		fr.release()
	}
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
