package replication

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Placement: a topic with replication factor RF on N nodes uses T = ceil(G*N/RF) data
// groups (G = groups per node), so every node is a member of about G groups of each factor
// in use and the preferred leader of about G/RF of them: leadership spreads evenly. Group
// j's members are the window of RF consecutive nodes (in ID order) starting at node j mod N,
// rotated by j/N so that the groups sharing one window have different preferred leaders.
// A partition goes to the group of its topic's factor carrying the fewest partitions.

// planGroups returns the data groups for replication factor rf over nodes (sorted IDs).
func planGroups(nodes []NodeID, rf, perNode int) []*DataGroup {
	n := len(nodes)
	if n == 0 || rf <= 0 || rf > n {
		return nil
	}
	if perNode < 1 {
		perNode = 1
	}
	t := (perNode*n + rf - 1) / rf
	t = min(t, n*rf)
	groups := make([]*DataGroup, 0, t)
	for j := range t {
		w, r := j%n, (j/n)%rf
		members := make([]NodeID, rf)
		for k := range rf {
			members[k] = nodes[(w+(k+r)%rf)%n]
		}
		groups = append(groups, &DataGroup{Name: groupName(members), Members: members, ReplicationFactor: rf})
	}
	return groups
}

// groupName names a group by its members in order: "g1-2-3".
func groupName(members []NodeID) string {
	var b strings.Builder
	b.WriteString("g")
	for i, m := range members {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strconv.Itoa(int(m)))
	}
	return b.String()
}

// placePartitions assigns partitions first..first+count-1 of topic to data groups for
// replication factor rf. It returns the assignments and the groups that do not exist yet.
func placePartitions(d *ctrlData, nodes []NodeID, perNode int, topic string, first, count int32, rf int) ([]PartitionAssignment, []*DataGroup, error) {
	if rf > len(nodes) {
		return nil, nil, fmt.Errorf("replication factor %d with %d nodes: %w", rf, len(nodes), ErrNotEnoughNodes)
	}
	if rf < 1 {
		return nil, nil, fmt.Errorf("replication factor %d: %w", rf, ErrInvalid)
	}
	planned := planGroups(nodes, rf, perNode)
	// Prefer the groups that exist with this factor (nodes could have been planned
	// differently when they were created); add the planned ones that are missing.
	load := map[string]int{}
	var groups []*DataGroup
	var added []*DataGroup
	for _, g := range planned {
		if old, ok := d.Groups[g.Name]; ok {
			groups = append(groups, old)
		} else {
			groups = append(groups, g)
			added = append(added, g)
		}
		load[g.Name] = 0
	}
	for _, t := range d.Topics {
		for _, p := range t.Partitions {
			if _, ok := load[p.Group]; ok {
				load[p.Group]++
			}
		}
	}
	h := fnv.New32a()
	h.Write([]byte(topic))
	start := int(h.Sum32() % uint32(len(groups)))
	used := map[string]bool{}
	out := make([]PartitionAssignment, 0, count)
	for i := range count {
		best := -1
		for k := range groups {
			j := (start + int(i) + k) % len(groups)
			if best < 0 || load[groups[j].Name] < load[groups[best].Name] {
				best = j
			}
		}
		g := groups[best]
		load[g.Name]++
		used[g.Name] = true
		// A group that is moving has its old members as replicas too.
		out = append(out, PartitionAssignment{Partition: first + i, Group: g.Name, Replicas: groupReplicas(g)})
	}
	var newGroups []*DataGroup
	for _, g := range added {
		if used[g.Name] {
			newGroups = append(newGroups, g)
		}
	}
	return out, newGroups, nil
}
