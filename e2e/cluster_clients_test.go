package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestClusterKcatIdempotentLeaderKill runs librdkafka's idempotent producer (kcat) through
// a kill -9 of the partition's leader: librdkafka retries what was in flight at the new
// leader, where the producer state the state machine replicated must recognise each batch
// it already holds. Every line kcat read must end up in the partition exactly once, in
// the order kcat sent them, and kcat must report no failed delivery.
func TestClusterKcatIdempotentLeaderKill(t *testing.T) {
	kcat := requireKcat(t)
	h := startClusterHarness(t)
	const topic, total = "kc-idem", 30000
	h.createTopic(topic, 1)
	h.waitServing(topic, 1, 30*time.Second)

	cmd := exec.Command(kcat, "-P", "-b", strings.Join(h.c.Brokers(), ","), "-t", topic, "-p", "0",
		"-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=5",
		"-X", "message.timeout.ms=90000", "-X", "topic.metadata.refresh.interval.ms=1000",
		"-X", "retry.backoff.ms=100")
	cmd.Env = cleanEnv()
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("kcat output:\n%s", stderr.String())
		}
	})

	// Lines go in at about 5,000 a second; the leader is killed once a third of them
	// were written and some were stored.
	w := bufio.NewWriter(stdin)
	send := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			fmt.Fprintf(w, "idem-%06d\n", i)
			if i%50 == 49 {
				if err := w.Flush(); err != nil {
					t.Fatalf("writing to kcat: %v\n%s", err, stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("writing to kcat: %v\n%s", err, stderr.String())
		}
	}
	send(0, total/3)
	h.waitFor(30*time.Second, "kcat's first records stored", func() error {
		if n := h.endOffset(topic); n < total/10 {
			return fmt.Errorf("end offset %d", n)
		}
		return nil
	})
	leader, epoch, err := h.leaderOf(topic)
	if err != nil {
		t.Fatal(err)
	}
	victim := h.nodeByID(int(leader))
	end := h.endOffset(topic)
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s, the leader at epoch %d, at end offset %d or later", victim.Name, epoch, end)
	send(total/3, total)
	stdin.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("kcat: %v\n%s", err, stderr.String())
		}
	case <-time.After(120 * time.Second):
		t.Fatalf("kcat did not finish within 120 s of its last line\n%s", stderr.String())
	}
	// kcat also prints the connection errors librdkafka reports while the leader is
	// down, which it rides out.
	if out := stderr.String(); strings.Contains(out, "Delivery failed") {
		t.Fatalf("kcat reported failed deliveries:\n%s", out)
	}
	if l, e, err := h.leaderOf(topic); err != nil || l == leader || e <= epoch {
		t.Fatalf("after the kill: leader %d epoch %d (%v); want a new leader past epoch %d", l, e, err, epoch)
	}

	recs := h.readAll(topic, 1)[0]
	if len(recs) != total {
		t.Errorf("the partition holds %d records, kcat sent %d", len(recs), total)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("idem-%06d", i); r.value != want {
			t.Fatalf("offset %d holds %q, want %q (records stored twice, lost or out of order)", r.offset, r.value, want)
		}
	}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitCaughtUp(victim, 60*time.Second)
}

// endOffset returns partition 0 of topic's high watermark, or -1 when no node answers.
func (h *clusterHarness) endOffset(topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(h.client()).ListEndOffsets(ctx, topic)
	if err != nil {
		return -1
	}
	o, ok := ends.Lookup(topic, 0)
	if !ok || o.Err != nil {
		return -1
	}
	return o.Offset
}
