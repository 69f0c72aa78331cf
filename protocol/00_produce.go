package protocol

import (
	"context"
	"errors"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
	"github.com/sluicemq/sluice/segment"
)

// Produce: v3-v11.
//   - Exactly one RecordBatch v2 per partition; magic, length, CRC-32C, record count and
//     offset deltas are checked (partition.ValidateBatch); older message formats get
//     UNSUPPORTED_FOR_MESSAGE_FORMAT, a bad CRC or length CORRUPT_MESSAGE, a bad count
//     INVALID_RECORD; batches above max.message.bytes MESSAGE_TOO_LARGE. Compressed
//     batches are stored as sent; zstd needs v7+.
//   - acks must be -1, 0 or 1. Every write, whatever acks, is answered only once it is
//     durable under the --fsync policy; acks=0 gets no response at all.
//   - Idempotent producers are deduplicated per partition (last five batches); a retried
//     batch gets its original offset. Transactions are not supported: a transactional ID
//     gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
//   - Internal topics (__consumer_offsets) get INVALID_TOPIC_EXCEPTION: only the group
//     coordinator writes them.
//   - Partitions of one request are written concurrently, so their fsyncs overlap.
//   - v10+: a partition answered NOT_LEADER_OR_FOLLOWER names its current leader and
//     epoch, and the response that leader's endpoint (KIP-951), so clients move to it at
//     once rather than at their next metadata refresh.
func init() { register(kmsg.Produce, 3, 11, (*Server).produce) }

func (s *Server) produce(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)

	type job struct {
		topic     string
		partition int32
		records   []byte
		out       *kmsg.ProduceResponseTopicPartition
	}
	var jobs []job
	failAll := int16(0)
	switch {
	case req.TransactionID != nil && *req.TransactionID != "":
		failAll = kerr.TransactionalIDAuthorizationFailed.Code
	case req.Acks != -1 && req.Acks != 0 && req.Acks != 1:
		failAll = kerr.InvalidRequiredAcks.Code
	}

	st := s.ctrl.State()
	seen := make(map[string]map[int32]bool, len(req.Topics))
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		ot := &resp.Topics[i]
		*ot = kmsg.NewProduceResponseTopic()
		ot.Topic = rt.Topic
		ot.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		if seen[rt.Topic] == nil {
			seen[rt.Topic] = make(map[int32]bool, len(rt.Partitions))
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			op := &ot.Partitions[j]
			*op = kmsg.NewProduceResponseTopicPartition()
			op.Partition = rp.Partition
			op.BaseOffset, op.LogAppendTime, op.LogStartOffset = -1, -1, -1
			switch {
			case failAll != 0:
				op.ErrorCode = failAll
			case seen[rt.Topic][rp.Partition]:
				op.ErrorCode = kerr.InvalidRequest.Code
			case len(rp.Records) == 0:
				op.ErrorCode = kerr.CorruptMessage.Code
				r.Log.Info("rejected record batch", zap.String("topic", rt.Topic), zap.Int32("partition", rp.Partition),
					zap.String("client_id", r.ClientID), zap.String("reason", "no records"))
			case internal(st, rt.Topic):
				// Only the coordinator writes internal topics, and not through Produce.
				op.ErrorCode = kerr.InvalidTopicException.Code
			case req.Version < 7 && zstdBatch(rp.Records):
				op.ErrorCode = kerr.UnsupportedCompressionType.Code
			default:
				jobs = append(jobs, job{topic: rt.Topic, partition: rp.Partition, records: rp.Records, out: op})
			}
			seen[rt.Topic][rp.Partition] = true
		}
	}

	// Submit every partition's batch now, in request order, on the reader goroutine: the
	// next request on this connection is ordered after them. The waits for durability run
	// after the handler returns, on the writer goroutine, when the frame can be held
	// until then; so a client that pipelines produce requests gets them into shared
	// fsyncs (or Raft rounds).
	ctx, cancel := r.timeoutCtx(req.TimeoutMillis)
	deferred := req.Acks != 0 && len(jobs) > 0 && r.holdFrame()
	waits := make([]func() (partition.ProduceResult, error), len(jobs))
	for i, j := range jobs {
		p, code := s.leaderPartition(r, j.topic, j.partition, -1)
		if code != 0 {
			j.out.ErrorCode = code
			continue
		}
		if buf, ok := withPrefixByte(r.frame, j.records); ok {
			waits[i] = p.SubmitInPlace(ctx, buf)
		} else {
			waits[i] = p.Submit(ctx, j.records)
		}
	}
	finish := func(i int) {
		j := jobs[i]
		if waits[i] == nil {
			return
		}
		res, err := waits[i]()
		if err != nil {
			j.out.ErrorCode = s.errCode(err)
			if errors.Is(err, replication.ErrOutcomeUnknown) && ctx.Err() == nil {
				// Leadership moved while the write waited (a handoff, an election). As
				// Kafka does: NOT_LEADER_OR_FOLLOWER, which names the new leader (v10+),
				// so the client resends there at once instead of after a metadata
				// refresh; an idempotent producer's resend of a write that did commit is
				// deduplicated.
				j.out.ErrorCode = kerr.NotLeaderForPartition.Code
			}
			if req.Version >= 8 {
				j.out.ErrorMessage = errMessage(err)
			}
			if code := j.out.ErrorCode; code == kerr.CorruptMessage.Code || code == kerr.InvalidRecord.Code ||
				code == kerr.UnsupportedForMessageFormat.Code || code == kerr.UnsupportedCompressionType.Code {
				r.Log.Info("rejected record batch", zap.String("topic", j.topic), zap.Int32("partition", j.partition),
					zap.String("client_id", r.ClientID), zap.Error(err))
			}
			return
		}
		j.out.BaseOffset = res.BaseOffset
		j.out.LogAppendTime = res.LogAppendTime
		j.out.LogStartOffset = res.LogStartOffset
	}
	finishAll := func() {
		defer cancel()
		defer s.produceLeaderHints(ctx, req.Version, resp)
		if len(jobs) == 1 {
			finish(0)
			return
		}
		// Partitions wait (and fsync) concurrently.
		var wg sync.WaitGroup
		for i := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					if p := recover(); p != nil {
						r.Log.Error("produce panicked", zap.String("topic", jobs[i].topic), zap.Int32("partition", jobs[i].partition),
							zap.String("client_id", r.ClientID), zap.Any("panic", p), zap.Stack("stack"))
						jobs[i].out.ErrorCode = kerr.UnknownServerError.Code
					}
				}()
				finish(i)
			}()
		}
		wg.Wait()
	}
	if deferred {
		return &deferredProduce{ProduceResponse: resp, finish: finishAll}, nil
	}
	finishAll()
	if req.Acks == 0 {
		return nil, nil
	}
	return resp, nil
}

