package testnode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testnode: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
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
}

// New prepares a node without starting it. The node is killed, and its log printed if
// the test failed, when the test ends.
func New(t testing.TB, cfg Config) *Node {
	t.Helper()
	n := &Node{t: t, cfg: cfg, bin: Binary(t)}
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

// Start starts the process (again, after Stop or Kill: same data dir, same ports). It does
// not wait for readiness; see WaitReady.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !isClosed(n.exited) {
		return fmt.Errorf("start %s: already running (pid %d)", n.Name, n.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
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
// or the timeout passes.
func (n *Node) WaitReady(timeout time.Duration) error {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if isClosed(exited) {
			n.mu.Lock()
			err := n.exitErr
			n.mu.Unlock()
			return fmt.Errorf("%s before answering ApiVersions on %s: %w (%s); log tail:\n%s", n.Name, n.Addr, ErrExited, exitString(err), n.Logs(4<<10))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, last = APIVersions(ctx, n.Addr)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer ApiVersions on %s within %v: %v", n.Name, n.Addr, timeout, last)
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
