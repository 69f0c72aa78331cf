package testnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The harness is tested on a stand-in server: this test binary, run again with
// TESTNODE_FAKE_SERVER=1, serves Kafka with franz-go's kfake on --listen and exits 0 on
// SIGTERM. The harness itself does not care what the binary is.
func TestMain(m *testing.M) {
	if os.Getenv("TESTNODE_FAKE_SERVER") == "1" {
		os.Exit(fakeServer(os.Args[1:]))
	}
	os.Setenv("SLUICE_TEST_BINARY", os.Args[0])
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

func fakeServer(args []string) int {
	var listen, dataDir string
	var others []string // --raft-listen and --admin-listen: bound as sluice binds them
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--listen":
			listen = args[i+1]
		case "--data-dir":
			dataDir = args[i+1]
		case "--raft-listen", "--admin-listen":
			others = append(others, args[i+1])
		}
	}
	if os.Getenv("TESTNODE_FAKE_FAIL") == "1" {
		fmt.Fprintln(os.Stderr, "fake server: failing on purpose")
		return 3
	}
	_, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake server: --listen:", err)
		return 2
	}
	port, _ := strconv.Atoi(portStr)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "fake server:", err)
		return 2
	}
	// Count starts in the data dir, so a restart can be seen to reuse it.
	countPath := dataDir + "/starts"
	b, _ := os.ReadFile(countPath)
	starts, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	os.WriteFile(countPath, []byte(strconv.Itoa(starts+1)), 0o644)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	if d, err := time.ParseDuration(os.Getenv("TESTNODE_FAKE_DELAY")); err == nil {
		time.Sleep(d) // a slow start: readiness must be polled
	}
	// The other ports first: a node that cannot bind them exits without ever answering on
	// its Kafka port, as sluice does (it serves Kafka only once the cluster is up), so
	// WaitReady sees the exit rather than a node that answered and then died.
	for _, addr := range others {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake server:", err)
			return 1
		}
		defer l.Close()
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake server:", err)
		return 2
	}
	fmt.Println("fake server: listening on", listen, "args", strings.Join(args, " "))
	<-sigs
	c.Close()
	fmt.Println("fake server: stopped")
	return 0
}

func fakeConfig(extra ...string) Config {
	return Config{Env: append([]string{"TESTNODE_FAKE_SERVER=1"}, extra...), ReadyTimeout: 20 * time.Second, StopTimeout: 10 * time.Second}
}

func starts(t *testing.T, n *Node) int {
	t.Helper()
	b, err := os.ReadFile(n.DataDir + "/starts")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return c
}

func TestLifecycle(t *testing.T) {
	n := Start(t, fakeConfig("TESTNODE_FAKE_DELAY=300ms"))
	if !n.Running() || n.PID() == 0 {
		t.Fatal("node not running after Start")
	}
	vs, err := APIVersions(context.Background(), n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vs[int16(kmsg.ApiVersions)]; !ok {
		t.Fatalf("ApiVersions answer lacks ApiVersions: %v", vs)
	}
	if ok, err := Serves(context.Background(), n.Addr, int16(kmsg.FindCoordinator)); err != nil || !ok {
		t.Fatalf("Serves(FindCoordinator) = %v, %v", ok, err)
	}

	// Clean stop: exit status 0, the port closes.
	if err := n.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if n.Running() {
		t.Fatal("running after Stop")
	}
	if _, err := APIVersions(context.Background(), n.Addr); err == nil {
		t.Fatal("stopped node still answers")
	}
	// Restart: same data dir and address.
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := starts(t, n); got != 2 {
		t.Fatalf("data dir saw %d starts, want 2", got)
	}
	// kill -9: Stop's clean path is not taken, the process is gone.
	pid := n.PID()
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := n.Wait(time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("exit after kill = %v, want signal: killed", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pid %d still exists after Kill: %v", pid, err)
	}
	if err := n.KillRestart(); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := starts(t, n); got != 4 {
		t.Fatalf("data dir saw %d starts, want 4", got)
	}

	// Pause: the port accepts (the kernel does) but nothing answers; Resume answers again.
	if err := n.Pause(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = APIVersions(ctx, n.Addr)
	cancel()
	if err == nil {
		t.Fatal("paused node answered ApiVersions")
	}
	if err := n.Resume(); err != nil {
		t.Fatal(err)
	}
	WaitForErr(t, 10*time.Second, func() error {
		_, err := APIVersions(context.Background(), n.Addr)
		return err
	})
	// A paused node still stops cleanly.
	if err := n.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("Stop of a paused node: %v", err)
	}
	if err := n.Pause(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Pause of a stopped node = %v, want ErrNotRunning", err)
	}
	logs := n.Logs(1 << 20)
	for _, want := range []string{"start #1", "start #4", "fake server: stopped", "signal: killed", "--data-dir " + n.DataDir} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
	if tail := n.Logs(100); len(tail) > 200 || !strings.Contains(tail, "earlier bytes") {
		t.Fatalf("Logs(100) = %q", tail)
	}
}

func TestStartFailureIsReported(t *testing.T) {
	n := New(t, fakeConfig("TESTNODE_FAKE_FAIL=1"))
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	err := n.WaitReady(10 * time.Second)
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "failing on purpose") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("WaitReady of a failing process = %v", err)
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t, ClusterConfig{Nodes: 3, AdminFlag: "--admin-listen", Env: []string{"TESTNODE_FAKE_SERVER=1"}, StopTimeout: 10 * time.Second})
	if len(c.Nodes) != 3 || len(c.Brokers()) != 3 {
		t.Fatalf("cluster has %d nodes", len(c.Nodes))
	}
	peers := ""
	for _, n := range c.Nodes {
		peers += fmt.Sprintf("%d@%s,", n.ID, n.RaftAddr)
	}
	peers = strings.TrimSuffix(peers, ",")
	for i, n := range c.Nodes {
		if n.ID != i+1 || c.Node(i+1) != n || n.AdminAddr == "" {
			t.Fatalf("node %d: %+v", i, n)
		}
		args := strings.Join(n.Args(), " ")
		for _, want := range []string{"--node-id " + strconv.Itoa(n.ID), "--raft-listen " + n.RaftAddr, "--peers " + peers, "--admin-listen " + n.AdminAddr} {
			if !strings.Contains(args, want) {
				t.Fatalf("node %d args %q lack %q", n.ID, args, want)
			}
		}
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestWaitFor(t *testing.T) {
	start := time.Now()
	calls := 0
	WaitFor(t, 5*time.Second, func() bool { calls++; return calls == 3 })
	if calls != 3 || time.Since(start) > 5*time.Second {
		t.Fatalf("WaitFor made %d calls", calls)
	}
	if err := poll(100*time.Millisecond, func() error { return errors.New("never") }); err == nil || !strings.Contains(err.Error(), "never") {
		t.Fatalf("poll of a failing condition = %v", err)
	}
}

// hold listens on addr, taking it from the node about to use it, until the test ends (or
// release is called).
func hold(t *testing.T, addr string) (release func()) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("take %s: %v", addr, err)
	}
	var once sync.Once
	release = func() { once.Do(func() { l.Close() }) }
	t.Cleanup(release)
	return release
}

