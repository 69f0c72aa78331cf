package replication

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"go.uber.org/zap"
)

// DataStateMachine is a StateMachine that keeps its data outside the replicated log (a
// partition keeps its records in its own segments), so that its snapshots record only a
// position in that data. Positions are the state machine's own (offsets for a partition).
//
// A replica that restores a snapshot ahead of its own data (it was down while the leader
// took a snapshot and dropped the log entries it missed, and Raft sent it the snapshot)
// first copies the missing data from the group's leader with ReadData there and WriteData
// here, then calls Restore. A state machine that does not implement it cannot catch up
// that way: its Restore fails and Raft retries.
type DataStateMachine interface {
	StateMachine
	// SnapshotEnd returns the position of the next write in the state a snapshot holds
	// (0 for nil).
	SnapshotEnd(snap []byte) (int64, error)
	// DataBounds returns the positions of the first stored unit and of the next write.
	DataBounds() (start, end int64)
	// ReadData returns whole stored units of committed data from pos on: at least one
	// when there is one before upTo, about maxBytes, none at or past upTo. It returns no
	// data when pos is at the end of what is committed.
	ReadData(pos, upTo int64, maxBytes int) ([]byte, error)
	// WriteData stores data that another replica's ReadData returned for pos. pos is this
	// replica's end, or past it: the data before pos is gone at the source, so this
	// replica's data is emptied and starts at pos.
	WriteData(pos int64, data []byte) error
}

// The leader side of catch-up is the "_data" service on the shared Raft port: a request
// frame (4-byte length, JSON dataRequest), answered by a frame (4-byte length, JSON
// dataResponse) followed by 4-byte length and the raw data.
const dataService = "_data"

// catchUpChunk is how much data one catch-up request asks for.
const catchUpChunk = 4 << 20

type dataRequest struct {
	Key      string `json:"key"`
	Pos      int64  `json:"pos"`
	UpTo     int64  `json:"up_to"`
	MaxBytes int    `json:"max_bytes"`
}

type dataResponse struct {
	Code  string `json:"code,omitempty"`
	Msg   string `json:"msg,omitempty"`
	Start int64  `json:"start"` // the source's first position
	End   int64  `json:"end"`   // the source's next write
}

// serveData answers catch-up reads for the state machines registered here.
func (r *RaftReplicator) serveData(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
		var req dataRequest
		if err := readFrame(br, &req); err != nil {
			return
		}
		resp, data := r.readData(&req)
		_ = conn.SetWriteDeadline(time.Now().Add(time.Minute))
		if err := writeFrame(conn, &resp); err != nil {
			return
		}
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(data)))
		if _, err := conn.Write(n[:]); err != nil {
			return
		}
		if _, err := conn.Write(data); err != nil {
			return
		}
	}
}

func (r *RaftReplicator) readData(req *dataRequest) (dataResponse, []byte) {
	r.mu.Lock()
	g, ok := r.keys[req.Key]
	r.mu.Unlock()
	if !ok {
		return dataResponse{Code: "unknown_key", Msg: fmt.Sprintf("read data of %q: not here", req.Key)}, nil
	}
	e := g.fsm.entry(req.Key)
	if e == nil {
		return dataResponse{Code: "unknown_key", Msg: fmt.Sprintf("read data of %q: not here", req.Key)}, nil
	}
	dsm, ok := e.sm.(DataStateMachine)
	if !ok {
		return dataResponse{Code: "invalid", Msg: fmt.Sprintf("read data of %q: not a DataStateMachine", req.Key)}, nil
	}
	// No lock: ReadData reads committed data, which the state machine lets readers do
	// while it applies.
	start, end := dsm.DataBounds()
	resp := dataResponse{Start: start, End: end}
	if req.Pos < start || req.Pos >= end {
		return resp, nil
	}
	data, err := dsm.ReadData(req.Pos, req.UpTo, min(max(req.MaxBytes, 1), catchUpChunk))
	if err != nil {
		return dataResponse{Msg: fmt.Sprintf("read data of %q at %d: %v", req.Key, req.Pos, err)}, nil
	}
	return resp, data
}

