package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
)

// The data groups' Raft wire format (groupTransport). After the shared port's header a
// connection opens with the preamble "SLGT" and a version byte, then carries requests one
// after the other, each answered in order:
//
//	request   kind uint8, metaLen uint32, meta [metaLen]byte, then the payloads
//	response  status uint8 (0 ok, 1 error), metaLen uint32, meta: the response's fields,
//	          or the error's text
//
// Integers are big-endian in the frame, uvarints in meta; byte strings in meta are a
// uvarint length then the bytes; booleans are one byte. Every message's meta starts with
// the RPC header (protocol version, ID, address). An AppendEntries request's meta holds
// its fields and, per entry, index, term, type, appendedAt (varint unix nanoseconds, 0
// for none), the length of its Data and of its Extensions; the payloads that follow are
// each entry's Data then Extensions, in order. The receiver reads them straight into
// one buffer per entry, and the sender writes them from the entries with writev: no
// encoding step copies them. An InstallSnapshot request is followed by the snapshot's
// Size bytes.
var wirePreamble = [5]byte{'S', 'L', 'G', 'T', 1}

// Request kinds.
const (
	wireAppendEntries uint8 = iota
	wireRequestVote
	wireInstallSnapshot
	wireTimeoutNow
	wireRequestPreVote
)

const (
	wireOK  uint8 = 0
	wireErr uint8 = 1

	// wireMaxMeta bounds a message's meta (an AppendEntries of many entries has about 30
	// bytes of meta per entry).
	wireMaxMeta = 16 << 20
	// wireMaxEntry bounds one entry's payload, Data and Extensions together.
	wireMaxEntry = 1 << 30
	// wireMaxEntries bounds the entries of one AppendEntries.
	wireMaxEntries = 1 << 16
	// wireMinEntryMeta is the fewest meta bytes an entry takes (six one-byte fields), so
	// that a meta's length bounds the entry count before anything is allocated for it.
	wireMinEntryMeta = 6
	// wireEagerAlloc is the largest payload allocated before its bytes arrive; longer
	// ones grow as they are read, so a frame claiming a gigabyte and sending less costs
	// no more memory than what was sent.
	wireEagerAlloc = 1 << 20
)

// errWire matches malformed frames; the connection that carried one is closed.
var errWire = errors.New("raft wire: malformed message")

// wbuf appends meta fields.
type wbuf []byte

func (b *wbuf) uvarint(v uint64) { *b = binary.AppendUvarint(*b, v) }
func (b *wbuf) varint(v int64)   { *b = binary.AppendVarint(*b, v) }
func (b *wbuf) bytes(p []byte)   { b.uvarint(uint64(len(p))); *b = append(*b, p...) }
func (b *wbuf) header(h raft.RPCHeader) {
	b.varint(int64(h.ProtocolVersion))
	b.bytes(h.ID)
	b.bytes(h.Addr)
}
func (b *wbuf) bool(v bool) {
	if v {
		*b = append(*b, 1)
	} else {
		*b = append(*b, 0)
	}
}

// rbuf reads meta fields; the first error sticks and later reads return zeros.
type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errWire, what)
	}
}

func (r *rbuf) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns a copy (nil when empty): meta buffers are reused.
func (r *rbuf) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("byte string length")
		return nil
	}
	var out []byte
	if n > 0 {
		out = append([]byte(nil), r.b[:n]...)
	}
	r.b = r.b[n:]
	return out
}

func (r *rbuf) bool() bool {
	if r.err != nil {
		return false
	}
	if len(r.b) < 1 || r.b[0] > 1 {
		r.fail("bool")
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

func (r *rbuf) header() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(r.varint()), ID: r.bytes(), Addr: r.bytes()}
}

// end checks that the meta was read whole.
func (r *rbuf) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d bytes left over", len(r.b)))
	}
	return r.err
}

// wireHeaderSize is the bytes before a frame's meta: its kind (or status) and length.
const wireHeaderSize = 5

// putWireHeader writes into h the header of a frame of kind whose meta is n bytes, and
// returns it; the meta is written after it, without copying it behind the header.
func putWireHeader(h *[wireHeaderSize]byte, kind uint8, n int) []byte {
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(n))
	return h[:]
}

// appendEntriesMeta encodes an AppendEntries request's meta; the payloads are each
// entry's Data then Extensions.
func appendEntriesMeta(b wbuf, req *raft.AppendEntriesRequest) wbuf {
	b.header(req.RPCHeader)
	b.uvarint(req.Term)
	b.bytes(req.Leader)
	b.uvarint(req.PrevLogEntry)
	b.uvarint(req.PrevLogTerm)
	b.uvarint(req.LeaderCommitIndex)
	b.uvarint(uint64(len(req.Entries)))
	for _, l := range req.Entries {
		b = appendRaftLogHeader(b, l)
		b.uvarint(uint64(len(l.Extensions)))
	}
	return b
}

