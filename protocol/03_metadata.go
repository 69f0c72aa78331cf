package protocol

import (
	"context"
	"errors"
	"net"
	"slices"
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
//   - The leaders named are asked whether their processes are there (probeLeaders): a
//     client whose connection to a leader was just reset may ask before this node saw
//     that leader go.
//   - A partition electing a leader (its leader's process just went away) is described
//     once it has one, waiting up to electionWait; then LEADER_NOT_AVAILABLE.
//   - No authorized operations are computed (the kmsg defaults are sent).
func init() { register(kmsg.Metadata, 0, 12, (*Server).metadata) }

func (s *Server) metadata(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	st := s.ctrl.State()

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
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

	// Topics naming a leader found gone, or with a partition without a leader, are
	// described again while any of their partitions is electing one.
	redo := s.probeLeaders(r.Ctx, resp)
	for i, mt := range resp.Topics {
		for _, p := range mt.Partitions {
			if mt.Topic != nil && p.ErrorCode == kerr.LeaderNotAvailable.Code {
				redo[i] = true
			}
		}
	}
	s.awaitElections(r.Ctx, resp, redo)

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

// nodeProber is implemented by replicators that can ask other nodes' processes whether
// they are there (replication.RaftReplicator).
type nodeProber interface {
	ProbeNodes(ctx context.Context, nodes []replication.NodeID) (gone []replication.NodeID)
}

// probeLeaders asks the processes of the leaders that resp names whether they are there,
// and returns the indexes of the topics naming one that is gone (described again, their
// partitions are electing a leader, or led by a new one). A process killed a moment ago
// closes its connections one by one: a client may see its own reset and ask here before
// this node has seen its connections to that process close. Told the old leader, a
// client finds it refusing connections and, by its own rules, may wait seconds before it
// asks again (franz-go: 5 s).
func (s *Server) probeLeaders(ctx context.Context, resp *kmsg.MetadataResponse) map[int]bool {
	namingGone := map[int]bool{}
	prober, ok := s.repl.(nodeProber)
	if !ok {
		return namingGone
	}
	var named []replication.NodeID
	for _, mt := range resp.Topics {
		for _, p := range mt.Partitions {
			if id := replication.NodeID(p.Leader); p.Leader >= 0 && !slices.Contains(named, id) {
				named = append(named, id)
			}
		}
	}
	gone := prober.ProbeNodes(ctx, named)
	for i, mt := range resp.Topics {
		if mt.Topic != nil && slices.ContainsFunc(mt.Partitions, func(p kmsg.MetadataResponseTopicPartition) bool {
			return slices.Contains(gone, replication.NodeID(p.Leader))
		}) {
			namingGone[i] = true
		}
	}
	return namingGone
}

// electionWait bounds how long a Metadata request waits for the partitions it describes
// that are electing a leader (replication.Leadership.Electing): their leader's process
// went away moments ago and the others stand for election at once. Clients given no
// leader ask for metadata again only after a while (franz-go: 5 s), so a short wait here
// sends them to the new leader instead.
const electionWait = time.Second

// awaitElections describes again the topics of resp at the indexes of electing (each
// with a partition without a leader, or naming one whose process is gone), at once, then
// as leadership changes and for up to electionWait, until none has a partition electing
// a leader.
func (s *Server) awaitElections(ctx context.Context, resp *kmsg.MetadataResponse, electing map[int]bool) {
	if len(electing) == 0 {
		return
	}
	s.awaitLeadership(ctx, time.Now().Add(electionWait), func() bool {
		st := s.ctrl.State()
		for i := range electing {
			mt := resp.Topics[i]
			t, ok := st.Topics[*mt.Topic]
			if !ok || t.ID != mt.TopicID {
				delete(electing, i)
				continue
			}
			var still bool
			resp.Topics[i], still = s.describeTopicElecting(st, t)
			if !still {
				delete(electing, i)
			}
		}
		return len(electing) == 0
	})
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
	mt, _ := s.describeTopicElecting(st, t)
	return mt
}

// describeTopicElecting is describeTopic, and says whether a partition is electing a
// leader.
func (s *Server) describeTopicElecting(st *replication.ClusterState, t *replication.Topic) (mt kmsg.MetadataResponseTopic, electing bool) {
	alive := make(map[replication.NodeID]bool, len(st.Nodes))
	for _, n := range st.Nodes {
		alive[n.ID] = n.Alive
	}
	mt = kmsg.NewMetadataResponseTopic()
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
			electing = electing || ld.Electing
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
	return mt, electing
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