// fetchData asks the node at addr for key's data from pos on.
func fetchData(ctx context.Context, addr string, req *dataRequest) (*dataResponse, []byte, error) {
	conn, err := Dial(addr, dataService, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	} else {
		_ = conn.SetDeadline(time.Now().Add(time.Minute))
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := writeFrame(conn, req); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	var resp dataResponse
	if err := readFrame(br, &resp); err != nil {
		return nil, nil, err
	}
	var n [4]byte
	if _, err := io.ReadFull(br, n[:]); err != nil {
		return nil, nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > catchUpChunk*2 {
		return nil, nil, fmt.Errorf("catch-up data of %d bytes: %w", size, ErrInvalid)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(br, data); err != nil {
		return nil, nil, err
	}
	if resp.Code != "" || resp.Msg != "" {
		return nil, nil, resp2err(resp)
	}
	return &resp, data, nil
}

func resp2err(resp dataResponse) error {
	return &rpcError{msg: resp.Msg, sentinel: sentinelCodes[resp.Code]}
}

// dataSource lists the Raft addresses of the other members of a group, its leader first:
// where missing data can be copied from.
type dataSource func() []string

// catchUp brings sm's data up to the position snap records, copying what is missing from
// another member of the group (the leader first; any member holding the data will do,
// since data below a snapshot is committed and the same everywhere). It returns at once
// when sm already holds the data, or when sm is not a DataStateMachine (its Restore then
// reports the gap). It retries until stop is closed.
func catchUp(key string, sm StateMachine, snap []byte, source dataSource, stop <-chan struct{}, logger *zap.Logger) error {
	dsm, ok := sm.(DataStateMachine)
	if !ok || source == nil {
		return nil
	}
	want, err := dsm.SnapshotEnd(snap)
	if err != nil {
		return fmt.Errorf("catch up %q: %w", key, err)
	}
	_, end := dsm.DataBounds()
	if end >= want {
		return nil
	}
	pos := end // where the next read starts: the end, or the sources' start past it
	logger.Info("copying data missing before a snapshot from another replica", zap.String("key", key), zap.Int64("from", end), zap.Int64("to", want))
	started, copied := time.Now(), 0
	backoff := 50 * time.Millisecond
	for end < want {
		select {
		case <-stop:
			return fmt.Errorf("catch up %q: %w", key, ErrTransportClosed)
		default:
		}
		// Ask each member in turn until one has data at pos.
		var lastErr error = fmt.Errorf("%w: no other member known", ErrNotLeader)
		progressed, answered, skipTo := false, 0, int64(-1)
		sources := source()
		for _, addr := range sources {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			resp, data, err := fetchData(ctx, addr, &dataRequest{Key: key, Pos: pos, UpTo: want, MaxBytes: catchUpChunk})
			cancel()
			switch {
			case err != nil:
				lastErr = fmt.Errorf("%s: %w", addr, err)
				continue
			case resp.Start > pos:
				answered++
				if skipTo < 0 || resp.Start < skipTo {
					skipTo = resp.Start
				}
				lastErr = fmt.Errorf("%s: its data starts at %d", addr, resp.Start)
				continue
			case len(data) == 0:
				answered++
				lastErr = fmt.Errorf("%s: has committed data up to %d", addr, resp.End)
				continue
			}
			if err := dsm.WriteData(pos, data); err != nil {
				lastErr = err
				break
			}
			copied += len(data)
			progressed = true
			break
		}
		if progressed {
			backoff = 50 * time.Millisecond
			_, end = dsm.DataBounds()
			pos = end
			continue
		}
		if answered == len(sources) && answered > 0 && skipTo > pos {
			// No member has what lies before skipTo any more (retention): read from
			// there, and this replica's data restarts there.
			logger.Warn("no replica has the data before its log start; skipping ahead",
				zap.String("key", key), zap.Int64("end", end), zap.Int64("start", skipTo))
			pos = skipTo
			continue
		}
		logger.Info("catch-up read failed; retrying", zap.String("key", key), zap.Int64("at", pos), zap.Error(lastErr))
		select {
		case <-stop:
			return fmt.Errorf("catch up %q: %w", key, ErrTransportClosed)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	if err := dsm.Sync(); err != nil {
		return fmt.Errorf("catch up %q: %w", key, err)
	}
	logger.Info("caught up from another replica", zap.String("key", key), zap.Int64("to", want),
		zap.Int("bytes", copied), zap.Duration("took", time.Since(started)))
	return nil
}