// entryLens are the payload lengths of one entry of a decoded AppendEntries meta.
type entryLens struct{ data, ext uint64 }

// decodeAppendEntriesMeta decodes an AppendEntries request's meta into req (entries
// without their payloads) and returns the payload lengths.
func decodeAppendEntriesMeta(meta []byte, req *raft.AppendEntriesRequest) ([]entryLens, error) {
	r := rbuf{b: meta}
	req.RPCHeader = r.header()
	req.Term = r.uvarint()
	req.Leader = r.bytes()
	req.PrevLogEntry = r.uvarint()
	req.PrevLogTerm = r.uvarint()
	req.LeaderCommitIndex = r.uvarint()
	n := r.uvarint()
	if n > wireMaxEntries || n > uint64(len(r.b))/wireMinEntryMeta {
		r.fail("entry count")
	}
	if r.err != nil {
		return nil, r.err
	}
	req.Entries = make([]*raft.Log, n)
	lens := make([]entryLens, n)
	logs := make([]raft.Log, n)
	for i := range logs {
		l := &logs[i]
		l.Index = r.uvarint()
		l.Term = r.uvarint()
		if len(r.b) < 1 {
			r.fail("entry type")
			break
		}
		l.Type = raft.LogType(r.b[0])
		r.b = r.b[1:]
		if at := r.varint(); at != 0 {
			l.AppendedAt = time.Unix(0, at)
		}
		lens[i] = entryLens{data: r.uvarint(), ext: r.uvarint()}
		if lens[i].data > wireMaxEntry || lens[i].ext > wireMaxEntry-lens[i].data {
			r.fail("entry length")
		}
		req.Entries[i] = l
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return lens, nil
}

// checkAppendEntries reports a request the receiver would refuse, before it is sent.
func checkAppendEntries(req *raft.AppendEntriesRequest) error {
	if len(req.Entries) > wireMaxEntries {
		return fmt.Errorf("%w: %d entries, at most %d", errWire, len(req.Entries), wireMaxEntries)
	}
	for _, l := range req.Entries {
		if uint64(len(l.Data))+uint64(len(l.Extensions)) > wireMaxEntry {
			return fmt.Errorf("%w: entry %d of %d bytes, at most %d", errWire, l.Index, len(l.Data)+len(l.Extensions), wireMaxEntry)
		}
	}
	return nil
}

// readPayloads reads the entries' payloads from rd, one buffer per entry holding its
// Data then its Extensions.
func readPayloads(rd io.Reader, entries []*raft.Log, lens []entryLens) error {
	for i, l := range entries {
		n := lens[i].data + lens[i].ext
		if n == 0 {
			continue
		}
		buf, err := readPayload(rd, n)
		if err != nil {
			return fmt.Errorf("read entry %d: %w", l.Index, err)
		}
		if d := lens[i].data; d > 0 {
			l.Data = buf[:d:d]
		}
		if lens[i].ext > 0 {
			l.Extensions = buf[lens[i].data:]
		}
	}
	return nil
}

// readPayload reads n bytes: at once up to wireEagerAlloc, beyond that in a buffer that
// at most doubles what has arrived.
func readPayload(rd io.Reader, n uint64) ([]byte, error) {
	if n <= wireEagerAlloc {
		buf := make([]byte, n)
		_, err := io.ReadFull(rd, buf)
		return buf, err
	}
	buf := make([]byte, 0, wireEagerAlloc)
	for uint64(len(buf)) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, 2*uint64(cap(buf))))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(rd, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func encodeAppendEntriesResponse(b wbuf, resp *raft.AppendEntriesResponse) wbuf {
	b.header(resp.RPCHeader)
	b.uvarint(resp.Term)
	b.uvarint(resp.LastLog)
	b.bool(resp.Success)
	b.bool(resp.NoRetryBackoff)
	return b
}

func decodeAppendEntriesResponse(meta []byte, resp *raft.AppendEntriesResponse) error {
	r := rbuf{b: meta}
	resp.RPCHeader = r.header()
	resp.Term = r.uvarint()
	resp.LastLog = r.uvarint()
	resp.Success = r.bool()
	resp.NoRetryBackoff = r.bool()
	return r.end()
}

// encodeMessage encodes the meta of any request or response but AppendEntries requests.
func encodeMessage(b wbuf, msg any) (wbuf, error) {
	switch m := msg.(type) {
	case *raft.AppendEntriesResponse:
		b = encodeAppendEntriesResponse(b, m)
	case *raft.RequestVoteRequest:
		b.header(m.RPCHeader)
		b.uvarint(m.Term)
		b.bytes(m.Candidate)
		b.uvarint(m.LastLogIndex)
		b.uvarint(m.LastLogTerm)
		b.bool(m.LeadershipTransfer)
	case *raft.RequestVoteResponse:
		b.header(m.RPCHeader)
		b.uvarint(m.Term)
		b.bytes(m.Peers)
		b.bool(m.Granted)
	case *raft.RequestPreVoteRequest:
		b.header(m.RPCHeader)
		b.uvarint(m.Term)
		b.uvarint(m.LastLogIndex)
		b.uvarint(m.LastLogTerm)
	case *raft.RequestPreVoteResponse:
		b.header(m.RPCHeader)
		b.uvarint(m.Term)
		b.bool(m.Granted)
	case *raft.InstallSnapshotRequest:
		b.header(m.RPCHeader)
		b.varint(int64(m.SnapshotVersion))
		b.uvarint(m.Term)
		b.bytes(m.Leader)
		b.uvarint(m.LastLogIndex)
		b.uvarint(m.LastLogTerm)
		b.bytes(m.Peers)
		b.bytes(m.Configuration)
		b.uvarint(m.ConfigurationIndex)
		b.varint(m.Size)
	case *raft.InstallSnapshotResponse:
		b.header(m.RPCHeader)
		b.uvarint(m.Term)
		b.bool(m.Success)
	case *raft.TimeoutNowRequest:
		b.header(m.RPCHeader)
	case *raft.TimeoutNowResponse:
		b.header(m.RPCHeader)
	default:
		return b, fmt.Errorf("%w: cannot encode %T", errWire, msg)
	}
	return b, nil
}

// decodeMessage decodes meta into msg, a pointer to one of the types encodeMessage
// takes.
func decodeMessage(meta []byte, msg any) error {
	r := rbuf{b: meta}
	switch m := msg.(type) {
	case *raft.AppendEntriesResponse:
		return decodeAppendEntriesResponse(meta, m)
	case *raft.RequestVoteRequest:
		m.RPCHeader = r.header()
		m.Term = r.uvarint()
		m.Candidate = r.bytes()
		m.LastLogIndex = r.uvarint()
		m.LastLogTerm = r.uvarint()
		m.LeadershipTransfer = r.bool()
	case *raft.RequestVoteResponse:
		m.RPCHeader = r.header()
		m.Term = r.uvarint()
		m.Peers = r.bytes()
		m.Granted = r.bool()
	case *raft.RequestPreVoteRequest:
		m.RPCHeader = r.header()
		m.Term = r.uvarint()
		m.LastLogIndex = r.uvarint()
		m.LastLogTerm = r.uvarint()
	case *raft.RequestPreVoteResponse:
		m.RPCHeader = r.header()
		m.Term = r.uvarint()
		m.Granted = r.bool()
	case *raft.InstallSnapshotRequest:
		m.RPCHeader = r.header()
		m.SnapshotVersion = raft.SnapshotVersion(r.varint())
		m.Term = r.uvarint()
		m.Leader = r.bytes()
		m.LastLogIndex = r.uvarint()
		m.LastLogTerm = r.uvarint()
		m.Peers = r.bytes()
		m.Configuration = r.bytes()
		m.ConfigurationIndex = r.uvarint()
		m.Size = r.varint()
		if m.Size < 0 {
			r.fail("snapshot size")
		}
	case *raft.InstallSnapshotResponse:
		m.RPCHeader = r.header()
		m.Term = r.uvarint()
		m.Success = r.bool()
	case *raft.TimeoutNowRequest:
		m.RPCHeader = r.header()
	case *raft.TimeoutNowResponse:
		m.RPCHeader = r.header()
	default:
		return fmt.Errorf("%w: cannot decode %T", errWire, msg)
	}
	return r.end()
}

// readWireHeader reads a frame's kind (or status) and meta length, checked against
// wireMaxMeta.
func readWireHeader(rd io.Reader) (kind uint8, n int, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return 0, 0, err
	}
	m := binary.BigEndian.Uint32(hdr[1:])
	if m > wireMaxMeta {
		return 0, 0, fmt.Errorf("%w: meta of %d bytes", errWire, m)
	}
	return hdr[0], int(m), nil
}

// readWireMeta reads n bytes of meta into buf (grown as needed; returned).
func readWireMeta(rd io.Reader, n int, buf []byte) (meta, grown []byte, err error) {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	meta = buf[:n]
	if _, err := io.ReadFull(rd, meta); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, err
	}
	return meta, buf, nil
}

// readWireFrame reads a frame's kind and meta into buf (grown as needed; returned).
func readWireFrame(rd io.Reader, buf []byte) (kind uint8, meta, grown []byte, err error) {
	kind, n, err := readWireHeader(rd)
	if err != nil {
		return 0, nil, buf, err
	}
	meta, buf, err = readWireMeta(rd, n, buf)
	return kind, meta, buf, err
}

// wireFrameTooLarge reports meta the receiver would refuse.
func wireFrameTooLarge(meta []byte) error {
	if len(meta) > wireMaxMeta {
		return fmt.Errorf("%w: meta of %d bytes, at most %d", errWire, len(meta), wireMaxMeta)
	}
	return nil
}
