package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// The shared Raft port carries every Raft group of a node and the controller's forwarding
// RPC. Each connection opens with a header naming its destination:
//
//	magic   [4]byte  "SLRT"
//	version uint8    1
//	nameLen uint8
//	name    [nameLen]byte   group name, or a service name starting with '_'
//
// after which the bytes belong to the destination (hashicorp/raft's NetworkTransport
// framing for the controller group, raft_wire.go's for a data group). A connection naming no registered group or service is closed; the
// dialing side retries as it would after any connection failure.
var transportMagic = [4]byte{'S', 'L', 'R', 'T'}

const (
	transportVersion = 1
	// headerTimeout bounds how long a new connection may take to send its header.
	headerTimeout = 5 * time.Second
)

// ErrTransportClosed is returned by a closed Mux or StreamLayer.
var ErrTransportClosed = errors.New("replication: transport closed")

// Mux is the shared Raft listener: one TCP port for all groups of a node. It owns the
// listener and its accept goroutine; Close stops both.
type Mux struct {
	ln        net.Listener
	advertise string
	logger    *zap.Logger

	mu       sync.Mutex // guards the maps and closed
	groups   map[string]*StreamLayer
	services map[string]func(net.Conn)
	conns    map[net.Conn]struct{} // accepted, header not yet read, or served by a service
	closed   bool

	wg sync.WaitGroup
}

// NewMux listens on listen (host:port) and serves the shared Raft port. advertise is the
// address other nodes dial to reach it; empty means the listener's address.
func NewMux(listen, advertise string, logger *zap.Logger) (*Mux, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("raft transport: listen %s: %w", listen, err)
	}
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	m := &Mux{
		ln:        ln,
		advertise: advertise,
		logger:    logger,
		groups:    map[string]*StreamLayer{},
		services:  map[string]func(net.Conn){},
		conns:     map[net.Conn]struct{}{},
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// Addr is the listener's address.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Advertise is the address other nodes dial.
func (m *Mux) Advertise() string { return m.advertise }

// Group returns the stream layer for group name, creating it. A group's transport
// closes its stream layer when it shuts down, which unregisters it from the mux.
func (m *Mux) Group(name string) (*StreamLayer, error) {
	if err := checkDestName(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrTransportClosed
	}
	if _, ok := m.groups[name]; ok {
		return nil, fmt.Errorf("raft transport: group %q: %w: already registered", name, ErrInvalid)
	}
	s := &StreamLayer{
		mux:    m,
		name:   name,
		addr:   advertisedAddr(m.advertise),
		conns:  make(chan net.Conn),
		closed: make(chan struct{}),
	}
	m.groups[name] = s
	return s, nil
}

// HandleService registers fn for connections naming service (which must start with '_').
// fn owns the connection and runs on its own goroutine.
func (m *Mux) HandleService(service string, fn func(net.Conn)) error {
	if err := checkDestName(service); err != nil || service[0] != '_' {
		return fmt.Errorf("raft transport: service %q: %w", service, ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrTransportClosed
	}
	m.services[service] = fn
	return nil
}

// Dial connects to the shared port at address and names dest in the header.
func Dial(address, dest string, timeout time.Duration) (net.Conn, error) {
	return dialContext(context.Background(), address, dest, timeout)
}

// dialContext is Dial, given up when ctx ends.
func dialContext(ctx context.Context, address, dest string, timeout time.Duration) (net.Conn, error) {
	if err := checkDestName(dest); err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, 0, 6+len(dest))
	hdr = append(hdr, transportMagic[:]...)
	hdr = append(hdr, transportVersion, byte(len(dest)))
	hdr = append(hdr, dest...)
	if timeout > 0 {
		_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := conn.Write(hdr); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raft transport: send header to %s: %w", address, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

func checkDestName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("raft transport: name %q: %w: length must be 1-255", name, ErrInvalid)
	}
	return nil
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	closing := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.closed
	}
	acceptLoop(m.ln, closing, nil, m.logger, "raft transport", func(conn net.Conn) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.closed {
			conn.Close()
			return false
		}
		m.conns[conn] = struct{}{}
		m.wg.Add(1)
		go m.route(conn)
		return true
	})
}

