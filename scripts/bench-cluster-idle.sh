#!/usr/bin/env bash
# What an idle cluster costs, and how long a data group is without a leader after its
# leader is killed.
#
#   scripts/bench-cluster-idle.sh
#   env: PARTITIONS (default 1000, in one topic, replication factor 3), IDLE_SECONDS (60),
#        KILLS (default 5), SLUICE (binary; default: built from this tree),
#        SLUICE_FLAGS (extra flags for every node)
#
# Three nodes on 127.0.0.1 (as bench-cluster.sh). Prints:
#   - each node's CPU (user+system, % of one core) and RSS over IDLE_SECONDS with
#     PARTITIONS partitions (plus the 50 of __consumer_offsets) and no clients;
#   - KILLS times: kill -9 of the leader of the group carrying partition 0, then the time
#     until a surviving node reports another leader for that group (election) and until a
#     record produced to partition 0 with acks=all is acknowledged (what a client sees);
#     the killed node is restarted and the group's leadership left to settle before the next.
set -euo pipefail
PARTITIONS=${PARTITIONS:-1000}
IDLE_SECONDS=${IDLE_SECONDS:-60}
KILLS=${KILLS:-5}
NODES=3
source "$(cd "$(dirname "$0")" && pwd)/bench-lib.sh"
build_tools

WORK=$(mktemp -d /tmp/sluice-bench-idle.XXXXXX)
SLUICE_PIDS=""
cleanup() {
  # shellcheck disable=SC2086
  stop_pids $SLUICE_PIDS
  rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck disable=SC2086
start_sluice_cluster "$WORK" "$NODES" ${SLUICE_FLAGS:-}
read -r -a PIDS <<< "$SLUICE_PIDS"

now_ms() { date +%s%3N; }
cluster_json() { curl -fs --max-time 1 "http://127.0.0.1:2${1}644/v1/cluster"; }
# group_of_p0 NODE: the group of partition 0 of topic idle and its leader, as "group leader".
group_of_p0() {
  cluster_json "$1" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
for p in d["partitions"]:
    if p["topic"] == "idle" and p["partition"] == 0:
        g = [x for x in d["groups"] if x["name"] == p["group"]]
        print(p["group"], g[0]["leader"] if g else -1)
'
}

"$SLUICE" topic create idle --partitions "$PARTITIONS" --replication-factor 3 --brokers "$SLUICE_ADDR" > /dev/null
echo x | "$SLUICE" produce idle -p 0 --brokers "$SLUICE_ADDR" > /dev/null
sleep 10 # leadership hand-backs and the first snapshots settle

echo "idle: $NODES nodes, $PARTITIONS partitions (+50 __consumer_offsets), ${IDLE_SECONDS}s"
declare -A before
for i in "${!PIDS[@]}"; do before[$i]=$(proc_cpu_ticks "${PIDS[$i]}"); done
sleep "$IDLE_SECONDS"
for i in "${!PIDS[@]}"; do
  after=$(proc_cpu_ticks "${PIDS[$i]}")
  rss=$(awk '/^VmRSS/{print $2}' "/proc/${PIDS[$i]}/status")
  awk -v n=$((i + 1)) -v d=$((after - before[$i])) -v t="$TCK" -v s="$IDLE_SECONDS" -v r="$rss" \
    'BEGIN{printf "node %d: CPU %.2f%% of a core, RSS %.0f MB\n", n, 100*d/t/s, r/1024}'
done

echo "leader kill -9 of partition 0's group (election timeout: the --raft-election-timeout default unless SLUICE_FLAGS sets it)"
for k in $(seq "$KILLS"); do
  read -r group leader < <(group_of_p0 1 || group_of_p0 2)
  [ "$leader" -ge 1 ] || { echo "no leader for partition 0"; exit 1; }
  other=$((leader % NODES + 1))
  pid=${PIDS[$((leader - 1))]}
  kill -9 "$pid"
  wait "$pid" 2> /dev/null || true # gone: timing starts here
  t0=$(now_ms)
  elected=""
  while [ -z "$elected" ]; do
    read -r _ l < <(group_of_p0 "$other" || echo "x -1")
    if [ "$l" -ge 1 ] && [ "$l" != "$leader" ]; then elected=$(( $(now_ms) - t0 )); fi
    sleep 0.02
  done
  until echo "k$k" | "$SLUICE" produce idle -p 0 --timeout 2s --brokers "127.0.0.1:2${other}092" > /dev/null 2>&1; do :; done
  acked=$(( $(now_ms) - t0 ))
  echo "kill $k: group $group leader $leader killed; new leader after ${elected} ms, produce acknowledged after ${acked} ms"
  # restart the node with its data and wait until it serves again
  # shellcheck disable=SC2086
  start_sluice_node "$WORK" "$NODES" "$leader" ${SLUICE_FLAGS:-}
  PIDS[$((leader - 1))]=$!
  SLUICE_PIDS="${PIDS[*]}"
  wait_sluice_ready "$leader"
  sleep 10
done
