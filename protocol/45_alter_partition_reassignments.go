package protocol

import (
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AlterPartitionReassignments: v0-1 (kafka-reassign-partitions --execute, kadm's
// AlterPartitionReassignments). A partition lives in a data group, with the group's
// members as its replicas, and moves only with its group (sluice cluster rebalance,
// remove-node). So each partition asked for is answered:
//   - no error when the replicas asked for are its replicas already, in the same order
//     (the first is the preferred leader);
//   - INVALID_REPLICA_ASSIGNMENT for other replicas, with a message naming its group and
//     the commands that move groups;
//   - for a cancellation (replicas null): NO_REASSIGNMENT_IN_PROGRESS when its group is
//     not moving, else INVALID_REPLICA_ASSIGNMENT (a group's move is not cancelled);
//   - UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist.
func init() {
	register(kmsg.AlterPartitionAssignments, 0, 1, (*Server).alterPartitionReassignments)
}

func (s *Server) alterPartitionReassignments(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.AlterPartitionAssignmentsRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	st := s.ctrl.State()
	moving := s.movingGroups()
	for _, rt := range req.Topics {
		ot := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		ot.Topic = rt.Topic
		t := st.Topics[rt.Topic]
		for _, rp := range rt.Partitions {
			op := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			op.Partition = rp.Partition
			var code *kerr.Error
			var msg string
			switch {
			case t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions):
				code = kerr.UnknownTopicOrPartition
			case rp.Replicas == nil && moving[t.Partitions[rp.Partition].Group] == nil:
				code = kerr.NoReassignmentInProgress
			case rp.Replicas == nil:
				code, msg = kerr.InvalidReplicaAssignment, "the move of data group "+t.Partitions[rp.Partition].Group+" goes on to its end: a group's move is not cancelled"
			case slices.Equal(rp.Replicas, nodeIDs(t.Partitions[rp.Partition].Replicas)):
			default:
				pa := t.Partitions[rp.Partition]
				code = kerr.InvalidReplicaAssignment
				msg = fmt.Sprintf("replicas %s asked for, %s now: ", joinIDs(rp.Replicas), joinIDs(nodeIDs(pa.Replicas)))
				if pa.Group == "" {
					msg += "a single node does not reassign partitions"
				} else {
					msg += fmt.Sprintf("a partition moves only with its data group, %s, and every partition of the group with it; 'sluice cluster rebalance' spreads the groups over the nodes, 'sluice cluster remove-node' moves them off a node", pa.Group)
				}
			}
			if code != nil {
				op.ErrorCode = code.Code
				if msg == "" {
					msg = code.Description
				}
				op.ErrorMessage = &msg
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp, nil
}

// joinIDs renders broker IDs as "[1,2,3]".
func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return "[" + strings.Join(s, ",") + "]"
}
