#!/usr/bin/env bash
# How fast a cluster moves data when a node is removed: three nodes (replication factor 3)
# get SIZE-byte records, a fourth node joins, and `sluice cluster remove-node 3 --wait`
# moves all of node 3's groups, with their partitions' data, to it. Against the disk:
# `dd oflag=direct` of as many bytes, in the same run.
#
#   scripts/bench-move.sh [SIZE] [RECORDS]           e.g. scripts/bench-move.sh 1024 1000000
#   env: RUNS (default 3), PARTITIONS (default 3), SLUICE (binary; default: built from
#        this tree), SLUICE_FLAGS (extra flags for every node), LOGS=DIR (keep the nodes'
#        logs there, as nodeN-runI.log)
#
# Each run starts a fresh cluster. Prints per run the data moved (node 4's partition
# directories once the removal is done), the removal's wall time, MB/s moved, dd's MB/s
# and their ratio, then the medians.
set -euo pipefail
SIZE=${1:-1024}
RECORDS=${2:-1000000}
RUNS=${RUNS:-3}
PARTITIONS=${PARTITIONS:-3}
source "$(cd "$(dirname "$0")" && pwd)/bench-lib.sh"
build_tools

WORK=$(mktemp -d /tmp/sluice-bench-move.XXXXXX)
SLUICE_PIDS=""; N4=""
cleanup() {
  # shellcheck disable=SC2086
  stop_pids $SLUICE_PIDS $N4
  rm -rf "$WORK"
}
trap cleanup EXIT

rows=()
for i in $(seq "$RUNS"); do
  # shellcheck disable=SC2086
  start_sluice_cluster "$WORK/run$i" 3 ${SLUICE_FLAGS:-}
  "$BIN/kbench" -brokers "$SLUICE_ADDR" -topic moved -partitions "$PARTITIONS" -records "$RECORDS" \
    -size "$SIZE" -acks all -mode produce > "$WORK/produce-$i.log" 2>&1
  mkdir -p "$WORK/run$i/node4"
  # shellcheck disable=SC2086
  "$SLUICE" serve --node-id 4 --listen 127.0.0.1:24092 --raft-listen 127.0.0.1:24093 \
    --admin-listen 127.0.0.1:24644 --join 127.0.0.1:21093 --data-dir "$WORK/run$i/node4" \
    ${SLUICE_FLAGS:-} >> "$WORK/run$i/node4.log" 2>&1 &
  N4=$!
  wait_port 24092 60
  wait_sluice_ready 4
  wait_quiet
  start=$(date +%s.%N)
  "$SLUICE" cluster remove-node 3 --admin 127.0.0.1:21644 --wait --timeout 20m > "$WORK/remove-$i.log"
  end=$(date +%s.%N)
  bytes=$(du -sb "$WORK/run$i/node4"/moved-* | awk '{ s += $1 } END { print s }')
  dd if=/dev/zero of="$WORK/dd" bs=4M count=$(( (bytes + 4194303) / 4194304 )) oflag=direct conv=fsync 2> "$WORK/dd-$i.log"
  rm -f "$WORK/dd"
  ddmb=$(sed -n 's/.* copied, \([0-9.]*\) s, .*/\1/p' "$WORK/dd-$i.log" | awk -v b="$bytes" '{ printf "%.1f", b / $1 / 1e6 }')
  row=$(awk -v b="$bytes" -v s="$start" -v e="$end" -v d="$ddmb" 'BEGIN {
    t = e - s; m = b / t / 1e6; printf "%.0f %.2f %.1f %s %.2f", b / 1e6, t, m, d, m / d }')
  rows+=("$row")
  echo "run $i: moved MB, seconds, MB/s, dd MB/s, ratio: $row"
  # shellcheck disable=SC2086
  stop_pids $SLUICE_PIDS $N4
  SLUICE_PIDS=""; N4=""
  if [ -n "${LOGS:-}" ]; then
    mkdir -p "$LOGS"
    for f in "$WORK/run$i"/node*.log; do cp "$f" "$LOGS/$(basename "$f" .log)-run$i.log"; done
  fi
  rm -rf "$WORK/run$i"
done
med() { printf '%s\n' "${rows[@]}" | awk -v f="$1" '{ print $f }' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "medians over $RUNS runs: moved $(med 1) MB in $(med 2) s: $(med 3) MB/s; dd oflag=direct $(med 4) MB/s; ratio $(med 5)"
