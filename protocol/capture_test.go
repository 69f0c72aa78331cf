package protocol

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Request frames captured from real clients seed the fuzz targets (testdata/fuzz). They
// are captured by running the clients through a recording proxy:
//
//	SLUICE_CAPTURE_FRAMES=1 go test -run TestCaptureClientFrames ./protocol/
//
// which rewrites the seed files. franz-go is always available; kcat and kafka-python
// (/usr/bin/python3) are used when installed.

// captureProxy forwards client connections to a server and records the request frames.
type captureProxy struct {
	ln net.Listener

	mu     sync.Mutex
	target string            // the server's address, set once it is started
	frames map[string][]byte // "<client>-<api>-v<version>" -> first frame (size prefix included)
	wg     sync.WaitGroup
}

// setTarget sets the server the proxy forwards to. The server is started after the proxy
// (it advertises the proxy's address), while the proxy already accepts.
func (p *captureProxy) setTarget(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = addr
}

func newCaptureProxy(t *testing.T) *captureProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &captureProxy{ln: ln, frames: map[string][]byte{}}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *captureProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			p.mu.Lock()
			target := p.target
			p.mu.Unlock()
			s, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer s.Close()
			go io.Copy(c, s)
			for {
				var size [4]byte
				if _, err := io.ReadFull(c, size[:]); err != nil {
					return
				}
				frame := make([]byte, 4+binary.BigEndian.Uint32(size[:]))
				copy(frame, size[:])
				if _, err := io.ReadFull(c, frame[4:]); err != nil {
					return
				}
				p.record(frame)
				if _, err := s.Write(frame); err != nil {
					return
				}
			}
		}()
	}
}

func (p *captureProxy) record(frame []byte) {
	if len(frame) < 8 {
		return
	}
	h, err := parseHeader(frame[4:])
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Named by the tool and the client ID it sent (franz-go's background clients overlap
	// the other tools' runs).
	id := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, strings.ToLower(h.clientID))
	name := fmt.Sprintf("%s-%s-v%d", id, strings.ToLower(kmsg.NameForKey(h.key)), h.version)
	if _, ok := p.frames[name]; !ok {
		p.frames[name] = frame
	}
}

func TestCaptureClientFrames(t *testing.T) {
	if os.Getenv("SLUICE_CAPTURE_FRAMES") == "" {
		t.Skip("set SLUICE_CAPTURE_FRAMES=1 to record client frames into testdata/fuzz")
	}
	proxy := newCaptureProxy(t)
	ts := startServer(t, "", withAdvertise(proxy.ln.Addr().String()))
	proxy.setTarget(ts.addr)
	addr := proxy.ln.Addr().String()

	franzGoWorkload(t, addr)
	if _, err := exec.LookPath("kcat"); err == nil {
		kcatWorkload(t, addr)
	} else {
		t.Log("kcat not installed; no kcat frames")
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		pythonWorkload(t, addr)
	}

	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	names := make([]string, 0, len(proxy.frames))
	for n := range proxy.frames {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, target := range []string{"FuzzDecodeRequest", "FuzzServeRequest"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			// The fuzz targets take the frame without its size prefix.
			body := proxy.frames[n][4:]
			data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(body)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, n), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("captured %d frames: %s", len(names), strings.Join(names, " "))
}

func franzGoWorkload(t *testing.T, addr string) {
	cl := newClient(t, addr, kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 2, -1, map[string]*string{"retention.ms": kmsg.StringPtr("100000")}, "cap"); err != nil {
		t.Fatal(err)
	}
	produceN(t, cl, "cap", 0, 100)
	consumeAll(t, addr, "cap", 100)
	adm.DescribeTopicConfigs(ctx, "cap")
	adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kmsg.StringPtr("200000")}}, "cap")
	adm.CreatePartitions(ctx, 1, "cap")
	adm.ListEndOffsets(ctx, "cap")
	adm.ListOffsetsAfterMilli(ctx, 0, "cap")
	adm.BrokerMetadata(ctx)
	req := kmsg.NewPtrDescribeClusterRequest()
	req.RequestWith(ctx, cl)
	oe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = "cap"
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rt.Partitions = append(rt.Partitions, rp)
	oe.Topics = append(oe.Topics, rt)
	oe.RequestWith(ctx, cl)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "cap", Partition: 0, At: 1})
	adm.DeleteRecords(ctx, offs)
	gcl := newClient(t, addr, kgo.ConsumerGroup("cap-group"), kgo.ConsumeTopics("cap"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs := gcl.PollFetches(ctx)
	gcl.CommitRecords(ctx, fs.Records()...)
	gcl.Close()
	adm.DescribeGroups(ctx, "cap-group")
	adm.DeleteTopics(ctx, "cap")
}

func kcatWorkload(t *testing.T, addr string) {
	run := func(stdin string, args ...string) {
		cmd := exec.Command("kcat", append([]string{"-b", addr}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		done := make(chan error, 1)
		cmd.Start()
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Logf("kcat %v: %v\n%s", args, err, out.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Logf("kcat %v timed out\n%s", args, out.String())
		}
	}
	run("", "-L")
	run("a\nb\nc\n", "-P", "-t", "kcat-topic", "-z", "lz4")
	run("", "-C", "-t", "kcat-topic", "-o", "beginning", "-e")
	run("", "-C", "-t", "kcat-topic", "-o", "s@0", "-e")
	run("", "-Q", "-t", "kcat-topic:0:0")
}

func pythonWorkload(t *testing.T, addr string) {
	script := `
import sys
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
addr = sys.argv[1]
p = KafkaProducer(bootstrap_servers=addr, compression_type='gzip')
for i in range(10):
    p.send('py-topic', b'value-%d' % i, key=b'k')
p.flush()
p.close()
c = KafkaConsumer(bootstrap_servers=addr, auto_offset_reset='earliest', consumer_timeout_ms=5000)
tp = TopicPartition('py-topic', 0)
c.assign([tp])
n = sum(1 for _ in c)
print(n, c.end_offsets([tp]), c.offsets_for_times({tp: 0}))
c.close()
`
	cmd := exec.Command("/usr/bin/python3", "-c", script, addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("kafka-python: %v\n%s", err, out)
	} else {
		t.Logf("kafka-python: %s", out)
	}
}
