package protocol

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// panicKey is an API key only tests register; its handler panics.
const panicKey = kmsg.DescribeUserSCRAMCredentials

func init() {
	register(panicKey, 0, 0, func(s *Server, r *Request) (kmsg.Response, error) {
		panic("test handler panic")
	})
}

// Pipelined requests are answered in order; acks=0 produce gets no response in between.
func TestPipelinedInOrder(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "pipe", 1, nil)
	c := dialRaw(t, ts.addr)
	var frames []byte
	id := "pipeliner"
	for i := int32(1); i <= 30; i++ {
		var req kmsg.Request
		switch i % 3 {
		case 0:
			m := kmsg.NewPtrMetadataRequest()
			m.Version = 0
			req = m
		case 1:
			frames = append(frames, produceFrame("pipe", makeBatch([][]byte{[]byte("p")}, batchOpts{}), i)...)
			continue
		case 2:
			// acks=0: no response for this one.
			p := kmsg.NewPtrProduceRequest()
			p.Version = 7
			p.Acks = 0
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "pipe"
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Records = makeBatch([][]byte{[]byte("q")}, batchOpts{})
			rt.Partitions = append(rt.Partitions, rp)
			p.Topics = append(p.Topics, rt)
			req = p
		}
		frames = appendRequestFrame(frames, req, i, &id)
	}
	c.write(frames)
	for i := int32(1); i <= 30; i++ {
		if i%3 == 2 {
			continue
		}
		frame, err := c.readFrame()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if corr := int32(frame[0])<<24 | int32(frame[1])<<16 | int32(frame[2])<<8 | int32(frame[3]); corr != i {
			t.Fatalf("response with correlation id %d, want %d", corr, i)
		}
	}
	p := openPartition(t, ts, "pipe", 0)
	if hw := p.HighWatermark(); hw != 20 {
		t.Fatalf("high watermark %d, want 20 (acks=0 writes stored too)", hw)
	}
}

// A panicking handler closes its own connection only, with a log line naming the request.
func TestHandlerPanicClosesConnection(t *testing.T) {
	ts := startServer(t, "")
	other := dialRaw(t, ts.addr)
	c := dialRaw(t, ts.addr)
	req := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	id := "panicky-client"
	c.write(appendRequestFrame(nil, req, 5, &id))
	c.expectClosed()
	entries := ts.logs.FilterMessage("handler panicked").All()
	if len(entries) != 1 {
		t.Fatalf("%d panic log lines, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	if fields["client_id"] != "panicky-client" || fmt.Sprint(fields["key"]) != fmt.Sprint(int16(panicKey)) {
		t.Fatalf("panic log fields %v", fields)
	}
	if resp := other.roundTrip(kmsg.NewPtrApiVersionsRequest(), 1).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("other connection: error %d", resp.ErrorCode)
	}
}

// Idle connections are closed.
func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, "", withConfig(func(c *Config) { c.IdleTimeout = 200 * time.Millisecond }))
	c := dialRaw(t, ts.addr)
	c.roundTrip(kmsg.NewPtrApiVersionsRequest(), 1)
	c.expectClosed()
	if !ts.logged("closing idle connection") {
		t.Fatal("no log line for the idle close")
	}
}

// Shutdown lets a waiting long poll answer and in-flight produce finish, then refuses
// new connections.
func TestShutdownFinishesInFlight(t *testing.T) {
	ts := startServer(t, "")
	createTopic(t, ts.addr, "drain", 1, nil)
	c := dialRaw(t, ts.addr)
	req := longPollRequest(11, "drain", time.Minute)
	c.send(req, 1)
	p := openPartition(t, ts, "drain", 0)
	waitFor(t, 10*time.Second, "the fetch to wait", func() bool { return p.Waiters() > 0 })

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ts.stop()
	}()
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	c.recv(resp, 1)
	if resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("drained fetch: error %d", resp.Topics[0].Partitions[0].ErrorCode)
	}
	c.expectClosed()
	wg.Wait()
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Fatal("server still accepting after shutdown")
	}
}

// Shutdown with a deadline closes connections that do not finish.
func TestShutdownDeadline(t *testing.T) {
	ts := startServer(t, "")
	c := dialRaw(t, ts.addr)
	// A frame that never completes keeps the reader busy mid-frame.
	c.write([]byte{0, 0, 1, 0, 0, 18})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := ts.srv.Shutdown(ctx)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	c.expectClosed()
	ts.stopOnce.Do(func() {
		<-ts.serveErr
		ts.parts.Close()
		ts.repl.Close()
		ts.ctrl.Close()
	})
}