// acceptLoop accepts connections from ln until it is closed or closing reports true,
// handing each to admit, which starts serving it or, when its owner is closing, closes
// it and returns false, ending the loop. Other accept failures (too many open files)
// are logged and retried after a pause that doubles from 5 ms to 1 s; stop, when
// closed, cuts the pause short.
func acceptLoop(ln interface{ Accept() (net.Conn, error) }, closing func() bool, stop <-chan struct{},
	logger *zap.Logger, what string, admit func(net.Conn) bool) {
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if closing() || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			logger.Warn(what+": accept", zap.Error(err), zap.Duration("retry_in", delay))
			select {
			case <-stop:
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		if !admit(conn) {
			return
		}
	}
}

// route reads conn's header and hands it to its destination.
func (m *Mux) route(conn net.Conn) {
	defer m.wg.Done()
	dest, err := readHeader(conn)
	m.mu.Lock()
	group := m.groups[dest]
	service := m.services[dest]
	closed := m.closed
	if service == nil || err != nil {
		delete(m.conns, conn)
	}
	m.mu.Unlock()
	if err != nil || closed {
		if err != nil {
			m.logger.Debug("raft transport: bad connection header", zap.Stringer("remote", conn.RemoteAddr()), zap.Error(err))
		}
		conn.Close()
		return
	}
	switch {
	case group != nil:
		select {
		case group.conns <- conn:
		case <-group.closed:
			conn.Close()
		}
	case service != nil:
		// The mux keeps service connections until the service returns, and closes them
		// when it closes.
		service(conn)
		m.mu.Lock()
		delete(m.conns, conn)
		m.mu.Unlock()
	default:
		m.logger.Debug("raft transport: connection for unknown group", zap.String("group", dest), zap.Stringer("remote", conn.RemoteAddr()))
		conn.Close()
	}
}

func readHeader(conn net.Conn) (string, error) {
	_ = conn.SetReadDeadline(time.Now().Add(headerTimeout))
	var fixed [6]byte
	if _, err := io.ReadFull(conn, fixed[:]); err != nil {
		return "", fmt.Errorf("read header: %w", err)
	}
	if [4]byte(fixed[:4]) != transportMagic || fixed[4] != transportVersion || fixed[5] == 0 {
		return "", fmt.Errorf("read header: %w: bad magic or version %x", ErrInvalid, fixed)
	}
	name := make([]byte, fixed[5])
	if _, err := io.ReadFull(conn, name); err != nil {
		return "", fmt.Errorf("read header: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return string(name), nil
}

// Close stops accepting, closes connections whose header is pending or that a service
// serves, and every group's stream layer. Connections handed to a group belong to that
// group's transport.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	err := m.ln.Close()
	for c := range m.conns {
		c.Close()
	}
	groups := make([]*StreamLayer, 0, len(m.groups))
	for _, g := range m.groups {
		groups = append(groups, g)
	}
	m.mu.Unlock()
	for _, g := range groups {
		g.Close()
	}
	m.wg.Wait()
	return err
}

func (m *Mux) unregister(s *StreamLayer) {
	m.mu.Lock()
	if m.groups[s.name] == s {
		delete(m.groups, s.name)
	}
	m.mu.Unlock()
}

// StreamLayer is one group's view of the shared port: a raft.StreamLayer whose Accept
// returns the connections naming the group and whose Dial names it.
type StreamLayer struct {
	mux       *Mux
	name      string
	addr      net.Addr
	conns     chan net.Conn
	closeOnce sync.Once
	closed    chan struct{}
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// Accept waits for the next connection naming this group.
func (s *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close unregisters the group from the mux; later connections naming it are refused.
func (s *StreamLayer) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.mux.unregister(s)
	})
	return nil
}

// Addr is the mux's advertised address.
func (s *StreamLayer) Addr() net.Addr { return s.addr }

// Dial connects to the group of the same name on the node at address.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	select {
	case <-s.closed:
		return nil, ErrTransportClosed
	default:
	}
	return Dial(string(address), s.name, timeout)
}

// advertisedAddr is a net.Addr for a host:port string, which NetworkTransport reports as the
// local address.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }
