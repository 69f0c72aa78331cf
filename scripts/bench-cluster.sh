#!/usr/bin/env bash
# Three sluice nodes on this machine, replication factor 3, against NATS JetStream R3
# (three nats-server v2.15.2, file store), alternating runs in one session.
#
#   scripts/bench-cluster.sh [SIZE] [RECORDS]          e.g. scripts/bench-cluster.sh 1024 1000000
#   env: RUNS (default 3), PARTITIONS (default 1), NATS_R3 (default 1; 0 skips NATS),
#        NODES (default 3), PROFILE=DIR (CPU profile of every node during run 1's produce
#        into DIR/nodeN.pprof), SLUICE (binary; default: built from this tree),
#        SLUICE_FLAGS (extra flags for every node), KEEP=1 (keep the data directories),
#        SETTLE (default 1: `sync` before each produce run; 0 leaves the run before's
#        dirty page cache to be written back during the next run)
#
# NATS does not fsync: the kernel writes its 3 GB back in the 30 s after its run, during
# whatever runs next. SETTLE=1 flushes that (and anything sluice left) before each run, so
# each system's run pays for its own writes only; the time of the sync is not measured.
#
# Per run: sluice produce (kbench, acks=all), sluice consume, NATS R3 async publish of the
# same records (`nats bench js pub async --replicas=3 --storage=file`). Prints medians
# (min-max) of MB/s, the CPU seconds per GB of all servers together and of each node,
# and the ratio sluice/NATS of each run pair.
set -euo pipefail
SIZE=${1:-1024}
RECORDS=${2:-1000000}
RUNS=${RUNS:-3}
PARTITIONS=${PARTITIONS:-1}
NODES=${NODES:-3}
NATS_R3=${NATS_R3:-1}
SETTLE=${SETTLE:-1}
source "$(cd "$(dirname "$0")" && pwd)/bench-lib.sh"
build_tools "$([ "$NATS_R3" = 1 ] && echo nats)"

WORK=$(mktemp -d /tmp/sluice-bench-cluster.XXXXXX)
OUT=$WORK/out; mkdir -p "$OUT"
NATS_PIDS=""; SLUICE_PIDS=""
cleanup() {
  # shellcheck disable=SC2086
  stop_pids $SLUICE_PIDS $NATS_PIDS
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# shellcheck disable=SC2086
start_sluice_cluster "$WORK" "$NODES" ${SLUICE_FLAGS:-}
[ "$NATS_R3" = 1 ] && start_nats_cluster "$WORK" 3

settle() { [ "$SETTLE" = 0 ] || sync; }

sluice_run() { # run
  local i=$1 t=bench-$SIZE-$i-$RANDOM before after prof_pids=""
  settle
  wait_quiet
  before=$(node_cpu $SLUICE_PIDS)
  if [ -n "${PROFILE:-}" ] && [ "$i" = 1 ]; then
    mkdir -p "$PROFILE"
    for n in $(seq "$NODES"); do
      curl -fs -o "$PROFILE/node$n.pprof" "http://127.0.0.1:2${n}644/debug/pprof/profile?seconds=${PROFILE_SECONDS:-8}" &
      prof_pids="$prof_pids $!"
    done
  fi
  NO_QUIET=1 measure "$OUT/sluice-p-$i" "$SLUICE_PIDS" "$BIN/kbench" -brokers "$SLUICE_ADDR" -topic "$t" -partitions "$PARTITIONS" \
    -records "$RECORDS" -size "$SIZE" -acks all -mode produce || echo "sluice produce run $i failed"
  after=$(node_cpu $SLUICE_PIDS)
  node_cpu_delta "$before" "$after" > "$OUT/sluice-nodes-$i"
  # shellcheck disable=SC2086
  [ -z "$prof_pids" ] || wait $prof_pids || true
  measure "$OUT/sluice-c-$i" "$SLUICE_PIDS" "$BIN/kbench" -brokers "$SLUICE_ADDR" -topic "$t" -records "$RECORDS" -mode consume \
    || echo "sluice consume run $i failed"
}
nats_run() { # run
  local i=$1
  settle
  measure "$OUT/nats-p-$i" "$NATS_PIDS" "$BIN/nats" -s "$NATS_URL" bench js pub async benchsubj --create --purge \
    --replicas=3 --storage=file --maxbytes=16GB --msgs="$RECORDS" --size="${SIZE}B" --no-progress || echo "nats run $i failed"
}

for i in $(seq "$RUNS"); do
  if [ "$NATS_R3" = 1 ] && [ $((i % 2)) = 0 ]; then nats_run "$i"; sluice_run "$i"
  else sluice_run "$i"; [ "$NATS_R3" = 1 ] && nats_run "$i"; fi
done

for i in $(seq "$RUNS"); do
  line="run $i: sluice $(json_field "$OUT/sluice-p-$i" mb_per_s | awk '{printf "%.1f", $1}') MB/s, disk $(cpuf disk_write_mb "$OUT/sluice-p-$i") MB"
  [ "$NATS_R3" = 1 ] && line="$line; nats $(nats_mb "$OUT/nats-p-$i") MB/s, disk $(cpuf disk_write_mb "$OUT/nats-p-$i") MB"
  echo "$line"
done
S=$BENCH/stats.sh
echo "nodes=$NODES size=$SIZE records=$RECORDS partitions=$PARTITIONS runs=$RUNS (medians, min-max)"
echo "sluice produce MB/s   $(for f in "$OUT"/sluice-p-*; do json_field "$f" mb_per_s; done | $S 1)"
echo "sluice consume MB/s   $(for f in "$OUT"/sluice-c-*; do json_field "$f" mb_per_s; done | $S 1)"
echo "sluice produce CPU s/GB, all nodes  $(for f in "$OUT"/sluice-p-*; do cpu_s_per_gb "$f"; done | $S 2)"
for n in $(seq "$NODES"); do
  echo "sluice produce CPU s/GB, node $n     $(for f in "$OUT"/sluice-nodes-*; do cut -d' ' -f"$n" "$f"; done | $S 2)"
done
echo "sluice produce ack p99 ms           $(for f in "$OUT"/sluice-p-*; do json_field "$f" p99_ms; done | $S 1)"
if [ "$NATS_R3" = 1 ]; then
  echo "nats R3 produce MB/s  $(for f in "$OUT"/nats-p-*; do nats_mb "$f"; done | $S 1)"
  echo "nats R3 produce CPU s/GB, all nodes $(for f in "$OUT"/nats-p-*; do cpu_s_per_gb "$f"; done | $S 2)"
  echo "ratio sluice/nats R3 produce        $(for i in $(seq "$RUNS"); do
    paste <(json_field "$OUT/sluice-p-$i" mb_per_s) <(nats_mb "$OUT/nats-p-$i"); done | awk '$2 > 0 { print $1 / $2 }' | $S 2)"
fi
echo "other CPU s per run (noise)         $(cpuf other_cpu_s "$OUT"/sluice-p-* | $S 2)"
for f in "$OUT"/sluice-p-* "$OUT"/sluice-c-*; do
  grep -q '"errors":0' <(grep '^{"tool"' "$f") || { echo "sluice run with errors: $f"; tail -n 5 "$f"; }
done