// deferredProduce is a Produce response whose writes are submitted and not yet durable;
// the connection's writer completes it, in order, before encoding it.
type deferredProduce struct {
	*kmsg.ProduceResponse
	finish func()
}

func (d *deferredProduce) wait() { d.finish() }

// zstdBatch reports whether records is a batch whose header names the zstd codec, which
// produce requests below v7 may not use. A header that does not decode is left for
// partition.ValidateBatch to refuse.
func zstdBatch(records []byte) bool {
	h, err := segment.ParseBatchHeader(records)
	return err == nil && h.Codec() == segment.CodecZstd
}

// produceLeaderHints fills CurrentLeader, from v10 on, in every partition of resp answered
// NOT_LEADER_OR_FOLLOWER, and adds each leader named there to resp.Brokers (KIP-951).
func (s *Server) produceLeaderHints(ctx context.Context, version int16, resp *kmsg.ProduceResponse) {
	if version < 10 {
		return
	}
	st := s.ctrl.State()
	h := s.newLeaderHints(ctx)
	defer h.done()
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		t, ok := st.Topics[rt.Topic]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			if ok && rp.ErrorCode == kerr.NotLeaderForPartition.Code {
				h.fill(&rp.CurrentLeader.LeaderID, &rp.CurrentLeader.LeaderEpoch, partition.Key(t.ID, rp.Partition))
			}
		}
	}
	h.endpoints(func(id int32, host string, port int32) {
		b := kmsg.NewProduceResponseBroker()
		b.NodeID, b.Host, b.Port = id, host, port
		resp.Brokers = append(resp.Brokers, b)
	})
}
