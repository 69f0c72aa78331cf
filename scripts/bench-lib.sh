# Helpers for the cluster benchmark scripts (source it). They build on the shared bench
# tools (../shared/bench: kbench, lib.sh's measure) and use only tools from the Go module
# proxy (nats-server v2.15.2, natscli v0.5.0) and Debian (curl).
#
# Environment:
#   BENCH   the shared bench directory (default ../shared/bench from the repository root)
#   BIN     where tools are built (default /tmp/sluice-bench/bin)
#   SLUICE  the sluice binary to run (default: built from commit $SLUICE_REV of this
#           repository, default HEAD, into $BIN/sluice-<commit>; SLUICE_REV=worktree builds
#           the working tree as it is)
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BENCH=${BENCH:-$(cd "$ROOT/../shared/bench" && pwd)}
export BIN=${BIN:-/tmp/sluice-bench/bin}
mkdir -p "$BIN" /tmp/bench-c
# shellcheck source=/dev/null
source "$BENCH/lib.sh"

build_tools() { # kbench always; nats tools when $1 = nats
  [ -x "$BIN/kbench" ] || (cd "$BENCH/kbench" && go build -o "$BIN/kbench" .)
  if [ "${1:-}" = nats ]; then
    [ -x "$BIN/nats-server" ] || GOBIN=$BIN go install github.com/nats-io/nats-server/v2@v2.15.2
    [ -x "$BIN/nats" ] || GOBIN=$BIN go install github.com/nats-io/natscli/nats@v0.5.0
  fi
  if [ -z "${SLUICE:-}" ]; then
    local rev=${SLUICE_REV:-HEAD} src
    if [ "$rev" = worktree ]; then
      SLUICE=$BIN/sluice-worktree
      (cd "$ROOT" && go build -o "$SLUICE" ./cmd/sluice)
    else
      rev=$(git -C "$ROOT" rev-parse --short=12 "$rev")
      SLUICE=$BIN/sluice-$rev
      if [ ! -x "$SLUICE" ]; then
        src=$(mktemp -d /tmp/sluice-src.XXXXXX)
        git -C "$ROOT" archive "$rev" | tar -x -C "$src"
        (cd "$src" && go build -o "$SLUICE" ./cmd/sluice)
        rm -rf "$src"
      fi
    fi
    echo "sluice binary: $SLUICE"
  fi
}

# start_sluice_cluster DIR N [extra flags...]: N nodes on 127.0.0.1, node i with Kafka
# port 2i092, Raft 2i093, admin 2i644 (N = 1 makes a one-node Raft cluster). Sets
# SLUICE_PIDS and SLUICE_ADDR (node 1's Kafka address); waits until every node is ready.
start_sluice_cluster() {
  local dir=$1 n=$2 i; shift 2
  SLUICE_PIDS=""
  for i in $(seq "$n"); do
    start_sluice_node "$dir" "$n" "$i" "$@"
    SLUICE_PIDS="$SLUICE_PIDS${SLUICE_PIDS:+ }$!"
  done
  SLUICE_ADDR=127.0.0.1:21092
  for i in $(seq "$n"); do
    wait_port "2${i}092" 60
    wait_sluice_ready "$i"
  done
}

# wait_sluice_ready I: waits up to a minute until node I's admin endpoint says ready.
wait_sluice_ready() {
  for _ in $(seq 600); do curl -fs "http://127.0.0.1:2${1}644/readyz" > /dev/null && return; sleep 0.1; done
}

# start_sluice_node DIR N I [extra flags...]: node I of an N-node cluster laid out as
# start_sluice_cluster lays it out, in the background ($! is its PID), its log appended to
# DIR/nodeI.log; a node started again keeps its data.
start_sluice_node() {
  local dir=$1 n=$2 i=$3 j peers=""; shift 3
  for j in $(seq "$n"); do peers="$peers${peers:+,}$j@127.0.0.1:2${j}093"; done
  mkdir -p "$dir/node$i"
  "$SLUICE" serve --node-id "$i" --listen "127.0.0.1:2${i}092" --raft-listen "127.0.0.1:2${i}093" \
    --admin-listen "127.0.0.1:2${i}644" --peers "$peers" --data-dir "$dir/node$i" "$@" \
    >> "$dir/node$i.log" 2>&1 &
}

# start_sluice_single DIR PORT [extra flags...]: one node without Raft (the local
# replicator). Sets SINGLE_PID.
start_sluice_single() {
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir"
  "$SLUICE" serve --node-id 0 --listen "127.0.0.1:$port" --data-dir "$dir" "$@" > "$dir.log" 2>&1 &
  SINGLE_PID=$!
  wait_port "$port" 60
}

# start_nats_cluster DIR N: N nats-server v2.15.2 with JetStream (file store) and routes;
# client port 2i222, cluster port 2i248. Sets NATS_PIDS and NATS_URL.
start_nats_cluster() {
  local dir=$1 n=$2 i routes=""
  for i in $(seq "$n"); do routes="$routes${routes:+,}nats://127.0.0.1:2${i}248"; done
  NATS_PIDS=""
  for i in $(seq "$n"); do
    mkdir -p "$dir/nats$i"
    if [ "$n" -gt 1 ]; then
      "$BIN/nats-server" -js -sd "$dir/nats$i" -a 127.0.0.1 -p "2${i}222" -n "n$i" \
        --cluster_name sluicebench --cluster "nats://127.0.0.1:2${i}248" --routes "$routes" \
        > "$dir/nats$i.log" 2>&1 &
    else
      "$BIN/nats-server" -js -sd "$dir/nats$i" -a 127.0.0.1 -p "2${i}222" -n "n$i" > "$dir/nats$i.log" 2>&1 &
    fi
    NATS_PIDS="$NATS_PIDS${NATS_PIDS:+ }$!"
  done
  NATS_URL=nats://127.0.0.1:21222
  for i in $(seq "$n"); do wait_port "2${i}222" 30; done
  # JetStream in a cluster is usable once its meta group has a leader.
  for _ in $(seq 300); do
    "$BIN/nats" -s "$NATS_URL" account info > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "NATS JetStream did not become ready" >&2; return 1
}

json_field() { grep '^{"tool"' "$1" | tail -n 1 | sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p"; }
nats_mb() { # nats bench output -> MB/s (SIZE bytes per message)
  sed -n 's/.*stats: *\([0-9,]*\) msgs\/sec.*/\1/p' "$1" | head -n 1 | tr -d , | awk -v z="$SIZE" 'NF { printf "%.1f\n", $1 * z / 1e6 }'
}
cpu_s_per_gb() { # file -> server CPU s per GB of payload
  awk -v s="$(cpuf server_cpu_s "$1")" -v r="$RECORDS" -v z="$SIZE" 'BEGIN { if (s == "") print ""; else printf "%.2f\n", s / (r * z / 1e9) }'
}

# node_cpu PIDS -> one "pid:ticks" word per PID
node_cpu() { local p; for p in "$@"; do echo -n "$p:$(proc_cpu_ticks "$p") "; done; echo; }
# node_cpu_delta "BEFORE" "AFTER" -> CPU s per GB per node, space separated
node_cpu_delta() {
  awk -v a="$1" -v b="$2" -v tck="$TCK" -v gb="$(awk -v r="$RECORDS" -v z="$SIZE" 'BEGIN { print r * z / 1e9 }')" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) { split(x[i], p, ":"); split(y[i], q, ":"); printf "%s%.2f", (i > 1 ? " " : ""), (q[2] - p[2]) / tck / gb }
    print "" }'
}
