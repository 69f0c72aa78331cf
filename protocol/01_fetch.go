package protocol

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// Fetch: v4-16.
//   - No fetch sessions: SessionID is always 0, which makes clients send full fetches; a
//     request naming a session gets FETCH_SESSION_ID_NOT_FOUND.
//   - Serves committed records only (up to the high watermark); the last stable offset is
//     the high watermark (no transactions), no aborted transactions.
//   - Whole stored batches, sent from the segment files as they are (see fetchResponse);
//     partition and response MaxBytes are honoured except that the first partition with
//     data always returns at least one batch, so any record can be read.
//   - MinBytes/MaxWait long poll: the connection's writer waits on the partitions' high
//     watermarks and answers when MinBytes are there, at MaxWait, or at shutdown; the
//     reader goes on reading the requests that follow, whose responses come after.
//   - v9+ CurrentLeaderEpoch is checked. OFFSET_OUT_OF_RANGE below the log start offset or
//     past the log end offset.
//   - v13+ names topics by ID, in the request and the response; an ID not known gets
//     UNKNOWN_TOPIC_ID in each of its partitions. v14 (a tiered-storage error) and v15 (the
//     replica ID moved to ReplicaState, which consumers do not send) change nothing here.
//   - v16+ answers NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH with the partition's
//     current leader and its epoch, and lists each leader so named in NodeEndpoints
//     (KIP-951), so a consumer moves at once instead of at its next metadata refresh.
func init() { register(kmsg.Fetch, 4, 16, (*Server).fetch) }

func (s *Server) fetch(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.FetchRequest)
	if req.Version >= 7 && req.SessionID != 0 {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return resp, nil
	}
	f := &fetchPoll{s: s, r: r, req: req, maxBytes: max(int(req.MaxBytes), 1)}
	if req.MaxWaitMillis > 0 {
		f.deadline = time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	}
	fr, watched := s.readFetch(r, req, f.maxBytes)
	if f.answered(fr, watched, false) {
		return f.answer(fr), nil
	}
	// Not enough yet: wait for a high watermark to move.
	fr.release()
	f.watched = watched
	if r.conn != nil {
		// The connection's writer waits: a woken fetch is then read and written by the
		// goroutine the commit wakes, with no hand-off to another, and the reader goes on
		// reading requests (their responses follow this one).
		return &deferredFetch{fetchResponse: fr, poll: f}, nil
	}
	return f.wait(), nil
}

// fetchPoll is a Fetch waiting for MinBytes: on the partitions' high watermarks, until
// MaxWait, a failed partition, the connection's end or shutdown.
type fetchPoll struct {
	s        *Server
	r        *Request
	req      *kmsg.FetchRequest
	maxBytes int
	deadline time.Time          // zero: no waiting
	watched  []watchedPartition // the partitions and the high watermarks last read
}

// answered reports whether fr is the answer: MinBytes are there or waiting is over.
func (f *fetchPoll) answered(fr *fetchResponse, watched []watchedPartition, timedOut bool) bool {
	return fr.bytes >= int(f.req.MinBytes) || fr.failed || timedOut || f.deadline.IsZero() ||
		!time.Now().Before(f.deadline) || len(watched) == 0 || f.r.Ctx.Err() != nil || f.s.isDraining()
}

// answer completes fr, the answer: from v16 it names the current leaders of partitions
// this node does not lead.
func (f *fetchPoll) answer(fr *fetchResponse) *fetchResponse {
	if fr.failed && f.req.Version >= 16 {
		f.s.fetchLeaderHints(f.r.Ctx, fr.FetchResponse)
	}
	return fr
}

// wait waits for a watched high watermark to move (one that moved since it was read wakes
// the waiter at once), reads again, and returns the first answer.
func (f *fetchPoll) wait() *fetchResponse {
	waiter := partition.NewWaiter()
	timer := time.NewTimer(time.Until(f.deadline))
	defer timer.Stop()
	notifier, _ := f.s.repl.(leadershipNotifier)
	waitOn := make([]*partition.Partition, 0, len(f.watched))
	for {
		waitOn = waitOn[:0]
		for _, w := range f.watched {
			w.p.AddWaiter(waiter, w.hw)
			waitOn = append(waitOn, w.p)
		}
		// A partition this node stops leading (handed off, or lost) is answered at once,
		// naming its new leader, rather than when the wait is over.
		var moved <-chan struct{}
		if notifier != nil {
			moved = notifier.LeadershipChanged()
		}
		timedOut := false
		select {
		case <-waiter.C:
		case <-moved:
		case <-timer.C:
			timedOut = true // read once more, then answer
		case <-f.r.Ctx.Done():
		case <-f.s.draining:
		}
		for _, p := range waitOn {
			p.RemoveWaiter(waiter)
		}
		fr, watched := f.s.readFetch(f.r, f.req, f.maxBytes)
		if f.answered(fr, watched, timedOut) {
			return f.answer(fr)
		}
		fr.release()
		f.watched = watched
	}
}