// A Kafka port taken between FreeAddr and the node binding it: the node exits, and Start
// starts it again on a fresh port.
func TestKafkaPortTaken(t *testing.T) {
	n := New(t, fakeConfig())
	taken := n.Addr
	hold(t, taken)
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n.Addr == taken {
		t.Fatalf("still on the taken address %s", taken)
	}
	if _, err := APIVersions(context.Background(), n.Addr); err != nil {
		t.Fatal(err)
	}
	if logs := n.Logs(1 << 20); !strings.Contains(logs, taken+" was taken by another process") || !strings.Contains(logs, "start #2") {
		t.Fatalf("log does not tell the retry:\n%s", logs)
	}
}

// An admin port taken: replaced too, in the node's arguments.
func TestAdminPortTaken(t *testing.T) {
	c := NewCluster(t, ClusterConfig{Nodes: 1, AdminFlag: "--admin-listen", Env: []string{"TESTNODE_FAKE_SERVER=1"}, StopTimeout: 10 * time.Second})
	n := c.Nodes[0]
	taken := n.AdminAddr
	hold(t, taken)
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n.AdminAddr == taken || !strings.Contains(strings.Join(n.Args(), " "), "--admin-listen "+n.AdminAddr) {
		t.Fatalf("admin address %s (taken %s), args %v", n.AdminAddr, taken, n.Args())
	}
}

// A Raft address taken at the first start: the cluster is formed again with fresh Raft
// addresses. Taken at a restart, once the addresses are fixed: the start waits for it.
func TestRaftPortTaken(t *testing.T) {
	var taken string
	c := startCluster(t, ClusterConfig{Nodes: 3, Env: []string{"TESTNODE_FAKE_SERVER=1"}, StopTimeout: 10 * time.Second}, func(c *Cluster) {
		taken = c.Nodes[1].RaftAddr
		hold(t, taken)
	})
	peers := c.peersArg()
	for _, n := range c.Nodes {
		if n.RaftAddr == taken {
			t.Fatalf("%s still has the taken Raft address %s", n.Name, taken)
		}
		if args := strings.Join(n.Args(), " "); !strings.Contains(args, "--raft-listen "+n.RaftAddr) || !strings.Contains(args, "--peers "+peers) {
			t.Fatalf("%s args %q", n.Name, args)
		}
	}
	n := c.Nodes[1]
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	release := hold(t, n.RaftAddr)
	raft := n.RaftAddr
	// The address is held until the harness says it waits for it: a release after a fixed
	// time could come before a slow start even tried to bind it.
	const waiting = "waiting for it to be free"
	before := strings.Count(n.Logs(1<<20), waiting)
	stop, released := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(released)
		defer release()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(n.Logs(1<<20), waiting) == before && time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-released }()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n.RaftAddr != raft || strings.Count(n.Logs(1<<20), waiting) == before {
		t.Fatalf("Raft address %s (was %s); log:\n%s", n.RaftAddr, raft, n.Logs(1<<20))
	}
}

// Other failures at start are reported, not retried.
func TestFailureNotRetried(t *testing.T) {
	n := New(t, fakeConfig("TESTNODE_FAKE_FAIL=1"))
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(10 * time.Second); !errors.Is(err, ErrExited) {
		t.Fatalf("WaitReady = %v", err)
	}
	if logs := n.Logs(1 << 20); strings.Contains(logs, "start #2") {
		t.Fatalf("a failure that is not a taken port was retried:\n%s", logs)
	}
}
