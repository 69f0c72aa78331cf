#!/usr/bin/env bash
# How long clients stall when a partition's leader is stopped: three sluice nodes, one
# partition (RF 3), `kbench -mode e2e-latency` producing and consuming 2,000 records/s of
# 1 KiB for DURATION seconds (10); STOP_AT (4) seconds in, the partition's leader gets
# SIGTERM (SIG=KILL for kill -9). Prints, per run, the largest produce-to-consume latency
# (the stall) and the p99/p50 of the run; then their medians. A fresh cluster per run.
#
# franz-go asks for metadata at most every 5 s, and a second time 5 s after it starts
# producing: a client that loses its leader within 10 s of starting waits for that. So
# STOP_AT=12 DURATION=20 is what a client that has run for a while sees.
#
#   scripts/bench-stop.sh            env: RUNS (default 5), SIG (TERM), STOP_AT, DURATION,
#                                         SLUICE, SLUICE_REV
set -euo pipefail
RUNS=${RUNS:-5}
SIG=${SIG:-TERM}
STOP_AT=${STOP_AT:-4}
DURATION=${DURATION:-10}
source "$(cd "$(dirname "$0")" && pwd)/bench-lib.sh"
build_tools
BROKERS=127.0.0.1:21092,127.0.0.1:22092,127.0.0.1:23092
OUT=$(mktemp -d /tmp/sluice-bench-stop.XXXXXX)
SLUICE_PIDS=""
cleanup() {
  # shellcheck disable=SC2086
  stop_pids $SLUICE_PIDS
  rm -rf "$OUT"
}
trap cleanup EXIT

run() { # i
  local dir=$OUT/run$1 t=stop-$1-$RANDOM leader
  start_sluice_cluster "$dir" 3
  "$BIN/kbench" -brokers "$BROKERS" -topic "$t" -partitions 1 -records 10 -size 1024 -acks all -mode produce > /dev/null
  sleep 8 # the preferred leaders take over
  leader=$("$SLUICE" cluster info --brokers "$BROKERS" --format json | python3 -c '
import json, sys
for p in json.load(sys.stdin).get("partitions", []):
    if p.get("topic") == sys.argv[1]:
        print(p["leader"])' "$t")
  local pid killer
  pid=$(echo "$SLUICE_PIDS" | tr ' ' '\n' | sed -n "${leader}p")
  (sleep "$STOP_AT"; kill -s "$SIG" "$pid") &
  killer=$!
  "$BIN/kbench" -brokers "$BROKERS" -topic "$t" -records $((DURATION * 2000)) -rate 2000 -size 1024 -mode e2e-latency |
    tail -1 > "$OUT/run$1.json"
  wait "$killer"
  # shellcheck disable=SC2086
  stop_pids $SLUICE_PIDS
  SLUICE_PIDS=""
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("run %s: node %s got SIG%s: max %.0f ms, p99 %.0f ms, p50 %.1f ms, errors %s" % (
    sys.argv[2], sys.argv[3], sys.argv[4], d["max_ms"], d["p99_ms"], d["p50_ms"], d["errors"]))' \
    "$OUT/run$1.json" "$1" "$leader" "$SIG"
}

for i in $(seq "$RUNS"); do run "$i"; done
for k in max_ms p99_ms; do
  echo "$k $(for i in $(seq "$RUNS"); do python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$OUT/run$i.json" "$k"; done | "$BENCH/stats.sh" 1)"
done
