package testnode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Defaults for Config.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultStopTimeout  = 30 * time.Second
)

// ErrNotRunning is returned by the signal methods when the node's process is not running.
var ErrNotRunning = errors.New("testnode: not running")

// ErrExited is returned by WaitReady when the process exits before it is ready.
var ErrExited = errors.New("testnode: process exited")

var build struct {
	once sync.Once
	dir  string // temporary directory holding a built binary; removed by Cleanup
	path string
	err  error
}

// Binary returns the path of a sluice binary: SLUICE_TEST_BINARY if set, otherwise
// cmd/sluice built once per test binary into a temporary directory (removed by Cleanup).
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		if p := os.Getenv("SLUICE_TEST_BINARY"); p != "" {
			build.path, build.err = filepath.Abs(p)
			if build.err == nil {
				_, build.err = os.Stat(build.path)
			}
			return
		}
		root, err := moduleRoot()
		if err != nil {
			build.err = err
			return
		}
		if build.dir, err = os.MkdirTemp("", "sluice-testbin-"); err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(build.dir, "sluice")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/sluice")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/sluice: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("testnode: sluice binary: %v", build.err)
	}
	return build.path
}

// Cleanup removes a binary built by Binary. Call it from TestMain after m.Run:
//
//	func TestMain(m *testing.M) { code := m.Run(); testnode.Cleanup(); os.Exit(code) }
func Cleanup() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the sluice module")
	}
	return filepath.Dir(gomod), nil
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago. The port
// is picked at random below the kernel's ephemeral port range when there is room there
// (from 10000 up): a port in that range can be handed to an outgoing connection between
// the moment it is picked and the moment a node binds it, which a port below it cannot.
// Another process may still bind it meanwhile; Start and WaitReady then retry with a
// fresh one.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatalf("testnode: free port: %v", err)
	}
	return addr
}

// freeFloor is the lowest port FreeAddr picks.
const freeFloor = 10000

var picked struct {
	mu    sync.Mutex
	ports map[int]bool // handed out by this process: never twice
}

func freeAddr() (string, error) {
	picked.mu.Lock()
	defer picked.mu.Unlock()
	if picked.ports == nil {
		picked.ports = map[int]bool{}
	}
	if top := ephemeralLow(); top-freeFloor >= 1000 {
		for range 100 {
			port := freeFloor + rand.IntN(top-freeFloor)
			if picked.ports[port] {
				continue
			}
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			l, err := net.Listen("tcp", addr)
			if err != nil {
				continue
			}
			l.Close()
			picked.ports[port] = true
			return addr, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	picked.ports[l.Addr().(*net.TCPAddr).Port] = true
	return l.Addr().String(), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux
// ip_local_port_range; 32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 0 {
		return 32768
	}
	return lo
}

// Config describes one node. Zero values get defaults.
type Config struct {
	Name         string        // in log lines; default "node"
	DataDir      string        // default a fresh t.TempDir()
	Addr         string        // Kafka listen address; default a free 127.0.0.1 port
	Args         []string      // extra flags after `serve --data-dir D --listen A`
	Env          []string      // extra environment (SLUICE_* from the test's environment is dropped)
	ReadyTimeout time.Duration // how long Start waits for ApiVersions; default 30 s
	StopTimeout  time.Duration // how long Stop waits after SIGTERM; default 30 s
}

// Node is one `sluice serve` process. Its methods are safe for concurrent use.
type Node struct {
	t   testing.TB
	cfg Config
	bin string

	Name    string
	Addr    string // Kafka address clients connect to
	DataDir string
	LogPath string

	// Set by StartCluster.
	ID        int
	RaftAddr  string
	AdminAddr string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current process has exited
	exitErr error
	starts  int
	// logStart is the size of the log when the current process started: its own output
	// comes after.
	logStart int64
	// rebinds counts starts retried because a port was taken (at most maxRebinds).
	rebinds int
	// fixedRaft is set by a cluster once the node's Raft address is part of a formed
	// cluster's configuration: a conflict on it is waited out, not fixed by a new address.
	fixedRaft bool
	// down is true until the first start and after Stop or Kill: the node is meant not to
	// run. A node that exits on its own while not down has failed.
	down bool
}

// setDown records whether the node is meant to be down.
func (n *Node) setDown(down bool) {
	n.mu.Lock()
	n.down = down
	n.mu.Unlock()
}

// meantToRun says whether the node was started and not stopped or killed since (it may
// have exited on its own).
func (n *Node) meantToRun() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.down
}

