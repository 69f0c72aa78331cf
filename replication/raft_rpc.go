package replication

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The controller's forwarding RPC runs over the shared Raft port as service "_ctl". A
// connection carries requests one after another; each frame is a 4-byte big-endian length
// then JSON (rpcRequest one way, rpcResponse the other). Errors travel as a code naming a
// sentinel (see sentinelCodes) plus a message.
const ctlService = "_ctl"

// maxRPCFrame bounds one RPC frame; controller requests are small.
const maxRPCFrame = 16 << 20

// rpcRequest is one controller call forwarded to the leader.
type rpcRequest struct {
	Op      string             `json:"op"`
	Node    *Node              `json:"node,omitempty"`
	Spec    *TopicSpec         `json:"spec,omitempty"`
	Name    string             `json:"name,omitempty"`
	Count   int64              `json:"count,omitempty"`
	Configs map[string]*string `json:"configs,omitempty"`
	// Leading lists the data groups the heartbeating node leads, with their terms;
	// Running those it runs (nil: not reported).
	Leading map[string]uint64 `json:"leading,omitempty"`
	Running []string          `json:"running"`
	// Disk is the heartbeating node's disk (nil: not reported, an older node).
	Disk *DiskStatus `json:"disk,omitempty"`
	// Group names a data group (caught_up, group_moved).
	Group string `json:"group,omitempty"`
}

// rpcResponse is the leader's answer. Index is the controller log index that holds the
// change (or the leader's applied index for read_index); the caller waits until its own
// node has applied it, so a change is visible locally when the call returns.
type rpcResponse struct {
	Code  string `json:"code,omitempty"`
	Msg   string `json:"msg,omitempty"`
	Topic *Topic `json:"topic,omitempty"`
	Value int64  `json:"value,omitempty"`
	Index uint64 `json:"index,omitempty"`
	// Moves are the group moves a rebalance started.
	Moves map[string][]NodeID `json:"moves,omitempty"`
	// Disks answers a heartbeat: every node's disk as the leader last heard, for the
	// nodes heard from within LivenessTimeout that report it (absent from an older leader).
	Disks map[NodeID]DiskStatus `json:"disks,omitempty"`
}

const (
	rpcHeartbeat        = "heartbeat"
	rpcReadIndex        = "read_index"
	rpcCreateTopic      = "create_topic"
	rpcDeleteTopic      = "delete_topic"
	rpcCreatePartitions = "create_partitions"
	rpcAlterConfigs     = "alter_configs"
	rpcAllocPIDs        = "alloc_pids"
	rpcJoin             = "join"        // Node: add it as a voter
	rpcRemoveNode       = "remove_node" // Node.ID: move its groups off, then drop it
	rpcMemberCaughtUp   = "caught_up"   // Node.ID has copied Group (generation Count)
	rpcGroupMoved       = "group_moved" // Group's Raft members are its Members (generation Count)
	rpcRebalance        = "rebalance"   // spread group memberships evenly; answers Moves
	rpcMember           = "member"      // Node.ID: is it a member? ErrInvalid if not
	// rpcElectPreferred goes to a data group's leader, not the controller's: hand Group
	// to its preferred member (raft_elect.go).
	rpcElectPreferred = "elect_preferred"
)

// responseError turns an error into the wire form.
func responseError(err error) rpcResponse {
	if err == nil {
		return rpcResponse{}
	}
	return rpcResponse{Code: errorCode(err), Msg: err.Error()}
}

// rpcError is an error returned by the remote side, wrapping the sentinel its code names.
type rpcError struct {
	msg      string
	sentinel error
}

func (e *rpcError) Error() string { return e.msg }
func (e *rpcError) Unwrap() error { return e.sentinel }

func (r *rpcResponse) err() error {
	if r.Code == "" && r.Msg == "" {
		return nil
	}
	return &rpcError{msg: r.Msg, sentinel: sentinelCodes[r.Code]}
}

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 4, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxRPCFrame {
		return fmt.Errorf("rpc frame of %d bytes: %w", n, ErrInvalid)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("rpc frame: %w: %v", ErrInvalid, err)
	}
	return nil
}

// serveRPC answers requests on conn until it fails or stop is closed.
func serveRPC(conn net.Conn, stop <-chan struct{}, handle func(context.Context, *rpcRequest) rpcResponse) {
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			conn.Close()
			cancel()
		case <-ctx.Done():
		}
	}()
	r := bufio.NewReader(conn)
	for {
		var req rpcRequest
		if err := readFrame(r, &req); err != nil {
			return
		}
		resp := handle(ctx, &req)
		if err := writeFrame(conn, &resp); err != nil {
			return
		}
	}
}

// rpcClient keeps idle connections to controller leaders, one call per connection at a
// time.
type rpcClient struct {
	mu     sync.Mutex // guards idle and closed
	idle   map[string][]*rpcConn
	closed bool
}

type rpcConn struct {
	net.Conn
	r *bufio.Reader
}

func newRPCClient() *rpcClient { return &rpcClient{idle: map[string][]*rpcConn{}} }

// call sends req to the node at addr and waits for its answer, up to ctx's deadline (or
// 10 s). A transport failure returns an error that wraps no sentinel.
func (c *rpcClient) call(ctx context.Context, addr string, req *rpcRequest) (*rpcResponse, error) {
	conn, err := c.get(ctx, addr)
	if err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	var resp rpcResponse
	if err := writeFrame(conn, req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("controller rpc %s to %s: %w", req.Op, addr, err)
	}
	if err := readFrame(conn.r, &resp); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("controller rpc %s to %s: %w", req.Op, addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	c.put(addr, conn)
	return &resp, nil
}

func (c *rpcClient) get(ctx context.Context, addr string) (*rpcConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrTransportClosed
	}
	if l := c.idle[addr]; len(l) > 0 {
		conn := l[len(l)-1]
		c.idle[addr] = l[:len(l)-1]
		c.mu.Unlock()
		return conn, nil
	}
	c.mu.Unlock()
	conn, err := dialContext(ctx, addr, ctlService, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("controller rpc: dial %s: %w", addr, err)
	}
	return &rpcConn{Conn: conn, r: bufio.NewReader(conn)}, nil
}

func (c *rpcClient) put(addr string, conn *rpcConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle[addr]) >= 4 {
		conn.Close()
		return
	}
	c.idle[addr] = append(c.idle[addr], conn)
}

func (c *rpcClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, l := range c.idle {
		for _, conn := range l {
			conn.Close()
		}
	}
	c.idle = nil
}

// isRetryable says whether a forwarded call may be tried again at the (new) leader: the
// request never reached a leader that accepted it.
func isRetryable(err error) bool {
	return errors.Is(err, ErrNotLeader)
}
