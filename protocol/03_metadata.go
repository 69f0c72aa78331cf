package protocol

import (
	"context"
	"errors"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// Metadata: v0-12.
//   - All topics for a null topic list (v1+) or an empty one (v0).
//   - Unknown topics are created with the default partition count when auto-creation is on
//     (the server's setting, and the request's AllowAutoTopicCreation from v4); the
//     response then describes them once this node has opened their partitions.
//   - v10+: topics may be named by ID alone; an unknown ID gets UNKNOWN_TOPIC_ID.
//   - Brokers are the live nodes. ISR is the live replicas; OfflineReplicas (v5+) the rest.
//   - No authorized operations are computed (the kmsg defaults are sent).
func init() { register(kmsg.Metadata, 0, 12, (*Server).metadata) }

func (s *Server) metadata(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	st := s.ctrl.State()

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if s.awaitElections(r.Ctx, st, all, req.Topics) {
		st = s.ctrl.State()
	}
	if all {
		names := make([]string, 0, len(st.Topics))
		for name := range st.Topics {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			resp.Topics = append(resp.Topics, s.describeTopic(st, st.Topics[name]))
		}
	} else {
		autoCreate := s.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
		var created []string
		for _, rt := range req.Topics {
			if rt.Topic == nil {
				resp.Topics = append(resp.Topics, s.topicByID(st, rt.TopicID))
				continue
			}
			name := *rt.Topic
			if t, ok := st.Topics[name]; ok {
				resp.Topics = append(resp.Topics, s.describeTopic(st, t))
				continue
			}
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = kmsg.StringPtr(name)
			switch {
			case validTopicName(name) != nil:
				mt.ErrorCode = kerr.InvalidTopicException.Code
			case !autoCreate:
				mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				_, err := s.ctrl.CreateTopic(r.Ctx, replication.TopicSpec{
					Name: name, Partitions: s.cfg.DefaultPartitions, ReplicationFactor: -1,
				})
				if err != nil && !errors.Is(err, replication.ErrTopicExists) {
					r.Log.Warn("auto-create topic failed", zap.String("topic", name), zap.Error(err))
					mt.ErrorCode = s.errCode(err)
					break
				}
				r.Log.Info("auto-created topic", zap.String("topic", name),
					zap.Int32("partitions", s.cfg.DefaultPartitions), zap.String("client_id", r.ClientID))
				created = append(created, name)
				mt.ErrorCode = kerr.LeaderNotAvailable.Code
			}
			resp.Topics = append(resp.Topics, mt)
		}
		if len(created) > 0 {
			// Describe what was just created once its partitions can take writes; a client
			// that still races us gets LEADER_NOT_AVAILABLE and asks again.
			ctx, cancel := context.WithTimeout(r.Ctx, topicReadyTimeout)
			ready := s.waitTopicsReady(ctx, created)
			cancel()
			if ready {
				st = s.ctrl.State()
				for i, mt := range resp.Topics {
					if mt.Topic == nil || mt.ErrorCode != kerr.LeaderNotAvailable.Code {
						continue
					}
					if t, ok := st.Topics[*mt.Topic]; ok {
						resp.Topics[i] = s.describeTopic(st, t)
					}
				}
			}
		}
	}

	for _, n := range st.Nodes {
		if !n.Alive {
			continue
		}
		host, port := splitHostPort(n.KafkaAddr)
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = int32(n.ID), host, port
		resp.Brokers = append(resp.Brokers, b)
	}
	if req.Version >= 2 {
		resp.ClusterID = kmsg.StringPtr(st.ClusterID)
	}
	resp.ControllerID = int32(st.ControllerID)
	return resp, nil
}

// electionWait bounds how long a Metadata request waits for the partitions it describes
// that are electing a leader (replication.Leadership.Electing): their leader's process
// went away moments ago and the others stand for election at once. Clients given no
// leader ask for metadata again only after a while (franz-go: 5 s), so a short wait here
// sends them to the new leader instead.
const electionWait = time.Second

// awaitElections waits, up to electionWait, until no partition of the topics asked for
// (every topic when all) is electing a leader. It says whether it waited.
func (s *Server) awaitElections(ctx context.Context, st *replication.ClusterState, all bool, topics []kmsg.MetadataRequestTopic) bool {
	electing := func() bool {
		check := func(t *replication.Topic) bool {
			for _, pa := range t.Partitions {
				if s.repl.Leadership(partition.Key(t.ID, pa.Partition)).Electing {
					return true
				}
			}
			return false
		}
		if all {
			for _, t := range st.Topics {
				if check(t) {
					return true
				}
			}
			return false
		}
		for _, rt := range topics {
			for _, t := range st.Topics {
				if (rt.Topic != nil && *rt.Topic == t.Name || rt.Topic == nil && rt.TopicID == t.ID) && check(t) {
					return true
				}
			}
		}
		return false
	}
	notifier, ok := s.repl.(leadershipNotifier)
	if !ok {
		return false
	}
	var timeout <-chan time.Time
	for waited := false; ; waited = true {
		changed := notifier.LeadershipChanged()
		if !electing() {
			return waited
		}
		if timeout == nil {
			timer := time.NewTimer(electionWait)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case <-changed:
		case <-timeout:
			return true
		case <-ctx.Done():
			return true
		}
	}
}

// topicByID describes the topic with ID id, or answers UNKNOWN_TOPIC_ID.
func (s *Server) topicByID(st *replication.ClusterState, id [16]byte) kmsg.MetadataResponseTopic {
	for _, t := range st.Topics {
		if t.ID == id {
			return s.describeTopic(st, t)
		}
	}
	mt := kmsg.NewMetadataResponseTopic()
	mt.TopicID = id
	mt.ErrorCode = kerr.UnknownTopicID.Code
	return mt
}

// describeTopic fills a topic's metadata: its partitions with leader, epoch and replicas.
func (s *Server) describeTopic(st *replication.ClusterState, t *replication.Topic) kmsg.MetadataResponseTopic {
	alive := make(map[replication.NodeID]bool, len(st.Nodes))
	for _, n := range st.Nodes {
		alive[n.ID] = n.Alive
	}
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(t.Name)
	mt.TopicID = t.ID
	mt.IsInternal = t.Internal
	mt.Partitions = make([]kmsg.MetadataResponseTopicPartition, 0, len(t.Partitions))
	for _, pa := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = pa.Partition
		ld := s.repl.Leadership(partition.Key(t.ID, pa.Partition))
		mp.Leader = int32(ld.Leader)
		mp.LeaderEpoch = ld.Epoch
		if ld.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mp.Replicas = make([]int32, 0, len(pa.Replicas))
		mp.ISR = make([]int32, 0, len(pa.Replicas))
		for _, id := range pa.Replicas {
			mp.Replicas = append(mp.Replicas, int32(id))
			if alive[id] {
				mp.ISR = append(mp.ISR, int32(id))
			} else {
				mp.OfflineReplicas = append(mp.OfflineReplicas, int32(id))
			}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// splitHostPort splits an advertised address; a malformed one gives port -1.
func splitHostPort(addr string) (string, int32) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, -1
	}
	port, err := strconv.ParseInt(portStr, 10, 32)
	if err != nil {
		return host, -1
	}
	return host, int32(port)
}