// New prepares a node without starting it. The node is killed, and its log printed if
// the test failed, when the test ends.
func New(t testing.TB, cfg Config) *Node {
	t.Helper()
	n := &Node{t: t, cfg: cfg, bin: Binary(t), down: true}
	if cfg.Name == "" {
		cfg.Name = "node"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(t.TempDir(), "data")
	}
	if cfg.Addr == "" {
		cfg.Addr = FreeAddr(t)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	n.cfg = cfg
	n.Name, n.Addr, n.DataDir = cfg.Name, cfg.Addr, cfg.DataDir
	n.LogPath = filepath.Join(t.TempDir(), cfg.Name+".log")
	// Registered after the TempDir cleanups, so it runs before them.
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() || os.Getenv("SLUICE_TEST_LOGS") != "" {
			t.Logf("=== log of %s (%s, Kafka %s, data %s):\n%s", n.Name, n.LogPath, n.Addr, n.DataDir, n.Logs(256<<10))
		}
	})
	return n
}

// Start starts a node and waits until it answers ApiVersions; it fails the test if it
// does not.
func Start(t testing.TB, cfg Config) *Node {
	t.Helper()
	n := New(t, cfg)
	if err := n.Start(); err != nil {
		t.Fatalf("testnode: %v", err)
	}
	if err := n.WaitReady(n.cfg.ReadyTimeout); err != nil {
		t.Fatalf("testnode: %v", err)
	}
	return n
}

// Args are the command-line arguments the node runs with.
func (n *Node) Args() []string {
	return append([]string{"serve", "--data-dir", n.DataDir, "--listen", n.Addr}, n.cfg.Args...)
}

// Start starts the process (again, after Stop or Kill: same data dir, same ports) and
// waits until its Kafka port is bound, or the process exits, or a few seconds pass. It does
// not wait for readiness; see WaitReady. A process that exits because one of its ports was
// taken by another process is started again (see WaitReady).
func (n *Node) Start() error {
	if err := n.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n.mu.Lock()
		exited := n.exited
		n.mu.Unlock()
		if !n.awaitBound(exited, deadline) {
			return nil // bound, or slow: WaitReady will tell
		}
		retried, err := n.retryBind(deadline)
		if err != nil {
			return err
		}
		if !retried {
			return nil // another failure: WaitReady reports it with the log
		}
	}
}

