// Package admin serves a node's HTTP admin endpoint (default port 9644 in a cluster):
//
//	GET /healthz     200 "ok" while the process serves
//	GET /readyz      200 once a controller leader is known, else 503
//	GET /metrics     Prometheus text format: node, controller and data-group gauges
//	GET /v1/cluster  JSON: this node's view of the cluster (replication.ClusterStatus)
//	POST /v1/cluster/nodes/{id}/remove  remove node id from a Raft cluster (below)
//	GET /debug/pprof/ Go's profiles (net/http/pprof)
//
// The /v1/cluster document:
//
//	{
//	  "node_id": 1, "cluster_id": "…", "metadata_version": 42,
//	  "controller": {"leader": 1, "term": 2, "state": "Leader", "commit_index": 40, "applied_index": 40},
//	  "nodes": [{"node_id": 1, "kafka_addr": "127.0.0.1:9092", "raft_addr": "127.0.0.1:9093",
//	             "alive": true, "controller": true, "leads": 4}],
//	  "groups": [{"name": "g1-2-3", "members": [1, 2, 3], "leader": 1, "term": 3, "local": true,
//	              "state": "Leader", "ready": true, "last_index": 120, "commit_index": 120,
//	              "applied_index": 120, "partitions": 4}],
//	  "partitions": [{"topic": "orders", "partition": 0, "group": "g1-2-3", "leader": 1,
//	                  "leader_epoch": 3, "replicas": [1, 2, 3], "isr": [1, 2, 3]}]
//	}
//
// Node IDs are -1 where unknown. A group's members list its preferred leader first; "local"
// groups are the ones this node runs, and only they carry Raft indexes. On a single node,
// "groups" is empty and partitions have no group.
//
// While a node is being removed, it is marked "removing": true in "nodes", and each data
// group moving off it lists "joining" (members still copying the group's data) and
// "removing" (the nodes it moves off). The node leaves "nodes" once no group has it.
//
// POST /v1/cluster/nodes/{id}/remove asks the controller (the call goes to its leader) to
// move every data group off node id and then drop it. It answers once the removal is
// recorded, within RemoveTimeout; the moves go on in the background. The body is JSON:
//
//	202 {"node_id": 3, "status": "removing", "message": "…"}
//	400 {"node_id": 3, "error": "…"}  bad ID, invalid request, or a single node (not a Raft cluster)
//	404 {"node_id": 9, "error": "…"}  no such node
//	409 {"node_id": 3, "error": "…"}  a group has no other node to move to: add a node first
//	503 {"node_id": 3, "error": "…"}  no controller leader or timed out: check GET /v1/cluster, retry
//	500 {"node_id": 3, "error": "…"}  anything else
package admin
