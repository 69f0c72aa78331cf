package protocol

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// maxTopicNameLen is Kafka's limit (a partition directory name must fit in 255 bytes).
const maxTopicNameLen = 249

// errInvalidTopicName is returned by validTopicName.
var errInvalidTopicName = errors.New("invalid topic name")

// validTopicName applies Kafka's rules: 1-249 of [a-zA-Z0-9._-], not "." or "..".
func validTopicName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w %q", errInvalidTopicName, name)
	}
	if len(name) > maxTopicNameLen {
		return fmt.Errorf("%w: longer than %d characters", errInvalidTopicName, maxTopicNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w %q: character %q not in [a-zA-Z0-9._-]", errInvalidTopicName, name, c)
		}
	}
	return nil
}

// topicReadyTimeout bounds how long a request that created topics waits for their
// partitions to be open and led here before answering.
const topicReadyTimeout = 5 * time.Second

// waitTopicsReady waits until every partition of the named topics has a known leader and,
// where that leader is this node, is open and ready for writes: led here by the replicator
// and served by the partition manager's copy (a Raft data group led here reports its
// partitions led here before the manager has opened and registered them). It reports
// whether they all became ready before the timeout.
func (s *Server) waitTopicsReady(ctx context.Context, names []string) bool {
	return s.pollUntil(ctx, func() bool { return s.topicsReady(names) })
}

// pollUntil checks cond every 2 ms until it holds (true), or until ctx ends, the server
// drains or topicReadyTimeout passes (false).
func (s *Server) pollUntil(ctx context.Context, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-s.draining:
			return false
		case <-tick.C:
		}
	}
	return true
}

func (s *Server) topicsReady(names []string) bool {
	st := s.ctrl.State()
	for _, name := range names {
		t, ok := st.Topics[name]
		if !ok {
			return false
		}
		for _, pa := range t.Partitions {
			ld := s.repl.Leadership(partition.Key(t.ID, pa.Partition))
			if ld.Leader < 0 || (int32(ld.Leader) == s.cfg.NodeID && !ld.Local) {
				return false
			}
			if ld.Local {
				if p, ok := s.parts.Get(name, pa.Partition); !ok || p.TopicID() != t.ID || !p.Leadership().Local {
					return false
				}
			}
		}
	}
	return true
}

// internal reports whether topic is an internal topic of st, such as __consumer_offsets.
func internal(st *replication.ClusterState, topic string) bool {
	t := st.Topics[topic]
	return t != nil && t.Internal
}
