#!/usr/bin/env bash
# NATS JetStream R3 alone: three nats-server v2.15.2 (JetStream, file store, routes) on
# this machine and `nats bench js pub async --replicas=3 --storage=file` (natscli v0.5.0).
# scripts/bench-cluster.sh runs the same alternating with sluice; this is for a quick look.
#
#   scripts/bench-nats-r3.sh [SIZE] [RECORDS]           env: RUNS (default 3)
set -euo pipefail
SIZE=${1:-1024}
RECORDS=${2:-1000000}
RUNS=${RUNS:-3}
source "$(cd "$(dirname "$0")" && pwd)/bench-lib.sh"
SLUICE=none build_tools nats
WORK=$(mktemp -d /tmp/sluice-bench-nats.XXXXXX)
OUT=$WORK/out; mkdir -p "$OUT"
NATS_PIDS=""
# shellcheck disable=SC2086
trap 'stop_pids $NATS_PIDS; rm -rf "$WORK"' EXIT
start_nats_cluster "$WORK" 3
for i in $(seq "$RUNS"); do
  measure "$OUT/nats-p-$i" "$NATS_PIDS" "$BIN/nats" -s "$NATS_URL" bench js pub async benchsubj --create --purge \
    --replicas=3 --storage=file --maxbytes=16GB --msgs="$RECORDS" --size="${SIZE}B" --no-progress || echo "nats run $i failed"
done
S=$BENCH/stats.sh
echo "size=$SIZE records=$RECORDS runs=$RUNS (medians, min-max)"
echo "nats R3 produce MB/s  $(for f in "$OUT"/nats-p-*; do nats_mb "$f"; done | $S 1)"
echo "nats R3 produce CPU s/GB, all nodes $(for f in "$OUT"/nats-p-*; do cpu_s_per_gb "$f"; done | $S 2)"