// awaitBound polls the Kafka port until it accepts connections (false), the process
// exits (true) or the deadline passes (false).
func (n *Node) awaitBound(exited chan struct{}, deadline time.Time) bool {
	for time.Now().Before(deadline) {
		if isClosed(exited) {
			return true
		}
		if c, err := net.DialTimeout("tcp", n.addr(), 200*time.Millisecond); err == nil {
			c.Close()
			return false
		}
		select {
		case <-exited:
			return true
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// addr is the Kafka address, read under the lock (a retried start may change it).
func (n *Node) addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.Addr
}

// maxRebinds bounds the starts of a node retried because a port was taken.
const maxRebinds = 5

// bindErrRE finds a failed bind in a node's output ("listen tcp 127.0.0.1:9092: bind:
// address already in use"): net.OpError's text, whichever listener failed.
var bindErrRE = regexp.MustCompile(`listen tcp (\S+): bind: address already in use`)

// bindConflict returns the address the current (exited) process could not bind, from its
// output.
func (n *Node) bindConflict() (string, bool) {
	n.mu.Lock()
	from := n.logStart
	n.mu.Unlock()
	f, err := os.Open(n.LogPath)
	if err != nil {
		return "", false
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, from, 1<<30))
	if err != nil {
		return "", false
	}
	m := bindErrRE.FindSubmatch(b)
	if m == nil {
		return "", false
	}
	return string(m[1]), true
}

// retryBind starts an exited process again when it exited because one of its addresses
// was taken: the Kafka or admin address is replaced by a fresh one; a Raft address, which
// the other nodes know, is kept, and the start waits (until deadline) for it to be free.
// It reports false, and starts nothing, when the exit had another cause, the address is
// not one of the node's, or the retries are used up.
func (n *Node) retryBind(deadline time.Time) (bool, error) {
	addr, ok := n.bindConflict()
	if !ok {
		return false, nil
	}
	n.mu.Lock()
	if n.rebinds >= maxRebinds || (n.cmd != nil && !isClosed(n.exited)) {
		n.mu.Unlock()
		return false, nil
	}
	what := ""
	switch addr {
	case n.Addr, n.AdminAddr:
		fresh, err := freeAddr()
		if err != nil {
			n.mu.Unlock()
			return false, fmt.Errorf("start %s again: %w", n.Name, err)
		}
		if addr == n.Addr {
			n.Addr, n.cfg.Addr = fresh, fresh
		} else {
			n.AdminAddr = fresh
			for i, a := range n.cfg.Args {
				if a == addr {
					n.cfg.Args[i] = fresh
				}
			}
		}
		what = "using " + fresh + " instead"
	case n.RaftAddr:
		if !n.fixedRaft {
			// A cluster not formed yet: StartCluster picks new Raft addresses.
			n.mu.Unlock()
			return false, nil
		}
		what = "waiting for it to be free"
	default:
		n.mu.Unlock()
		return false, nil
	}
	n.rebinds++
	n.mu.Unlock()
	n.note(fmt.Sprintf("%s was taken by another process (bind: address already in use); starting again, %s", addr, what))
	if addr == n.RaftAddr {
		if err := waitBindable(addr, deadline); err != nil {
			return false, fmt.Errorf("start %s: its Raft address %s, fixed in the cluster's --peers, stays taken: %w", n.Name, addr, err)
		}
	}
	return true, n.start()
}

// waitBindable polls until addr can be bound (and releases it), or the deadline passes.
func waitBindable(addr string, deadline time.Time) error {
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// note appends a harness line to the node's log.
func (n *Node) note(line string) {
	f, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== testnode %s: %s\n", n.Name, line)
}

// start launches the process without waiting for anything.
func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !isClosed(n.exited) {
		return fmt.Errorf("start %s: already running (pid %d)", n.Name, n.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	if st, err := logf.Stat(); err == nil {
		n.logStart = st.Size()
	}
	n.down = false
	n.starts++
	args := n.Args()
	fmt.Fprintf(logf, "=== testnode %s: start #%d at %s: %s %s\n", n.Name, n.starts, time.Now().Format(time.RFC3339Nano), n.bin, strings.Join(args, " "))
	cmd := exec.Command(n.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(cleanEnv(), n.cfg.Env...)
	// The node dies with the test binary, even when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.exitErr = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== testnode %s: pid %d exited at %s: %v\n", n.Name, cmd.Process.Pid, time.Now().Format(time.RFC3339Nano), exitString(err))
		logf.Close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// cleanEnv is the test's environment without SLUICE_* variables, which would configure
// the node behind the test's back.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			env = append(env, kv)
		}
	}
	return env
}

func isClosed(c chan struct{}) bool {
	if c == nil {
		return true
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Running reports whether the process is running (a paused process is running).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !isClosed(n.exited)
}

// PID is the current process's id, or 0.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// WaitReady polls until the Kafka port answers ApiVersions, the process exits (ErrExited)
// or the timeout passes. A process that exited because one of its ports was taken by
// another process (its log shows "bind: address already in use" for its Kafka, admin or
// Raft address) is started again, with a fresh Kafka or admin address (Node.Addr and
// Node.AdminAddr change) or, for the Raft address the other nodes know, once that is free;
// any other exit is reported.
func (n *Node) WaitReady(timeout time.Duration) error {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if isClosed(exited) {
			retried, err := n.retryBind(deadline)
			if err != nil {
				return err
			}
			if retried {
				n.mu.Lock()
				exited = n.exited
				n.mu.Unlock()
				continue
			}
			n.mu.Lock()
			err = n.exitErr
			n.mu.Unlock()
			return fmt.Errorf("%s before answering ApiVersions on %s: %w (%s); log tail:\n%s", n.Name, n.addr(), ErrExited, exitString(err), n.Logs(4<<10))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, last = APIVersions(ctx, n.addr())
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer ApiVersions on %s within %v: %v", n.Name, n.addr(), timeout, last)
}

// Wait waits up to timeout for the process to exit and returns its exit error (nil for
// status 0).
func (n *Node) Wait(timeout time.Duration) error {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	if exited == nil {
		return ErrNotRunning
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running after %v", n.Name, n.PID(), timeout)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exitErr
}

func (n *Node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || isClosed(n.exited) {
		return fmt.Errorf("%s %v: %w", n.Name, sig, ErrNotRunning)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s %v: %w", n.Name, sig, err)
	}
	return nil
}

// Stop sends SIGTERM and waits for the process to exit. It returns an error if the process
// exits with a non-zero status or does not exit within StopTimeout (then it is killed).
func (n *Node) Stop() error {
	n.setDown(true)
	if !n.Running() {
		return nil
	}
	n.signal(syscall.SIGCONT) // a paused process cannot handle SIGTERM
	if err := n.signal(syscall.SIGTERM); err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil
		}
		return err
	}
	err := n.Wait(n.cfg.StopTimeout)
	if n.Running() {
		n.Kill()
		return fmt.Errorf("%s did not exit within %v of SIGTERM: killed", n.Name, n.cfg.StopTimeout)
	}
	if err != nil {
		return fmt.Errorf("%s exited after SIGTERM with %v", n.Name, err)
	}
	return nil
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (n *Node) Kill() error {
	n.setDown(true)
	if err := n.signal(syscall.SIGKILL); err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil
		}
		return err
	}
	if err := n.Wait(n.cfg.StopTimeout); err != nil && n.Running() {
		return err
	}
	return nil
}

// Pause stops the process with SIGSTOP and waits until the kernel shows it stopped: it
// holds its ports and files but does nothing.
func (n *Node) Pause() error {
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	return n.waitState(true)
}

// Resume continues a paused process with SIGCONT and waits until it runs.
func (n *Node) Resume() error {
	if err := n.signal(syscall.SIGCONT); err != nil {
		return err
	}
	return n.waitState(false)
}

// waitState polls /proc/PID/stat until the process is stopped (state T) or not.
func (n *Node) waitState(stopped bool) error {
	pid := n.PID()
	return poll(5*time.Second, func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil // gone, or no /proc: nothing more to wait for
		}
		// pid (comm) STATE ...; comm may hold spaces, so look after the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			return nil
		}
		if (s[i+2] == 'T') == stopped {
			return nil
		}
		return fmt.Errorf("%s (pid %d) state %c, want stopped=%v", n.Name, pid, s[i+2], stopped)
	})
}

