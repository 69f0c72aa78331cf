package protocol

import (
	"context"
	"time"
)

// leadershipNotifier is implemented by replicators that tell when a group's leader
// changes as this node sees it (replication.RaftReplicator).
type leadershipNotifier interface {
	LeadershipChanged() <-chan struct{}
}

// awaitLeadership calls done now and again at every leadership change this node sees,
// until done returns true, until passes or ctx ends, and says whether done returned true.
// done is called once more when until passes. With a replicator that tells of no
// changes (a single node's, whose leadership does not move) it is called once.
func (s *Server) awaitLeadership(ctx context.Context, until time.Time, done func() bool) bool {
	notifier, ok := s.repl.(leadershipNotifier)
	for {
		var changed <-chan struct{}
		if ok {
			changed = notifier.LeadershipChanged()
		}
		if done() {
			return true
		}
		wait := time.Until(until)
		if !ok || wait <= 0 {
			return false
		}
		timer := time.NewTimer(wait)
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return false
		}
		timer.Stop()
	}
}
