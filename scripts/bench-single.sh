#!/usr/bin/env bash
# Single-node benchmark evidence: end-to-end latency at a fixed rate, with the figures it
# must be read against measured in the same session, then throughput against kfake.
#
#   scripts/bench-single.sh [latency|throughput|all]        (default: all)
#   OUT=DIR [BASELINE=rev] scripts/bench-single.sh summary   (the latency figures of DIR again)
#
# latency: RUNS rounds; each round, in rotating order,
#   - fsynclat grow     the disk's own write+fdatasync latency, RATE writes/s of SIZE bytes
#                       appended to a growing file (what a log without preallocation does)
#   - fsynclat written  the same into blocks written beforehand (what segment preallocation
#                       gives: no journal commit per fdatasync)
#   - fsynclat fallocate the same into fallocate(2)d space (unwritten extents)
#   - kbench e2e-latency against: sluice (--fsync=always), sluice (--fsync=never) and kfake
#     (franz-go's in-memory fake broker: the client's own floor on this machine)
#   - with BASELINE=<git revision>: also sluice built from that revision (--fsync=always),
#     for a before/after comparison in the same session
#   then the medians over the rounds of p50/p99/p99.9 for each.
# throughput: ../shared/bench/compare.sh at 1024 and 100 bytes against the fsync=always
#   server (RUNS runs each, BROKER_PID set): produce/consume ratios and CPU per GB.
#
# env: RUNS (5), RATE (2000), RECORDS (20000 per e2e run), SIZE (1024), PORT_BASE (29400:
#      sluice always, +1 sluice never, +2 kfake, +3 admin/pprof of sluice always, +4 compare
#      kfake, +5 baseline sluice), OUT (a new temp dir), SHARED (../shared/bench), TP_RECORDS (compare.sh's
#      default), FSYNC_MODES ("grow written fallocate"), NO_QUIET=1 (do not wait for a quiet machine before each run).
# Each server's runtime GC trace goes to OUT/*.log (GODEBUG=gctrace=1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$(cd "$ROOT/../shared/bench" && pwd)}
WHAT=${1:-all}
RUNS=${RUNS:-5}
RATE=${RATE:-2000}
RECORDS=${RECORDS:-20000}
SIZE=${SIZE:-1024}
PORT_BASE=${PORT_BASE:-29400}
OUT=${OUT:-$(mktemp -d /tmp/bench-single.XXXXXX)}
export BIN=$OUT/bin
mkdir -p "$BIN" /tmp/bench-c
source "$SHARED/lib.sh"
P_ALWAYS=$PORT_BASE; P_NEVER=$((PORT_BASE + 1)); P_KFAKE=$((PORT_BASE + 2)); P_ADMIN=$((PORT_BASE + 3))
PIDS=()
cleanup() { [ ${#PIDS[@]} = 0 ] || stop_pids "${PIDS[@]}"; }
trap cleanup EXIT

setup() { # build everything the runs use
  (cd "$ROOT" && go build -o "$BIN/sluice" ./cmd/sluice && go build -o "$BIN/fsynclat" ./scripts/fsynclat)
  if [ -n "${BASELINE:-}" ]; then
    rm -rf "$OUT/baseline-src"; mkdir -p "$OUT/baseline-src"
    (cd "$ROOT" && git archive "$BASELINE" | tar -x -C "$OUT/baseline-src")
    (cd "$OUT/baseline-src" && go build -o "$BIN/sluice-baseline" ./cmd/sluice)
  fi
  (cd "$SHARED/kbench" && go build -o "$BIN/kbench" .)
  (cd "$SHARED/kfakesrv" && go build -o "$BIN/kfakesrv" .)
}

start_sluice() { # name port fsync [more flags]
  local name=$1 port=$2 fsync=$3 bin=$BIN/sluice; shift 3
  [ "$name" = baseline ] && bin=$BIN/sluice-baseline
  rm -rf "$OUT/data-$name"; mkdir -p "$OUT/data-$name"
  GODEBUG=gctrace=1 "$bin" serve --data-dir "$OUT/data-$name" --listen 127.0.0.1:$port \
    --fsync "$fsync" --log-level warn "$@" > "$OUT/$name.log" 2>&1 &
  PIDS+=($!); eval "PID_$name=$!"
  wait_port "$port"
}

start_always() {
  start_sluice always $P_ALWAYS always --admin-listen 127.0.0.1:$P_ADMIN
  echo "sluice (fsync=always) on 127.0.0.1:$P_ALWAYS pid $PID_always; outputs in $OUT"
}

json() { grep '^{"tool"' "$1" | tail -n 1 | sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p"; }
med() { "$SHARED/stats.sh" 3; }

latency() {
  start_sluice never $P_NEVER never
  "$BIN/kfakesrv" -port $P_KFAKE > "$OUT/kfake.log" 2>&1 & PIDS+=($!); local kpid=$!
  wait_port $P_KFAKE
  local systems=(${FSYNC_MODES:-grow written fallocate} always never kfake) i k
  if [ -n "${BASELINE:-}" ]; then
    start_sluice baseline $((PORT_BASE + 5)) always
    systems+=(baseline)
  fi
  local n=${#systems[@]}
  for i in $(seq "$RUNS"); do
    for k in $(seq 0 $((n - 1))); do
      local sys=${systems[$(((i + k) % n))]} t=lat-$i-$RANDOM
      case $sys in
        grow|written|fallocate|keepsize)
          measure "$OUT/lat-$sys-$i" "" "$BIN/fsynclat" -dir "$OUT/data-always" -mode $sys \
            -size "$SIZE" -rate "$RATE" -n "$RECORDS" ;;
        always|never|kfake|baseline)
          local port=$P_ALWAYS pid=$PID_always
          [ $sys = never ] && port=$P_NEVER pid=$PID_never
          [ $sys = kfake ] && port=$P_KFAKE pid=$kpid
          [ $sys = baseline ] && port=$((PORT_BASE + 5)) pid=$PID_baseline
          measure "$OUT/lat-$sys-$i" "$pid" "$BIN/kbench" -brokers 127.0.0.1:$port -topic "$t" \
            -records "$RECORDS" -rate "$RATE" -size "$SIZE" -linger 0 -acks all -mode e2e-latency \
            || echo "$sys e2e run $i failed: $(tail -n 3 "$OUT/lat-$sys-$i")" ;;
      esac
    done
    echo "round $i done"
  done
  lat_summary
}

# lat_summary prints the latency figures of the runs in OUT: medians over all runs, then
# over the quiet runs only (other tenants burned less than QUIET_OTHER_S CPU seconds
# during the run; the machine is shared and one busy neighbour decides a p99).
lat_summary() {
  local q=${QUIET_OTHER_S:-1.0} sel f
  for sel in all quiet; do
    files() { # system -> its run files, all or quiet ones
      for f in "$OUT"/lat-$1-*; do
        [ -e "$f" ] || continue
        if [ $sel = quiet ]; then
          awk -v o="$(cpuf other_cpu_s "$f")" -v q="$q" 'BEGIN { exit !(o != "" && o < q) }' || continue
        fi
        echo "$f"
      done
    }
    echo
    if [ $sel = all ]; then echo "== all runs"; else echo "== quiet runs only (other tenants < $q CPU s during the run)"; fi
    echo "e2e latency, $RECORDS records x $SIZE B at $RATE/s, linger 0, acks=all; medians (min-max) n=runs, ms"
    local sys
    for sys in always ${BASELINE:+baseline} never kfake; do
      printf '%-22s p50 %-26s p99 %-26s p99.9 %s\n' "$(case $sys in always) echo 'sluice fsync=always';;
        baseline) echo "baseline ${BASELINE:-}";; never) echo 'sluice fsync=never';; kfake) echo 'kfake (client floor)';; esac)" \
        "$(for f in $(files $sys); do json "$f" p50_ms; done | med)" \
        "$(for f in $(files $sys); do json "$f" p99_ms; done | med)" \
        "$(for f in $(files $sys); do json "$f" p999_ms; done | med)"
      printf '%-22s ack p50 %-22s ack p99 %s\n' "" \
        "$(for f in $(files $sys); do json "$f" ack_p50_ms; done | med)" \
        "$(for f in $(files $sys); do json "$f" ack_p99_ms; done | med)"
    done
    echo "disk: write+fdatasync of $SIZE B at $RATE/s, fdatasync alone, ms"
    for sys in ${FSYNC_MODES:-grow written fallocate}; do
      printf '%-22s p50 %-26s p99 %-26s p99.9 %s\n' "fdatasync $sys" \
        "$(for f in $(files $sys); do json "$f" sync_p50_ms; done | med)" \
        "$(for f in $(files $sys); do json "$f" sync_p99_ms; done | med)" \
        "$(for f in $(files $sys); do json "$f" sync_p999_ms; done | med)"
    done
  done
  echo
  echo "noise: other tenants' CPU seconds per run (median): $(cpuf other_cpu_s "$OUT"/lat-* | "$SHARED/stats.sh" 1)"
  local name
  for name in always ${BASELINE:+baseline}; do
    [ -e "$OUT/$name.log" ] && echo "sluice $name: $(grep -c '^gc ' "$OUT/$name.log" || true) GC cycles in the whole session (GODEBUG=gctrace=1 in $OUT/$name.log)"
  done
}

throughput() {
  for size in 1024 100; do
    echo "== compare.sh size $size (RUNS=$RUNS)"
    RUNS=$RUNS BROKER_PID=$PID_always KFAKE_PORT=$((PORT_BASE + 4)) \
      "$SHARED/compare.sh" 127.0.0.1:$P_ALWAYS $size ${TP_RECORDS:-}
  done
}

case $WHAT in
  latency) setup; start_always; latency ;;
  summary) lat_summary ;;
  throughput) setup; start_always; throughput ;;
  all) setup; start_always; latency; throughput ;;
  *) echo "usage: $0 [latency|throughput|all]" >&2; exit 2 ;;
esac
