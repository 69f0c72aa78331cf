package protocol

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// ElectLeaders: v0-2 (kafka-leader-election, kadm's ElectLeaders). Any node answers.
//   - PREFERRED (v0 knows no other): a partition's preferred leader is its first
//     replica. The partitions of one data group share its leader, so they change leader
//     together: each answers with its group's outcome. ELECTION_NOT_NEEDED when the
//     preferred replica leads already; PREFERRED_LEADER_NOT_AVAILABLE when it cannot lead
//     now (down, not yet a voter of the group, or the group has no leader). The answer
//     comes once this node sees the preferred replica lead; REQUEST_TIMED_OUT after
//     TimeoutMillis.
//   - UNCLEAN: ELECTION_NOT_NEEDED for a partition with a leader, else
//     ELIGIBLE_LEADERS_NOT_AVAILABLE. Raft elects a leader by itself once a majority of
//     the replicas is alive, and never one that misses acknowledged records.
//   - Topics null: every partition.
//   - A single node leads every partition: ELECTION_NOT_NEEDED.
func init() { register(kmsg.ElectLeaders, 0, 2, (*Server).electLeaders) }

const (
	electPreferred = 0
	electUnclean   = 1
)

func (s *Server) electLeaders(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.ElectLeadersRequest)
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	ctx, cancel := r.timeoutCtx(req.TimeoutMillis)
	defer cancel()
	st := s.ctrl.State()
	topics := askedPartitions(st, req.Topics, func(t *kmsg.ElectLeadersRequestTopic) (string, []int32) { return t.Topic, t.Partitions })

	// One election per data group, all at once; every partition of the group gets its
	// outcome.
	type election struct {
		key string
		err error
	}
	elector, canElect := s.repl.(replication.PreferredElector)
	elections := map[string]*election{}
	var results []*kmsg.ElectLeadersResponseTopicPartition
	var groups []string // of results, "" where the outcome is set already
	for _, rt := range topics {
		ot := kmsg.NewElectLeadersResponseTopic()
		ot.Topic = rt.topic
		ot.Partitions = make([]kmsg.ElectLeadersResponseTopicPartition, len(rt.partitions))
		resp.Topics = append(resp.Topics, ot)
		t := st.Topics[rt.topic]
		for i, index := range rt.partitions {
			op := &resp.Topics[len(resp.Topics)-1].Partitions[i]
			*op = kmsg.NewElectLeadersResponseTopicPartition()
			op.Partition = index
			results, groups = append(results, op), append(groups, "")
			if t == nil || index < 0 || int(index) >= len(t.Partitions) {
				setElectError(op, kerr.UnknownTopicOrPartition, "")
				continue
			}
			key := partition.Key(t.ID, index)
			leader := s.repl.Leadership(key).Leader
			switch {
			case req.ElectionType != electPreferred && req.ElectionType != electUnclean:
				setElectError(op, kerr.InvalidRequest, "unknown election type")
			case req.ElectionType == electUnclean && leader < 0:
				setElectError(op, kerr.EligibleLeadersNotAvailable, "no leader: Raft elects one once a majority of the replicas is alive, never one that misses acknowledged records")
			case req.ElectionType == electUnclean, !canElect:
				setElectError(op, kerr.ElectionNotNeeded, "")
			default:
				g := t.Partitions[index].Group
				if elections[g] == nil {
					elections[g] = &election{key: key}
				}
				groups[len(groups)-1] = g
			}
		}
	}
	var wg sync.WaitGroup
	for _, e := range elections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.err = elector.ElectPreferred(ctx, e.key)
		}()
	}
	wg.Wait()
	for i, op := range results {
		if g := groups[i]; g != "" && elections[g].err != nil {
			op.ErrorCode = s.errCode(elections[g].err)
			msg := elections[g].err.Error()
			op.ErrorMessage = &msg
		}
	}
	return resp, nil
}

// setElectError sets a partition's outcome to code, with msg (or the code's own text).
func setElectError(op *kmsg.ElectLeadersResponseTopicPartition, code *kerr.Error, msg string) {
	op.ErrorCode = code.Code
	if msg == "" {
		msg = code.Description
	}
	op.ErrorMessage = &msg
}
