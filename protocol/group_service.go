package protocol

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// The consumer group coordinator runs as the "group" service: it keeps its state in the
// internal topic __consumer_offsets, which the service creates (compacted, internal) once
// the controller is ready, and it loads the partitions of that topic this node leads.
func init() { registerService(groupServiceName, startGroupService) }

const groupServiceName = "group"

type groupService struct {
	coord *group.Coordinator
	stop  context.CancelFunc
	done  chan struct{}
}

// groups returns the server's coordinator.
func (s *Server) groups() *group.Coordinator {
	return s.service(groupServiceName).(*groupService).coord
}

func startGroupService(s *Server) (Service, error) {
	cfg := s.cfg.Groups
	cfg.NodeID = s.cfg.NodeID
	if cfg.Partitions <= 0 {
		cfg.Partitions = group.DefaultPartitions
	}
	if t, ok := s.ctrl.State().Topics[group.Topic]; ok && len(t.Partitions) > 0 {
		// The topic decides: a flag changed after creation does not move groups.
		cfg.Partitions = int32(len(t.Partitions))
	}
	ctx, stop := context.WithCancel(context.Background())
	svc := &groupService{
		coord: group.New(cfg, &groupLog{s: s}, s.log.Named("group")),
		stop:  stop,
		done:  make(chan struct{}),
	}
	go svc.follow(ctx, s, cfg.Partitions)
	return svc, nil
}

// follow creates __consumer_offsets when it is missing and nudges the coordinator at every
// metadata change and every leadership change the replicator reports, so that partitions
// this node comes to lead are loaded at once and those it loses are dropped at once.
func (g *groupService) follow(ctx context.Context, s *Server, partitions int32) {
	defer close(g.done)
	if err := s.ctrl.WaitReady(ctx); err != nil {
		return
	}
	notifier, _ := s.repl.(leadershipNotifier)
	created := false
	for {
		changed := s.ctrl.Changed()
		var leaders <-chan struct{}
		if notifier != nil {
			leaders = notifier.LeadershipChanged()
		}
		if _, ok := s.ctrl.State().Topics[group.Topic]; !ok && !created {
			_, err := s.ctrl.CreateTopic(ctx, replication.TopicSpec{
				Name:              group.Topic,
				Partitions:        partitions,
				ReplicationFactor: -1,
				Configs:           map[string]string{"cleanup.policy": "compact"},
				Internal:          true,
			})
			switch {
			case err == nil:
				s.log.Info("created the consumer offsets topic", zap.String("topic", group.Topic), zap.Int32("partitions", partitions))
				created = true
			case errors.Is(err, replication.ErrTopicExists):
				created = true
			case ctx.Err() != nil:
				return
			default:
				s.log.Warn("creating the consumer offsets topic failed; retrying", zap.Error(err))
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return
				}
				continue
			}
		}
		g.coord.Nudge()
		select {
		case <-changed:
		case <-leaders:
		case <-ctx.Done():
			return
		}
	}
}

func (g *groupService) Close() error {
	g.stop()
	<-g.done
	return g.coord.Close()
}

// groupLog is the coordinator's view of __consumer_offsets: the partitions this node holds.
type groupLog struct{ s *Server }

func (l *groupLog) partition(p int32) (*partition.Partition, error) {
	part, ok := l.s.parts.Get(group.Topic, p)
	if !ok {
		return nil, fmt.Errorf("%s partition %d is not open here: %w", group.Topic, p, group.ErrNotLeader)
	}
	return part, nil
}

// Append appends only while this node leads p in epoch: checked before the batch is
// submitted and again once it is committed. The leader epoch is the Raft term, and a node's
// term only grows, so the same term on both sides means this node led p throughout and the
// batch was committed in that term, never under a later leadership of this node whose
// groups the coordinator has not loaded.
func (l *groupLog) Append(ctx context.Context, p, epoch int32, batch []byte) (int64, error) {
	part, err := l.partition(p)
	if err != nil {
		return 0, err
	}
	if ld := part.Leadership(); !ld.Local || ld.Epoch != epoch {
		return 0, fmt.Errorf("%s partition %d: led by %d in epoch %d (local %v), not here in epoch %d: %w",
			group.Topic, p, ld.Leader, ld.Epoch, ld.Local, epoch, group.ErrNotLeader)
	}
	res, err := part.Produce(ctx, batch)
	if err != nil {
		if errors.Is(err, replication.ErrNotLeader) || errors.Is(err, partition.ErrClosed) ||
			errors.Is(err, replication.ErrOutcomeUnknown) {
			return 0, fmt.Errorf("%w: %w", group.ErrNotLeader, err)
		}
		return 0, err
	}
	if ld := part.Leadership(); ld.Epoch != epoch {
		return 0, fmt.Errorf("%s partition %d: leader epoch %d when the append of epoch %d completed: %w",
			group.Topic, p, ld.Epoch, epoch, group.ErrNotLeader)
	}
	return res.BaseOffset, nil
}

func (l *groupLog) Bounds(ctx context.Context, p int32) (start, hw int64, err error) {
	part, err := l.partition(p)
	if err != nil {
		return 0, 0, err
	}
	return part.LogStartOffset(), part.HighWatermark(), nil
}

func (l *groupLog) Read(ctx context.Context, p int32, from int64, maxBytes int) ([]byte, error) {
	part, err := l.partition(p)
	if err != nil {
		return nil, err
	}
	if start := part.LogStartOffset(); from < start {
		from = start
	}
	rr, err := part.Read(from, maxBytes)
	if err != nil || rr == nil {
		return nil, err
	}
	defer rr.Release()
	return rr.Bytes()
}

func (l *groupLog) Leader(p int32) group.Leadership {
	if part, ok := l.s.parts.Get(group.Topic, p); ok {
		ld := part.Leadership()
		return group.Leadership{Node: int32(ld.Leader), Epoch: ld.Epoch, Local: ld.Local}
	}
	t, ok := l.s.ctrl.State().Topics[group.Topic]
	if !ok || int(p) >= len(t.Partitions) {
		return group.Leadership{Node: -1, Epoch: -1}
	}
	ld := l.s.repl.Leadership(partition.Key(t.ID, p))
	return group.Leadership{Node: int32(ld.Leader), Epoch: ld.Epoch}
}

// clientHost is how Kafka shows a member's address: "/" and its IP.
func clientHost(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return "/" + host
	}
	return "/" + remote
}
