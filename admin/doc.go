// Package admin serves a node's HTTP admin endpoint (default port 9644 in a cluster):
//
//	GET /healthz     200 "ok" while the process serves
//	GET /readyz      200 once a controller leader is known, else 503
//	GET /metrics     Prometheus text format: node, partition, disk, controller and data-group gauges
//	GET /v1/cluster  JSON: this node's view of the cluster (replication.ClusterStatus)
//	POST /v1/cluster/nodes/{id}/remove  remove node id from a Raft cluster (below)
//	POST /v1/cluster/rebalance          spread a Raft cluster's data groups over its nodes (below)
//	GET /debug/pprof/ Go's profiles (net/http/pprof)
//
// The /v1/cluster document:
//
//	{
//	  "node_id": 1, "cluster_id": "…", "metadata_version": 42,
//	  "controller": {"leader": 1, "term": 2, "state": "Leader", "commit_index": 40, "applied_index": 40},
//	  "nodes": [{"node_id": 1, "kafka_addr": "127.0.0.1:9092", "raft_addr": "127.0.0.1:9093",
//	             "alive": true, "controller": true, "leads": 4,
//	             "disk": {"free_bytes": 52613349376, "min_free_bytes": 1073741824, "writes_refused": false}}],
//	  "groups": [{"name": "g1-2-3", "members": [1, 2, 3], "leader": 1, "term": 3, "local": true,
//	              "state": "Leader", "ready": true, "last_index": 120, "commit_index": 120,
//	              "applied_index": 120, "partitions": 4}],
//	  "partitions": [{"topic": "orders", "partition": 0, "group": "g1-2-3", "leader": 1,
//	                  "leader_epoch": 3, "replicas": [1, 2, 3], "isr": [1, 2, 3]}],
//	  "disk": {"free_bytes": 52613349376, "min_free_bytes": 1073741824, "writes_refused": false}
//	}
//
// Node IDs are -1 where unknown. A group's members list its preferred leader first; "local"
// groups are the ones this node runs, and only they carry Raft indexes. On a single node,
// "groups" is empty and partitions have no group.
//
// "disk" is this node's data directory file system, looked at now: while "free_bytes" is
// below "min_free_bytes" (--min-free-bytes, 0 when off) the node refuses writes with
// KAFKA_STORAGE_ERROR and "writes_refused" is true. Each node's "disk" is what it last
// told the controller leader in its heartbeat (about a second old; zeros when unknown: a
// node not heard from, or one that does not report it); its "apply_failing" names the
// data groups in which a committed entry keeps failing to apply on that node. A local
// group whose committed entry keeps failing to apply on this node carries
// "apply_failure", the reason; the entry is tried again until it applies, and meanwhile
// the group refuses writes if led here.
//
// While a node is being removed, it is marked "removing": true in "nodes", and each data
// group moving off it lists "joining" (members still copying the group's data) and
// "removing" (the nodes it moves off). The node leaves "nodes" once no group has it. A
// rebalance's moves show the same way in "groups".
//
// Both changes below make one call to the controller (it goes to its leader) and answer
// once the change is recorded, within ChangeTimeout; the data groups then move in the
// background. A node that is not part of a Raft cluster answers 400 to both. Errors map
// alike: 400 an invalid request, 503 no controller leader or timed out (check GET
// /v1/cluster, whose groups show whether the change started, then retry), 500 anything
// else.
//
// POST /v1/cluster/nodes/{id}/remove asks the controller to move every data group off
// node id and then drop it. The body is JSON:
//
//	202 {"node_id": 3, "status": "removing", "message": "…"}
//	400 {"node_id": 3, "error": "…"}  bad ID, invalid request, or a single node (not a Raft cluster)
//	404 {"node_id": 9, "error": "…"}  no such node
//	409 {"node_id": 3, "error": "…"}  a group has no other node to move to: add a node first
//	503 {"node_id": 3, "error": "…"}  no controller leader or timed out: check GET /v1/cluster, retry
//	500 {"node_id": 3, "error": "…"}  anything else
//
// POST /v1/cluster/rebalance asks the controller to move data-group memberships from the
// nodes that are members of the most groups to those of the fewest (a node that just joined
// has none) until the counts differ by one at most; groups already moving are left alone.
// "moves" names each group that moves, with its new members (the new node takes the
// leaving one's place in the order). The body is JSON:
//
//	202 {"status": "rebalancing", "moves": {"g1-2-3": [1, 2, 4]}, "message": "…"}
//	200 {"status": "balanced", "moves": {}, "message": "…"}  nothing to move
//	400 {"error": "…"}  invalid request, or a single node (not a Raft cluster)
//	503 {"error": "…"}  no controller leader or timed out: check GET /v1/cluster, retry
//	500 {"error": "…"}  anything else
package admin
