package protocol

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxRequestBytes = 100 << 20
	DefaultIdleTimeout     = 10 * time.Minute
	DefaultWriteTimeout    = 30 * time.Second
	DefaultMaxPartitions   = 10000
)

// Config configures a Server.
type Config struct {
	// NodeID is this broker's ID.
	NodeID int32
	// MaxRequestBytes caps a request frame; a larger size prefix closes the connection
	// before anything is allocated.
	MaxRequestBytes int32
	// IdleTimeout closes a connection that sends no request for this long.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection whose client does not take a response for this long.
	WriteTimeout time.Duration
	// AutoCreateTopics lets Metadata create the topics it is asked about.
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of topics created without one.
	DefaultPartitions int32
	// MaxPartitions caps the partitions of one topic (CreateTopics, CreatePartitions):
	// each is a directory of open files, and a request for millions would take the node
	// down. Default 10000.
	MaxPartitions int32
	// CopyFetch makes Fetch copy record bytes into memory before writing them instead of
	// sending them from the segment files with sendfile(2).
	CopyFetch bool
	// Logger receives the server's logs; nil means none.
	Logger *zap.Logger

	Controller replication.Controller
	Replicator replication.Replicator
	// Partitions holds the partitions this node has open.
	Partitions *partition.Manager
	// Groups configures the consumer group coordinator (its NodeID is set from NodeID).
	Groups group.Config
}

// Server serves the Kafka protocol on the listeners handed to Serve.
type Server struct {
	cfg   Config
	log   *zap.Logger
	ctrl  replication.Controller
	repl  replication.Replicator
	parts *partition.Manager

	// producerIDs hands out idempotent producer IDs from blocks reserved at the controller.
	producerIDs producerIDBlock

	// draining is closed when Shutdown begins: waiting handlers (long-poll fetches) return
	// what they have.
	draining chan struct{}
	// hardCtx is cancelled when a shutdown gives up waiting; every request context derives
	// from it.
	hardCtx    context.Context
	hardCancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	connWG    sync.WaitGroup

	services     map[string]Service
	serviceOrder []string

	shutdownOnce sync.Once
	nextConnID   atomic.Uint64
}

// ErrServerClosed is returned by Serve once Shutdown has been called.
var ErrServerClosed = errors.New("protocol: server closed")

// New returns a server and starts its services (see registerService).
func New(cfg Config) (*Server, error) {
	if cfg.Controller == nil || cfg.Replicator == nil || cfg.Partitions == nil {
		return nil, fmt.Errorf("protocol: new server: %w", errors.New("controller, replicator and partitions are required"))
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.MaxPartitions <= 0 {
		cfg.MaxPartitions = DefaultMaxPartitions
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		ctrl:      cfg.Controller,
		repl:      cfg.Replicator,
		parts:     cfg.Partitions,
		draining:  make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		services:  make(map[string]Service),
	}
	s.hardCtx, s.hardCancel = context.WithCancel(context.Background())
	for _, def := range serviceDefs {
		svc, err := def.start(s)
		if err != nil {
			s.stopServices()
			s.hardCancel()
			return nil, fmt.Errorf("protocol: start service %s: %w", def.name, err)
		}
		s.services[def.name] = svc
		s.serviceOrder = append(s.serviceOrder, def.name)
	}
	return s, nil
}

// Serve accepts connections on ln until Shutdown; it returns ErrServerClosed then, or the
// listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("protocol: accept: %w", err)
		}
		backoff = 0
		if !s.startConn(nc) {
			nc.Close()
			return ErrServerClosed
		}
	}
}

// isTemporaryAccept reports accept errors worth retrying (out of file descriptors, aborted
// handshakes).
func isTemporaryAccept(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// startConn registers and starts a connection; false when the server is closing.
func (s *Server) startConn(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	c := newConn(s, nc, s.nextConnID.Add(1))
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	go c.run()
	return true
}

// connDone forgets a finished connection.
func (s *Server) connDone(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

// Shutdown stops accepting, lets every connection finish the request it is serving and
// write its queued responses, then stops the services. When ctx ends first, connections
// are closed hard and in-flight handlers see their context cancelled. It is safe to call
// more than once; later calls wait like the first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		for ln := range s.listeners {
			ln.Close()
		}
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		close(s.draining)
		for _, c := range conns {
			c.drain()
		}
	})
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("protocol: shutdown: %w", ctx.Err())
		s.hardCancel()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.hardCancel()
	s.stopServices()
	return err
}

// Draining is closed once Shutdown has begun.
func (s *Server) Draining() <-chan struct{} { return s.draining }

// Service is a part of the server with its own state and lifetime, such as the consumer
// group coordinator. Services are started by New in registration order and closed by
// Shutdown in reverse order, after every connection has finished.
type Service interface {
	Close() error
}

type serviceDef struct {
	name  string
	start func(s *Server) (Service, error)
}

var serviceDefs []serviceDef

// registerService adds a service started by every New. Call it from init, next to the
// handlers that use the service; they find it again with Server.service(name).
func registerService(name string, start func(s *Server) (Service, error)) {
	for _, d := range serviceDefs {
		if d.name == name {
			panic(fmt.Sprintf("protocol: service %q registered twice", name))
		}
	}
	serviceDefs = append(serviceDefs, serviceDef{name: name, start: start})
}

// service returns the started service registered under name, or nil.
func (s *Server) service(name string) Service { return s.services[name] }

func (s *Server) stopServices() {
	for i := len(s.serviceOrder) - 1; i >= 0; i-- {
		name := s.serviceOrder[i]
		if err := s.services[name].Close(); err != nil {
			s.log.Warn("service close failed", zap.String("service", name), zap.Error(err))
		}
	}
	s.serviceOrder = nil
}
