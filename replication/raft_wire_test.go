package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func testHeader(id string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte("127.0.0.1:" + id)}
}

// patterned returns n bytes that differ with position, so a misplaced slice shows.
func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// wireMessages is one of each message encodeMessage takes, every field set.
func wireMessages() []any {
	return []any{
		&raft.AppendEntriesResponse{RPCHeader: testHeader("2"), Term: 7, LastLog: 1 << 40, Success: true, NoRetryBackoff: true},
		&raft.AppendEntriesResponse{RPCHeader: testHeader("2"), Term: 1},
		&raft.RequestVoteRequest{RPCHeader: testHeader("1"), Term: 9, Candidate: []byte("n1"), LastLogIndex: 300, LastLogTerm: 8, LeadershipTransfer: true},
		&raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{}, Term: 1},
		&raft.RequestVoteResponse{RPCHeader: testHeader("3"), Term: 9, Peers: []byte("peers"), Granted: true},
		&raft.RequestPreVoteRequest{RPCHeader: testHeader("1"), Term: 10, LastLogIndex: 301, LastLogTerm: 9},
		&raft.RequestPreVoteResponse{RPCHeader: testHeader("2"), Term: 10, Granted: true},
		&raft.InstallSnapshotRequest{
			RPCHeader: testHeader("1"), SnapshotVersion: raft.SnapshotVersionMax, Term: 4, Leader: []byte("127.0.0.1:1"),
			LastLogIndex: 5000, LastLogTerm: 4, Peers: []byte("old peers"), Configuration: patterned(300, 3),
			ConfigurationIndex: 4990, Size: 1 << 33,
		},
		&raft.InstallSnapshotResponse{RPCHeader: testHeader("2"), Term: 4, Success: true},
		&raft.TimeoutNowRequest{RPCHeader: testHeader("1")},
		&raft.TimeoutNowResponse{RPCHeader: testHeader("2")},
	}
}

func TestWireMessagesRoundTrip(t *testing.T) {
	for _, msg := range wireMessages() {
		meta, err := encodeMessage(nil, msg)
		if err != nil {
			t.Fatalf("encode %T: %v", msg, err)
		}
		got := reflect.New(reflect.TypeOf(msg).Elem()).Interface()
		if err := decodeMessage(meta, got); err != nil {
			t.Fatalf("decode %T: %v", msg, err)
		}
		if !reflect.DeepEqual(got, msg) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", msg, got, msg)
		}
		// Every strict prefix is refused, and so is a byte too many.
		for n := range len(meta) {
			into := reflect.New(reflect.TypeOf(msg).Elem()).Interface()
			if err := decodeMessage(meta[:n], into); !errors.Is(err, errWire) {
				t.Fatalf("%T cut to %d of %d bytes: err %v", msg, n, len(meta), err)
			}
		}
		into := reflect.New(reflect.TypeOf(msg).Elem()).Interface()
		if err := decodeMessage(append(meta, 0), into); !errors.Is(err, errWire) {
			t.Fatalf("%T with a trailing byte: err %v", msg, err)
		}
	}
	if _, err := encodeMessage(nil, &raft.AppendEntriesRequest{}); !errors.Is(err, errWire) {
		t.Fatalf("encodeMessage of an AppendEntries request: %v", err)
	}
	if err := decodeMessage(nil, new(int)); !errors.Is(err, errWire) {
		t.Fatalf("decodeMessage into an int: %v", err)
	}
}

// encodeAppendEntries is what sendAppendEntries writes: frame, then the payloads.
func encodeAppendEntries(req *raft.AppendEntriesRequest) []byte {
	var out bytes.Buffer
	out.Write(wireFrame(wireAppendEntries, appendEntriesMeta(nil, req)))
	for _, l := range req.Entries {
		out.Write(l.Data)
		out.Write(l.Extensions)
	}
	return out.Bytes()
}

// decodeAppendEntries reads one AppendEntries frame and its payloads as a server does.
func decodeAppendEntries(rd io.Reader) (*raft.AppendEntriesRequest, error) {
	kind, meta, _, err := readWireFrame(rd, nil)
	if err != nil {
		return nil, err
	}
	if kind != wireAppendEntries {
		return nil, errors.New("not an AppendEntries")
	}
	req := new(raft.AppendEntriesRequest)
	lens, err := decodeAppendEntriesMeta(meta, req)
	if err != nil {
		return nil, err
	}
	return req, readPayloads(rd, req.Entries, lens)
}

func TestWireAppendEntriesRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC)
	cases := []struct {
		name string
		req  *raft.AppendEntriesRequest
	}{
		{"heartbeat", &raft.AppendEntriesRequest{RPCHeader: testHeader("1"), Term: 3, Leader: []byte("127.0.0.1:1")}},
		{"empty", &raft.AppendEntriesRequest{}},
		{"entries", &raft.AppendEntriesRequest{
			RPCHeader: testHeader("1"), Term: 5, Leader: []byte("l"), PrevLogEntry: 99, PrevLogTerm: 4, LeaderCommitIndex: 98,
			Entries: []*raft.Log{
				{Index: 100, Term: 5, Type: raft.LogCommand, Data: []byte("one"), AppendedAt: at},
				{Index: 101, Term: 5, Type: raft.LogNoop},                                    // no data
				{Index: 102, Term: 5, Type: raft.LogCommand, Extensions: []byte("ext only")}, // no data, extensions
				{Index: 103, Term: 5, Type: raft.LogConfiguration, Data: patterned(5000, 1), Extensions: patterned(70, 2), AppendedAt: at.Add(time.Second)},
				{Index: 104, Term: 5, Type: raft.LogBarrier, Data: patterned(3<<20+17, 9)}, // read in growing buffers
				{Index: 1 << 62, Term: 1 << 60, Type: raft.LogType(255), Data: []byte{0}},
			},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wire := encodeAppendEntries(tc.req)
			got, err := decodeAppendEntries(bytes.NewReader(wire))
			if err != nil {
				t.Fatal(err)
			}
			want := *tc.req
			if want.Entries == nil {
				want.Entries = []*raft.Log{}
			}
			if len(got.Entries) != len(want.Entries) {
				t.Fatalf("%d entries, want %d", len(got.Entries), len(want.Entries))
			}
			for i, l := range got.Entries {
				w := want.Entries[i]
				if !l.AppendedAt.Equal(w.AppendedAt) {
					t.Errorf("entry %d AppendedAt %v, want %v", i, l.AppendedAt, w.AppendedAt)
				}
				lc, wc := *l, *w
				lc.AppendedAt, wc.AppendedAt = time.Time{}, time.Time{}
				if !reflect.DeepEqual(lc, wc) {
					t.Errorf("entry %d: got %+v\nwant %+v", i, summarizeLog(&lc), summarizeLog(&wc))
				}
			}
			got.Entries, want.Entries = nil, nil
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("request:\n got %+v\nwant %+v", *got, want)
			}
		})
	}
}

func summarizeLog(l *raft.Log) string {
	return fmt.Sprintf("index %d term %d type %v data %d bytes ext %d bytes", l.Index, l.Term, l.Type, len(l.Data), len(l.Extensions))
}

// A payload's buffer is its own: the Data of one entry cannot grow into the next.
func TestWirePayloadsDoNotAlias(t *testing.T) {
	req := &raft.AppendEntriesRequest{Entries: []*raft.Log{
		{Index: 1, Data: []byte("aaaa"), Extensions: []byte("xx")},
		{Index: 2, Data: []byte("bbbb")},
	}}
	got, err := decodeAppendEntries(bytes.NewReader(encodeAppendEntries(req)))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(got.Entries[0].Data, 'Z')
	if string(got.Entries[0].Extensions) != "xx" || string(got.Entries[1].Data) != "bbbb" {
		t.Fatalf("appending to Data overwrote its neighbours: %q %q", got.Entries[0].Extensions, got.Entries[1].Data)
	}
}