// Restart stops the process cleanly (SIGTERM), starts it again with the same data dir and
// ports, and waits until it is ready.
func (n *Node) Restart() error {
	if err := n.Stop(); err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		return err
	}
	return n.WaitReady(n.cfg.ReadyTimeout)
}

// KillRestart kills the process (kill -9), starts it again and waits until it is ready.
func (n *Node) KillRestart() error {
	if err := n.Kill(); err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		return err
	}
	return n.WaitReady(n.cfg.ReadyTimeout)
}

// Logs returns up to the last max bytes of the node's log, across all its starts.
func (n *Node) Logs(max int) string {
	f, err := os.Open(n.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(log: %v)", err)
	}
	off := int64(0)
	if st.Size() > int64(max) {
		off = st.Size() - int64(max)
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return fmt.Sprintf("(log: %v)", err)
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		return fmt.Sprintf("(... %d earlier bytes)\n%s", off, b)
	}
	return string(b)
}

// VersionRange is the range of versions a broker serves for one API key.
type VersionRange struct{ Min, Max int16 }

// APIVersions asks addr for its API versions with ApiVersions v0, the request every client
// can send, on its own connection.
func APIVersions(ctx context.Context, addr string) (map[int16]VersionRange, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	const correlationID = 7
	clientID := "testnode"
	// Request header v1: key, version, correlation id, nullable client id.
	frame := binary.BigEndian.AppendUint32(nil, 0)
	frame = binary.BigEndian.AppendUint16(frame, uint16(req.Key()))
	frame = binary.BigEndian.AppendUint16(frame, 0)
	frame = binary.BigEndian.AppendUint32(frame, correlationID)
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(clientID)))
	frame = append(frame, clientID...)
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if _, err := conn.Write(frame); err != nil {
		return nil, fmt.Errorf("write ApiVersions: %w", err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, fmt.Errorf("read ApiVersions response: %w", err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 1<<20 {
		return nil, fmt.Errorf("ApiVersions response size %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, fmt.Errorf("read ApiVersions response: %w", err)
	}
	if got := binary.BigEndian.Uint32(body); got != correlationID {
		return nil, fmt.Errorf("ApiVersions response correlation id %d, want %d", got, correlationID)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body[4:]); err != nil {
		return nil, fmt.Errorf("decode ApiVersions response: %w", err)
	}
	if resp.ErrorCode != 0 {
		return nil, fmt.Errorf("ApiVersions error code %d", resp.ErrorCode)
	}
	out := make(map[int16]VersionRange, len(resp.ApiKeys))
	for _, k := range resp.ApiKeys {
		out[k.ApiKey] = VersionRange{k.MinVersion, k.MaxVersion}
	}
	if len(out) == 0 {
		return nil, errors.New("ApiVersions response lists no APIs")
	}
	return out, nil
}

// Serves reports whether the node at addr advertises the API key (kmsg.FindCoordinator,
// say) in ApiVersions.
func Serves(ctx context.Context, addr string, key int16) (bool, error) {
	vs, err := APIVersions(ctx, addr)
	if err != nil {
		return false, err
	}
	_, ok := vs[key]
	return ok, nil
}

// WaitFor polls fn every 20-200 ms until it returns true, and fails the test if that does
// not happen within timeout.
func WaitFor(t testing.TB, timeout time.Duration, fn func() bool) {
	t.Helper()
	if err := poll(timeout, func() error {
		if fn() {
			return nil
		}
		return errors.New("condition not met")
	}); err != nil {
		t.Fatalf("testnode.WaitFor: %v", err)
	}
}

// WaitForErr polls fn until it returns nil, and fails the test with fn's last error if that
// does not happen within timeout.
func WaitForErr(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	if err := poll(timeout, fn); err != nil {
		t.Fatalf("testnode.WaitForErr: %v", err)
	}
}

func poll(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	interval := 20 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", timeout, err)
		}
		time.Sleep(interval)
		interval = min(interval*2, 200*time.Millisecond)
	}
}
