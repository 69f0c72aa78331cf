package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testnode"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testnode.Cleanup()
	os.Exit(code)
}

// startNode starts one single-node server with a fresh data dir.
func startNode(t *testing.T, args ...string) *testnode.Node {
	t.Helper()
	return testnode.Start(t, testnode.Config{Args: args})
}

// client is a franz-go client of n, closed when the test ends.
func client(t *testing.T, n *testnode.Node, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.Addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func admin(t *testing.T, n *testnode.Node) *kadm.Client {
	t.Helper()
	return kadm.NewClient(client(t, n))
}

func createTopic(t *testing.T, n *testnode.Node, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := admin(t, n).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// produceSync produces records and fails the test on any error.
func produceSync(t *testing.T, cl *kgo.Client, rs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// readAll reads every record of topic from the log start to the end offsets listed now.
func readAll(t *testing.T, n *testnode.Node, topic string) map[int32][]*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	adm := admin(t, n)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		t.Fatalf("list start offsets of %s: %v", topic, err)
	}
	want := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	for p, o := range ends[topic] {
		want[p] = o.Offset
		offsets[p] = kgo.NewOffset().At(starts[topic][p].Offset)
	}
	out := map[int32][]*kgo.Record{}
	cl := client(t, n, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}), kgo.FetchMaxWait(500*time.Millisecond))
	done := func() bool {
		for p, end := range want {
			rs := out[p]
			next := starts[topic][p].Offset
			if len(rs) > 0 {
				next = rs[len(rs)-1].Offset + 1
			}
			if next < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: not at the end offsets %v after 120 s", topic, want)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < want[r.Partition] {
				out[r.Partition] = append(out[r.Partition], r)
			}
		})
	}
	return out
}

// requireGroups skips the test while the server does not advertise FindCoordinator.
func requireGroups(t *testing.T, n *testnode.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := testnode.Serves(ctx, n.Addr, int16(kmsg.FindCoordinator))
	if err != nil {
		t.Fatalf("ApiVersions: %v", err)
	}
	if !ok {
		t.Skip("the server does not advertise FindCoordinator yet: consumer group tests run once the group coordinator is served")
	}
}

func requireKcat(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (apt-get install kcat; .ci/run installs it)")
	}
	return p
}

const python = "/usr/bin/python3"

var pythonKafka struct {
	once sync.Once
	err  error
}

func requirePythonKafka(t *testing.T) {
	t.Helper()
	pythonKafka.once.Do(func() {
		out, err := exec.Command(python, "-c", "import kafka; print(kafka.__version__)").CombinedOutput()
		if err != nil {
			pythonKafka.err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
	})
	if pythonKafka.err != nil {
		t.Skipf("%s cannot import kafka (apt-get install python3-kafka; .ci/run installs it): %v", python, pythonKafka.err)
	}
}

// proc is the outcome of running a program.
type proc struct {
	code           int
	stdout, stderr string
}

// runProg runs a program with stdin and a timeout and returns its outcome.
func runProg(t *testing.T, timeout time.Duration, stdin string, name string, args ...string) proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = cleanEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			t.Fatalf("%s %s: did not finish within %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), timeout, out.String(), errOut.String())
		}
	}
	return proc{code, out.String(), errOut.String()}
}

// cleanEnv drops SLUICE_* variables so the programs see only what the test gives them.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			env = append(env, kv)
		}
	}
	return env
}

// sluice runs the sluice CLI binary against n.
func sluice(t *testing.T, n *testnode.Node, stdin string, args ...string) proc {
	t.Helper()
	return runProg(t, 90*time.Second, stdin, testnode.Binary(t), append(args, "--brokers", n.Addr)...)
}

// mustSluice runs the sluice CLI and fails the test unless it exits 0.
func mustSluice(t *testing.T, n *testnode.Node, stdin string, args ...string) string {
	t.Helper()
	p := sluice(t, n, stdin, args...)
	if p.code != 0 {
		t.Fatalf("sluice %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), p.code, p.stdout, p.stderr)
	}
	return p.stdout
}

// lockedBuffer is a bytes.Buffer safe for a process writing and a test reading.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// background runs a program until the test stops it (or the test ends, then it is
// killed).
type background struct {
	cmd    *exec.Cmd
	stdout lockedBuffer
	stderr lockedBuffer
	done   chan struct{}
	err    error
}

func startBackground(t *testing.T, name string, args ...string) *background {
	t.Helper()
	b, _ := startBackgroundInput(t, false, name, args...)
	return b
}

// startBackgroundInput is startBackground with, if input, a pipe to the program's
// standard input (closing it ends the input).
func startBackgroundInput(t *testing.T, input bool, name string, args ...string) (*background, io.WriteCloser) {
	t.Helper()
	b := &background{cmd: exec.Command(name, args...), done: make(chan struct{})}
	b.cmd.Env = cleanEnv()
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
	var stdin io.WriteCloser
	if input {
		var err error
		if stdin, err = b.cmd.StdinPipe(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.done
		if t.Failed() {
			t.Logf("%s %s\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), b.stdout.String(), b.stderr.String())
		}
	})
	return b, stdin
}

// stop sends SIGINT, as Ctrl-C does, and waits up to timeout for the program to exit.
func (b *background) stop(t *testing.T, timeout time.Duration) error {
	t.Helper()
	b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.done:
		return b.err
	case <-time.After(timeout):
		b.cmd.Process.Kill()
		<-b.done
		return fmt.Errorf("%s did not exit within %v of SIGINT", b.cmd.Path, timeout)
	}
}

func (b *background) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}