func TestWireAppendEntriesMetaRejects(t *testing.T) {
	valid := appendEntriesMeta(nil, &raft.AppendEntriesRequest{
		RPCHeader: testHeader("1"), Term: 2, Leader: []byte("l"), PrevLogEntry: 1, PrevLogTerm: 1,
		Entries: []*raft.Log{{Index: 2, Term: 2, Data: []byte("x"), AppendedAt: time.Unix(5, 0)}},
	})
	for n := range len(valid) {
		if _, err := decodeAppendEntriesMeta(valid[:n], new(raft.AppendEntriesRequest)); !errors.Is(err, errWire) {
			t.Fatalf("meta cut to %d of %d bytes: %v", n, len(valid), err)
		}
	}
	if _, err := decodeAppendEntriesMeta(append(valid, 1), new(raft.AppendEntriesRequest)); !errors.Is(err, errWire) {
		t.Fatalf("meta with a trailing byte: %v", err)
	}

	// The meta of a request up to its entry count.
	head := func(count uint64) wbuf {
		var b wbuf
		b.header(testHeader("1"))
		b.uvarint(2)
		b.bytes(nil)
		b.uvarint(0)
		b.uvarint(0)
		b.uvarint(0)
		b.uvarint(count)
		return b
	}
	entry := func(b wbuf, data, ext uint64) wbuf {
		b.uvarint(1)
		b.uvarint(1)
		b = append(b, byte(raft.LogCommand))
		b.varint(0)
		b.uvarint(data)
		b.uvarint(ext)
		return b
	}
	cases := map[string]wbuf{
		"count past the limit":           entry(head(wireMaxEntries+1), 1, 0),
		"count past what the meta holds": entry(head(1000), 1, 0),
		"count of 2^64-1":                head(^uint64(0)),
		"data past the limit":            entry(head(1), wireMaxEntry+1, 0),
		"data and extensions past it":    entry(head(1), wireMaxEntry, 1),
		"extensions of 2^64-1":           entry(head(1), 1, ^uint64(0)),
		"overlong uvarint":               append(head(1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
	}
	for name, meta := range cases {
		if _, err := decodeAppendEntriesMeta(meta, new(raft.AppendEntriesRequest)); !errors.Is(err, errWire) {
			t.Errorf("%s: err %v, want errWire", name, err)
		}
	}
	// A bool other than 0 or 1 is refused.
	resp, _ := encodeMessage(nil, &raft.InstallSnapshotResponse{Term: 1, Success: true})
	resp[len(resp)-1] = 2
	if err := decodeMessage(resp, new(raft.InstallSnapshotResponse)); !errors.Is(err, errWire) {
		t.Fatalf("bool of 2: %v", err)
	}
	// A negative snapshot size is refused.
	snap, _ := encodeMessage(nil, &raft.InstallSnapshotRequest{Size: -1})
	if err := decodeMessage(snap, new(raft.InstallSnapshotRequest)); !errors.Is(err, errWire) {
		t.Fatalf("snapshot size -1: %v", err)
	}
}

func TestWireFrameLimits(t *testing.T) {
	// A frame header claiming more meta than wireMaxMeta is refused before any read.
	hdr := []byte{wireAppendEntries, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], wireMaxMeta+1)
	if _, _, _, err := readWireFrame(bytes.NewReader(hdr), nil); !errors.Is(err, errWire) {
		t.Fatalf("meta of wireMaxMeta+1: %v", err)
	}
	// Truncated meta is an unexpected EOF.
	binary.BigEndian.PutUint32(hdr[1:], 100)
	if _, _, _, err := readWireFrame(bytes.NewReader(append(hdr, 1, 2, 3)), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated meta: %v", err)
	}
	// The sender refuses what the receiver would.
	if err := checkAppendEntries(&raft.AppendEntriesRequest{Entries: make([]*raft.Log, wireMaxEntries+1)}); !errors.Is(err, errWire) {
		t.Fatalf("too many entries: %v", err)
	}
	if err := wireFrameTooLarge(make([]byte, wireMaxMeta+1)); !errors.Is(err, errWire) {
		t.Fatalf("meta too large: %v", err)
	}
}

// A frame claiming an entry of a gigabyte and sending a few bytes costs about what was
// sent, not what was claimed.
func TestWirePayloadLengthLieAllocatesLittle(t *testing.T) {
	var meta wbuf
	meta.header(raft.RPCHeader{})
	meta.uvarint(1) // term
	meta.bytes(nil) // leader
	meta.uvarint(1) // prev index
	meta.uvarint(1) // prev term
	meta.uvarint(1) // commit index
	meta.uvarint(1) // one entry
	meta.uvarint(1)
	meta.uvarint(1)
	meta = append(meta, byte(raft.LogCommand))
	meta.varint(0)
	meta.uvarint(wireMaxEntry)
	meta.uvarint(0)
	wire := append(wireFrame(wireAppendEntries, meta), patterned(3<<20, 1)...)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := decodeAppendEntries(bytes.NewReader(wire))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("payload cut short: err %v, want unexpected EOF", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Fatalf("decoding a 1 GiB claim with 3 MiB sent allocated %d MiB", got>>20)
	}
}

// FuzzWireDecode feeds arbitrary bytes to every decoder: none may panic, and whatever
// decodes encodes back to a message that decodes the same.
func FuzzWireDecode(f *testing.F) {
	for _, msg := range wireMessages() {
		meta, _ := encodeMessage(nil, msg)
		f.Add([]byte(meta))
	}
	f.Add([]byte(appendEntriesMeta(nil, &raft.AppendEntriesRequest{
		RPCHeader: testHeader("1"), Term: 2, Leader: []byte("l"),
		Entries: []*raft.Log{{Index: 2, Term: 2, Data: []byte("x"), Extensions: []byte("e"), AppendedAt: time.Unix(5, 0)}},
	})))
	f.Add(wireFrame(wireTimeoutNow, []byte{2, 0, 0}))
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(raft.AppendEntriesRequest)
		if lens, err := decodeAppendEntriesMeta(data, req); err == nil {
			if len(lens) != len(req.Entries) {
				t.Fatalf("%d lengths for %d entries", len(lens), len(req.Entries))
			}
			for i, l := range lens {
				if l.data > wireMaxEntry || l.data+l.ext > wireMaxEntry {
					t.Fatalf("entry %d lengths %+v past the limit", i, l)
				}
				req.Entries[i].Data = make([]byte, l.data)
				req.Entries[i].Extensions = make([]byte, l.ext)
			}
			// Zero-length payloads decode as nil.
			again, err := decodeAppendEntries(bytes.NewReader(encodeAppendEntries(req)))
			if err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			if len(again.Entries) != len(req.Entries) || again.Term != req.Term || again.LeaderCommitIndex != req.LeaderCommitIndex {
				t.Fatalf("re-decode differs")
			}
		}
		for _, msg := range wireMessages() {
			into := reflect.New(reflect.TypeOf(msg).Elem()).Interface()
			if err := decodeMessage(data, into); err != nil {
				if !errors.Is(err, errWire) {
					t.Fatalf("decode %T: error %v is not errWire", into, err)
				}
				continue
			}
			meta, err := encodeMessage(nil, into)
			if err != nil {
				t.Fatalf("encode %T: %v", into, err)
			}
			again := reflect.New(reflect.TypeOf(msg).Elem()).Interface()
			if err := decodeMessage(meta, again); err != nil || !reflect.DeepEqual(again, into) {
				t.Fatalf("%T: re-decode %v, %+v != %+v", into, err, again, into)
			}
		}
		_, _, _, _ = readWireFrame(bytes.NewReader(data), nil)
	})
}

// wireFrame returns a whole frame: the header, then meta.
func wireFrame(kind uint8, meta []byte) []byte {
	var h [wireHeaderSize]byte
	return append(putWireHeader(&h, kind, len(meta)), meta...)
}
