#!/usr/bin/env bash
# What the Raft path costs a single node: a node without Raft (the local replicator,
# --fsync=always) against a one-node Raft cluster (--peers 1@...), same binary, both
# running, alternating runs in one session.
#
#   scripts/bench-single-raft.sh [SIZE] [RECORDS]        e.g. scripts/bench-single-raft.sh 1024 1000000
#   env: RUNS (default 5), PARTITIONS (default 1), SLUICE (binary; default: built from this
#        tree), PROFILE=DIR (CPU profile of the Raft node during run 1's produce)
#
# Prints medians (min-max) of produce and consume MB/s and server CPU s/GB for each, and
# the ratio raft/local of each run pair (the Raft path's cost is 1 - ratio).
set -euo pipefail
SIZE=${1:-1024}
RECORDS=${2:-1000000}
RUNS=${RUNS:-5}
PARTITIONS=${PARTITIONS:-1}
source "$(cd "$(dirname "$0")" && pwd)/bench-lib.sh"
build_tools

WORK=$(mktemp -d /tmp/sluice-bench-single.XXXXXX)
OUT=$WORK/out; mkdir -p "$OUT"
SLUICE_PIDS=""; SINGLE_PID=""
cleanup() {
  # shellcheck disable=SC2086
  stop_pids $SLUICE_PIDS $SINGLE_PID
  rm -rf "$WORK"
}
trap cleanup EXIT
LOCAL_PORT=${LOCAL_PORT:-24392}
start_sluice_single "$WORK/local" "$LOCAL_PORT"
start_sluice_cluster "$WORK/raft" 1

run() { # system run
  local s=$1 i=$2 t=bench-$SIZE-$i-$RANDOM addr pid prof=""
  if [ "$s" = local ]; then addr=127.0.0.1:$LOCAL_PORT; pid=$SINGLE_PID; else addr=$SLUICE_ADDR; pid=$SLUICE_PIDS; fi
  wait_quiet
  if [ -n "${PROFILE:-}" ] && [ "$i" = 1 ] && [ "$s" = raft ]; then
    mkdir -p "$PROFILE"
    curl -fs -o "$PROFILE/raft1.pprof" "http://127.0.0.1:21644/debug/pprof/profile?seconds=${PROFILE_SECONDS:-3}" & prof=$!
  fi
  NO_QUIET=1 measure "$OUT/$s-p-$i" "$pid" "$BIN/kbench" -brokers "$addr" -topic "$t" -partitions "$PARTITIONS" \
    -records "$RECORDS" -size "$SIZE" -acks all -mode produce || echo "$s produce run $i failed"
  [ -z "$prof" ] || wait "$prof" || true
  measure "$OUT/$s-c-$i" "$pid" "$BIN/kbench" -brokers "$addr" -topic "$t" -records "$RECORDS" -mode consume \
    || echo "$s consume run $i failed"
}
for i in $(seq "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then run local "$i"; run raft "$i"; else run raft "$i"; run local "$i"; fi
done

S=$BENCH/stats.sh
echo "size=$SIZE records=$RECORDS partitions=$PARTITIONS runs=$RUNS (medians, min-max)"
for s in local raft; do
  echo "$s produce MB/s $(for f in "$OUT/$s"-p-*; do json_field "$f" mb_per_s; done | $S 1)  CPU s/GB $(for f in "$OUT/$s"-p-*; do cpu_s_per_gb "$f"; done | $S 2)"
  echo "$s consume MB/s $(for f in "$OUT/$s"-c-*; do json_field "$f" mb_per_s; done | $S 1)"
done
for k in p c; do
  echo "ratio raft/local $([ $k = p ] && echo produce || echo consume): $(for i in $(seq "$RUNS"); do
    paste <(json_field "$OUT/raft-$k-$i" mb_per_s) <(json_field "$OUT/local-$k-$i" mb_per_s); done | awk '$2 > 0 { print $1 / $2 }' | $S 2)"
done
echo "other CPU s per run (noise) $(cpuf other_cpu_s "$OUT"/*-p-* | $S 2)"
for f in "$OUT"/*-p-* "$OUT"/*-c-*; do
  grep -q '"errors":0' <(grep '^{"tool"' "$f") || { echo "run with errors: $f"; tail -n 5 "$f"; }
done
