package replication

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countFSM counts applied entries and remembers the last.
type countFSM struct {
	mu   sync.Mutex
	n    int
	last string
}

func (f *countFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.last = string(l.Data)
	return f.n
}
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (f *countFSM) Restore(io.ReadCloser) error         { return nil }
func (f *countFSM) get() (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.last
}

func fastRaftConfig(id string) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 200 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.LogLevel = "warn"
	return c
}

func TestMuxManyGroups(t *testing.T) {
	const nodes, groups = 3, 4
	logger := zaptest.NewLogger(t)
	muxes := make([]*Mux, nodes)
	for i := range muxes {
		m, err := NewMux("127.0.0.1:0", "", logger)
		if err != nil {
			t.Fatal(err)
		}
		muxes[i] = m
	}
	var cfg raft.Configuration
	for i, m := range muxes {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(strconv.Itoa(i + 1)), Address: raft.ServerAddress(m.Advertise())})
	}
	type member struct {
		r   *raft.Raft
		fsm *countFSM
		tr  *raft.NetworkTransport
	}
	all := make([][]member, groups)
	for g := range groups {
		name := fmt.Sprintf("g%d", g)
		for i, m := range muxes {
			sl, err := m.Group(name)
			if err != nil {
				t.Fatal(err)
			}
			tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: sl, MaxPool: 2, Timeout: time.Second, Logger: hclogFor(logger, name)})
			store := raft.NewInmemStore()
			fsm := &countFSM{}
			c := fastRaftConfig(strconv.Itoa(i + 1))
			c.Logger = hclogFor(logger, name)
			r, err := raft.NewRaft(c, fsm, store, store, raft.NewInmemSnapshotStore(), tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.BootstrapCluster(cfg).Error(); err != nil {
				t.Fatal(err)
			}
			all[g] = append(all[g], member{r, fsm, tr})
		}
	}
	defer func() {
		for _, g := range all {
			for _, m := range g {
				m.r.Shutdown().Error()
				m.tr.Close()
			}
		}
		for _, m := range muxes {
			m.Close()
		}
	}()

	// A second registration of the same group is refused.
	if _, err := muxes[0].Group("g0"); err == nil {
		t.Fatal("registering g0 twice succeeded")
	}

	for g := range groups {
		var leader *raft.Raft
		waitFor(t, 10*time.Second, "a leader", func() bool {
			for _, m := range all[g] {
				if m.r.State() == raft.Leader {
					leader = m.r
					return true
				}
			}
			return false
		})
		for k := range 20 {
			if err := leader.Apply([]byte(fmt.Sprintf("g%d-%d", g, k)), time.Second).Error(); err != nil {
				t.Fatalf("group %d apply: %v", g, err)
			}
		}
	}
	// Every member of every group applies exactly its own group's entries.
	for g := range groups {
		for i, m := range all[g] {
			want := fmt.Sprintf("g%d-19", g)
			waitFor(t, 5*time.Second, fmt.Sprintf("group %d node %d applies 20 entries", g, i), func() bool {
				n, last := m.fsm.get()
				return n == 20 && last == want
			})
		}
	}
}

func TestMuxRefusesBadConnections(t *testing.T) {
	m, err := NewMux("127.0.0.1:0", "", zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sl, err := m.Group("known")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		hdr  []byte
	}{
		{"bad magic", []byte("XXXX\x01\x05known")},
		{"bad version", []byte("SLRT\x09\x05known")},
		{"empty name", []byte("SLRT\x01\x00")},
		{"unknown group", []byte("SLRT\x01\x07unknown")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", m.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.hdr); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			if ne, ok := err.(net.Error); err == nil || (ok && ne.Timeout()) {
				t.Fatalf("read after %s: %v, want the server to close the connection", tc.name, err)
			}
		})
	}
	// The mux still routes a good connection.
	done := make(chan net.Conn, 1)
	go func() {
		c, err := sl.Accept()
		if err == nil {
			done <- c
		}
	}()
	c, err := sl.Dial(raft.ServerAddress(m.Advertise()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	select {
	case sc := <-done:
		defer sc.Close()
		buf := make([]byte, 4)
		if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("server side read %q, %v", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("good connection not accepted")
	}
	// A closed group refuses Accept and is unregistered.
	sl.Close()
	if _, err := sl.Accept(); err == nil {
		t.Fatal("accept on closed stream layer succeeded")
	}
	if _, err := m.Group("known"); err != nil {
		t.Fatalf("re-register after close: %v", err)
	}
}

func TestRaftLogRepeatsAreSuppressed(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	hl := hclogFor(zap.New(core), "raft")
	for range 5 {
		hl.Error("failed to heartbeat to", "peer", "127.0.0.1:1", "error", "connection refused")
	}
	hl.Info("entering follower state")
	hl.Info("entering follower state")
	if got := logs.FilterMessageSnippet("failed to heartbeat").Len(); got != 1 {
		t.Fatalf("%d heartbeat errors logged, want 1 per %v", got, repeatEvery)
	}
	if got := logs.FilterMessageSnippet("entering follower").Len(); got != 2 {
		t.Fatalf("%d info lines logged, want both", got)
	}
	e := logs.All()[0]
	if e.Level != zapcore.ErrorLevel {
		t.Fatalf("level %v", e.Level)
	}
}