// deferredFetch is a Fetch response still waiting for records: the connection's writer
// runs the wait, in order, then streams the answer.
type deferredFetch struct {
	*fetchResponse // the answer once wait has run; before, an empty one
	poll           *fetchPoll
}

func (d *deferredFetch) wait() { d.fetchResponse = d.poll.wait() }

func (s *Server) isDraining() bool {
	select {
	case <-s.draining:
		return true
	default:
		return false
	}
}

// watchedPartition is a partition a fetch may wait on, with the high watermark it saw.
type watchedPartition struct {
	p  *partition.Partition
	hw int64
}

// readFetch builds one answer to req from what is committed now.
func (s *Server) readFetch(r *Request, req *kmsg.FetchRequest, maxBytes int) (*fetchResponse, []watchedPartition) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	fr := &fetchResponse{FetchResponse: resp, records: make([][]*log.ReadResult, len(req.Topics))}
	var watched []watchedPartition
	budget := maxBytes
	var names []string // v13+: the topics' names, "" for an ID not known
	if req.Version >= 13 {
		names = topicNames(s.ctrl.State(), req.Topics)
	}
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		ot := &resp.Topics[i]
		*ot = kmsg.NewFetchResponseTopic()
		topic := rt.Topic
		if req.Version >= 13 {
			topic = names[i]
			ot.TopicID = rt.TopicID
		} else {
			ot.Topic = rt.Topic
		}
		ot.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		fr.records[i] = make([]*log.ReadResult, len(rt.Partitions))
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			op := &ot.Partitions[j]
			*op = kmsg.NewFetchResponseTopicPartition()
			op.Partition = rp.Partition
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
			epoch := int32(-1)
			if req.Version >= 9 {
				epoch = rp.CurrentLeaderEpoch
			}
			var p *partition.Partition
			code := kerr.UnknownTopicID.Code
			if req.Version < 13 || topic != "" {
				p, code = s.leaderPartition(r, topic, rp.Partition, epoch)
			}
			if code == 0 && req.Version >= 13 && p.TopicID() != rt.TopicID {
				// The name was given to a new topic since it was looked up.
				code = kerr.UnknownTopicID.Code
			}
			if code != 0 {
				op.ErrorCode = code
				fr.failed = true
				continue
			}
			hw := p.HighWatermark()
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = hw, hw, p.LogStartOffset()
			watched = append(watched, watchedPartition{p: p, hw: hw})
			limit := min(int(rp.PartitionMaxBytes), budget)
			if limit <= 0 && fr.bytes > 0 {
				continue
			}
			rr, err := p.Read(rp.FetchOffset, max(limit, 1))
			if err != nil {
				op.ErrorCode = s.errCode(err)
				fr.failed = true
				continue
			}
			if rr == nil {
				continue
			}
			n := rr.Len()
			if n == 0 || (fr.bytes > 0 && n > limit) {
				// Only the first partition with data may exceed the limits.
				rr.Release()
				continue
			}
			fr.records[i][j] = rr
			fr.bytes += n
			budget -= n
		}
	}
	return fr, watched
}

// topicNames returns the names of the topics the request topics name by ID, "" for an ID
// not known, in one pass over the cluster's topics.
func topicNames(st *replication.ClusterState, topics []kmsg.FetchRequestTopic) []string {
	byID := make(map[[16]byte]string, len(topics))
	for i := range topics {
		byID[topics[i].TopicID] = ""
	}
	left := len(byID)
	for name, t := range st.Topics {
		if left == 0 {
			break
		}
		if n, ok := byID[t.ID]; ok && n == "" {
			byID[t.ID] = name
			left--
		}
	}
	names := make([]string, len(topics))
	for i := range topics {
		names[i] = byID[topics[i].TopicID]
	}
	return names
}

// fetchLeaderHints fills CurrentLeader in every partition of resp answered
// NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH whose leader is known, and lists each
// leader so named in resp.Brokers, the NodeEndpoints (KIP-951, Fetch v16+).
func (s *Server) fetchLeaderHints(ctx context.Context, resp *kmsg.FetchResponse) {
	h := s.newLeaderHints(ctx)
	defer h.done()
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			if rp.ErrorCode == kerr.NotLeaderForPartition.Code || rp.ErrorCode == kerr.FencedLeaderEpoch.Code {
				h.fill(&rp.CurrentLeader.LeaderID, &rp.CurrentLeader.LeaderEpoch, partition.Key(rt.TopicID, rp.Partition))
			}
		}
	}
	h.endpoints(func(id int32, host string, port int32) {
		b := kmsg.NewFetchResponseBroker()
		b.NodeID, b.Host, b.Port = id, host, port
		resp.Brokers = append(resp.Brokers, b)
	})
}
