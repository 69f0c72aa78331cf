package protocol

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/group"
)

// Clients may not write or delete __consumer_offsets; the coordinator's records stay
// the only ones in it.
func TestInternalTopicRefusesProduceAndDelete(t *testing.T) {
	ts := startServer(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := newClient(t, ts.addr)
	adm := kadm.NewClient(cl)
	waitFor(t, 30*time.Second, group.Topic+" to exist", func() bool {
		td, err := adm.ListTopicsWithInternal(ctx, group.Topic)
		return err == nil && td.Has(group.Topic)
	})

	prod := newClient(t, ts.addr, kgo.RecordRetries(0), kgo.DisableIdempotentWrite())
	err := prod.ProduceSync(ctx, &kgo.Record{Topic: group.Topic, Partition: 0, Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("produce to %s: got %v, want INVALID_TOPIC_EXCEPTION", group.Topic, err)
	}

	res, err := adm.DeleteTopics(ctx, group.Topic)
	if err != nil {
		t.Fatal(err)
	}
	if got := res[group.Topic].Err; !errors.Is(got, kerr.InvalidTopicException) {
		t.Fatalf("delete %s: got %v, want INVALID_TOPIC_EXCEPTION", group.Topic, got)
	}
	td, err := adm.ListTopicsWithInternal(ctx, group.Topic)
	if err != nil || !td.Has(group.Topic) {
		t.Fatalf("%s after a refused delete: %v %v", group.Topic, td, err)
	}
}
