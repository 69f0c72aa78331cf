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

// topicReadyTimeout bounds how long Metadata waits for the topics it created.
const topicReadyTimeout = 5 * time.Second

// maxCreateWait caps the wait of CreateTopics and CreatePartitions for their new
// partitions (the request's TimeoutMillis, 60 s by default in kmsg): the request holds a
// handler meanwhile.
const maxCreateWait = 60 * time.Second

// maxDeleteWait caps, likewise, the wait of DeleteTopics for the deleted topics to be gone.
const maxDeleteWait = maxCreateWait

// waitTopicsReady waits until every partition of the named topics has a known leader and,
// where that leader is this node, is open and ready for writes: led here by the replicator
// and served by the partition manager's copy (a Raft data group led here reports its
// partitions led here before the manager has opened and registered them). It reports
// whether they all became ready before the timeout.
func (s *Server) waitTopicsReady(ctx context.Context, names []string) bool {
	return s.pollUntil(ctx, func() bool { return s.topicsReady(names) })
}

// waitCreated waits, for CreateTopics and CreatePartitions, until the partitions of the
// named topics (just created or grown) are ready, for timeoutMillis at most (capped at
// maxCreateWait), and returns the topics that are not. Kafka answers those
// REQUEST_TIMED_OUT: done, but not ready within the request's timeout. A timeout of 0 or
// less means "do not wait": every topic is then reported, as Kafka does.
func (s *Server) waitCreated(ctx context.Context, timeoutMillis int32, names []string) map[string]bool {
	notReady := make(map[string]bool)
	if timeoutMillis <= 0 {
		for _, name := range names {
			notReady[name] = true
		}
		return notReady
	}
	ctx, cancel := context.WithTimeout(ctx, min(time.Duration(timeoutMillis)*time.Millisecond, maxCreateWait))
	defer cancel()
	if s.waitTopicsReady(ctx, names) {
		return notReady
	}
	for _, name := range names {
		if !s.topicsReady([]string{name}) {
			notReady[name] = true
		}
	}
	return notReady
}

// errNotReady says why waitCreated reported a topic: done (what) but not ready.
func errNotReady(what string, timeoutMillis int32) error {
	if timeoutMillis <= 0 {
		return fmt.Errorf("%s; not waiting for its new partitions to be ready (timeout %d ms)", what, timeoutMillis)
	}
	return fmt.Errorf("%s, but its new partitions were not ready within %v", what, min(time.Duration(timeoutMillis)*time.Millisecond, maxCreateWait))
}

// pollUntil checks cond every 2 ms until it holds (true), or until ctx ends or the server
// drains (false).
func (s *Server) pollUntil(ctx context.Context, cond func() bool) bool {
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
