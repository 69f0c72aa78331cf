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

// maxAdminWait caps how long CreateTopics, CreatePartitions and DeleteTopics wait for
// their change to take effect here (the request's TimeoutMillis, 60 s by default in kmsg):
// the request holds a handler meanwhile.
const maxAdminWait = 60 * time.Second

// adminWait is how long a request with timeoutMillis waits: 0 (do not wait) for 0 or less.
func adminWait(timeoutMillis int32) time.Duration {
	return min(time.Duration(max(timeoutMillis, 0))*time.Millisecond, maxAdminWait)
}

// waitTopicsReady waits until every partition of the named topics has a known leader and,
// where that leader is this node, is open and ready for writes: led here by the replicator
// and served by the partition manager's copy (a Raft data group led here reports its
// partitions led here before the manager has opened and registered them). It reports
// whether they all became ready before the timeout.
func (s *Server) waitTopicsReady(ctx context.Context, names []string) bool {
	return s.pollUntil(ctx, func() bool { return s.topicsReady(names) })
}

// waitCreated waits, for CreateTopics and CreatePartitions, until the partitions of the
// named topics (just created or grown) are ready, and returns the topics that are not.
func (s *Server) waitCreated(ctx context.Context, timeoutMillis int32, names []string) map[string]bool {
	return waitEach(s, ctx, adminWait(timeoutMillis), names, func(n string) string { return n }, s.topicsReady)
}

// waitEach waits, for wait at most, until done holds for all of items, and returns the
// keys of the items it does not hold for: Kafka answers those REQUEST_TIMED_OUT, the change
// made but not in effect within the request's timeout. A wait of 0 means "do not wait":
// every item is then reported, as Kafka does.
func waitEach[T any, K comparable](s *Server, ctx context.Context, wait time.Duration, items []T, key func(T) K, done func([]T) bool) map[K]bool {
	pending := make(map[K]bool)
	if wait > 0 {
		ctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if s.pollUntil(ctx, func() bool { return done(items) }) {
			return pending
		}
	}
	for _, it := range items {
		if wait <= 0 || !done([]T{it}) {
			pending[key(it)] = true
		}
	}
	return pending
}

// errTimedOut says why waitEach reported an item: what was done, and what it did not wait
// for (timeout 0 or less) or what did not happen within the request's timeout.
func errTimedOut(timeoutMillis int32, done, awaited, notHappened string) error {
	if timeoutMillis <= 0 {
		return fmt.Errorf("%s; not waiting for %s (timeout %d ms)", done, awaited, timeoutMillis)
	}
	return fmt.Errorf("%s, but %s within %v", done, notHappened, adminWait(timeoutMillis))
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
