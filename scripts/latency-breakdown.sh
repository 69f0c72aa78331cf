#!/usr/bin/env bash
# Where the end-to-end latency goes inside the server: builds sluice from a copy of the
# tree (REV, default HEAD) with the timing hooks of latency-breakdown.patch applied (the
# tree itself is never touched), runs `kbench -mode e2e-latency` against it RUNS times
# (fsync=always, one fresh server per run), and prints the server's own distributions:
#
#   sync         the group commit's fsync (LocalReplicator.syncGroup around Sync)
#   commit       Partition.Commit: high watermark moved, fetches woken
#   f.wakeup     Partition.wake called -> the woken fetch running
#   f.wake2sent  the woken fetch running -> its response written to the socket
#   p.handler    produce frame read -> handler returned (validated, applied)
#   p.queue      handler returned -> the connection's writer starts waiting for the fsync
#   p.wait       that wait (the fsync it runs, or the one running plus its own)
#   p.total      produce frame read -> produce response written
#
# and the client's e2e figures of the same run. With BASELINE_REV set, a second build
# from that revision runs alternately (the patch must apply to it too).
#
#   scripts/latency-breakdown.sh            env: RUNS (3), RECORDS (20000), RATE (2000),
#                                           SIZE (1024), PORT (29494), REV, BASELINE_REV
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$(cd "$ROOT/../shared/bench" && pwd)}
RUNS=${RUNS:-3}; RECORDS=${RECORDS:-20000}; RATE=${RATE:-2000}; SIZE=${SIZE:-1024}; PORT=${PORT:-29494}
OUT=${OUT:-$(mktemp -d /tmp/latency-breakdown.XXXXXX)}
mkdir -p "$OUT/bin"

build() { # name rev
  rm -rf "$OUT/src-$1"; mkdir -p "$OUT/src-$1"
  (cd "$ROOT" && git archive "$2" | tar -x -C "$OUT/src-$1")
  (cd "$OUT/src-$1" && patch -p1 -s < "$ROOT/scripts/latency-breakdown.patch" && go build -o "$OUT/bin/sluice-$1" ./cmd/sluice)
}
build rev "${REV:-HEAD}"
names=(rev)
if [ -n "${BASELINE_REV:-}" ]; then build baseline "$BASELINE_REV"; names+=(baseline); fi
(cd "$SHARED/kbench" && go build -o "$OUT/bin/kbench" .)

PID=
trap '[ -z "$PID" ] || kill "$PID" 2>/dev/null || true' EXIT
for i in $(seq "$RUNS"); do
  for name in "${names[@]}"; do
    rm -rf "$OUT/data"; mkdir -p "$OUT/data"
    SLUICE_LATTRACE=1 "$OUT/bin/sluice-$name" serve --data-dir "$OUT/data" --listen 127.0.0.1:$PORT \
      --log-level warn > "$OUT/$name-$i.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    "$OUT/bin/kbench" -brokers 127.0.0.1:$PORT -topic bd-$i -records "$RECORDS" -rate "$RATE" -size "$SIZE" \
      -linger 0 -acks all -mode e2e-latency > "$OUT/$name-$i.kbench" 2>&1 || true
    kill -USR1 "$PID"; sleep 0.5; kill "$PID"; wait "$PID" || true; PID=
    echo "== $name (${REV:-HEAD}${BASELINE_REV:+ / baseline $BASELINE_REV}) run $i"
    grep -h 'end-to-end latency\|produce ack latency' "$OUT/$name-$i.kbench" || tail -n 3 "$OUT/$name-$i.kbench"
    grep -h '^LAT' "$OUT/$name-$i.log" | sed 's/^LAT /  /'
  done
done
echo "outputs in $OUT"
