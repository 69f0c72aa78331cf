package cli

import "testing"

// The PARTITIONS line names what needs a look: partitions without a leader,
// under-replicated ones, and those led by another replica than their preferred one.
func TestPartitionSummary(t *testing.T) {
	for _, tc := range []struct {
		parts []leaderOut
		want  string
	}{
		{[]leaderOut{{Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}}, "1 (all led, all replicas in sync)"},
		{[]leaderOut{{Leader: 2, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}}, "1 (all led, all replicas in sync, 1 not led by their preferred replica)"},
		{[]leaderOut{
			{Leader: -1, Replicas: []int32{1, 2}, ISR: nil},
			{Leader: 2, Replicas: []int32{1, 2}, ISR: []int32{2}},
			{Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}},
		}, "3 (1 without a leader, 2 under-replicated, 1 not led by their preferred replica)"},
	} {
		s := summarize(tc.parts)
		if got := s.cell(); got != tc.want {
			t.Errorf("summary of %+v: %q, want %q", tc.parts, got, tc.want)
		}
	}
}
