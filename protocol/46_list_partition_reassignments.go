package protocol

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/replication"
)

// ListPartitionReassignments: v0 (kafka-reassign-partitions --verify, kadm's
// ListPartitionReassignments, Kafka UIs).
//   - Partitions move with their data group (sluice cluster rebalance, remove-node): a
//     partition is being reassigned while its group moves. Replicas are the group's
//     members and the former members that still keep their copy, AddingReplicas the
//     members still copying, RemovingReplicas the former members.
//   - Topics null: every partition being reassigned. A partition asked for that is not
//     being reassigned, or does not exist, is left out, as Kafka does.
//   - A single node never reassigns.
func init() { register(kmsg.ListPartitionReassignments, 0, 0, (*Server).listPartitionReassignments) }

func (s *Server) listPartitionReassignments(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.ListPartitionReassignmentsRequest)
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	st := s.ctrl.State()
	moving := s.movingGroups()
	asked := askedPartitions(st, req.Topics, func(t *kmsg.ListPartitionReassignmentsRequestTopic) (string, []int32) { return t.Topic, t.Partitions })
	for _, rt := range asked {
		t := st.Topics[rt.topic]
		if t == nil {
			continue
		}
		ot := kmsg.NewListPartitionReassignmentsResponseTopic()
		ot.Topic = rt.topic
		for _, index := range rt.partitions {
			if index < 0 || int(index) >= len(t.Partitions) {
				continue
			}
			g := moving[t.Partitions[index].Group]
			if g == nil {
				continue
			}
			op := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
			op.Partition = index
			op.Replicas = nodeIDs(append(slices.Clone(g.Members), g.Removing...))
			op.AddingReplicas = nodeIDs(g.Joining)
			op.RemovingReplicas = nodeIDs(g.Removing)
			ot.Partitions = append(ot.Partitions, op)
		}
		if len(ot.Partitions) > 0 {
			resp.Topics = append(resp.Topics, ot)
		}
	}
	return resp, nil
}

// movingGroups returns the data groups whose members are changing, by name; none on a
// single node.
func (s *Server) movingGroups() map[string]*replication.DataGroup {
	gl, ok := s.ctrl.(replication.GroupLister)
	if !ok {
		return nil
	}
	out := map[string]*replication.DataGroup{}
	for name, g := range gl.Groups() {
		if len(g.Joining) > 0 || len(g.Removing) > 0 {
			out[name] = g
		}
	}
	return out
}

// nodeIDs converts node IDs to Kafka broker IDs; never nil.
func nodeIDs(ids []replication.NodeID) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}
