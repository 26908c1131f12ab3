#!/usr/bin/env bash
# The truth case: does the open model report the latency a user of a stalling registry sees?
#
# Target: `regbench serve` on CPU 1, 2 ms per response and a 500 ms pause every 5 s (every response
# ready during a pause is held until it ends). Load: --rate 200 for SECS (a multiple of 5 s), on CPU 0.
# Ground truth: the same schedule replayed through a model of the target and the generator's
# connections (FIFO, N connections, 2 ms service, held until the pause ends), so both the ample case
# (no queueing) and the scarce one (requests wait for a connection) have exact expected percentiles.
# Three shapes, RUNS alternating runs each, medians:
#   ample   -c 200                      p95/p99/p99.9 should be within 5% of the truth
#   scarce  -c 20                       the same, with queueing after each pause
#   drops   -c 20 --max-lag 5ms         dropped requests: p95 and up must be censored ("≥"), never small
#
# Usage: bench/truth.sh [SECS=30] [RUNS=3]
source "$(dirname "$0")/lib.sh"
secs=${1:-30}
runs=${2:-3}
rate=200
build_regbench
port=$(free_port)
taskset -c 1 "$REGBENCH" serve --addr "127.0.0.1:$port" --latency 2ms --stall 500ms/5s >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$port"

# run SHAPE OUT ARGS...: one run, its JSON summarised as a row of $WORK/rows.
run() {
  local shape=$1 out=$2
  shift 2
  taskset -c 0 "$REGBENCH" run "http://127.0.0.1:$port/v2/" --rate "$rate" -z "${secs}s" --threads 1 \
    --quiet -o "json=$out" "$@" >/dev/null || true
  python3 - "$out" "$shape" >> "$WORK/rows" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); lat = r["overall"]["latency"]
cens = ",".join(q for q in ("p95", "p99", "p99.9") if q in lat["censored"]) or "-"
print(sys.argv[2], lat["p50_ns"] / 1e6, lat["p95_ns"] / 1e6, lat["p99_ns"] / 1e6, lat["p99_9_ns"] / 1e6,
      r["overall"]["dropped"], cens)
PY
}

# The ground truth for N connections: a uniform schedule at RATE for SECS against the pauses. The
# run's phase against the target's pauses is arbitrary; over whole periods of uniform arrivals it
# does not change the distribution (only which requests fall in a pause), so phase 0 stands for all.
truth() {
  python3 - "$rate" "$secs" "$1" <<'PY'
import heapq, sys
rate, secs, conns = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
svc, pause, period = 0.002, 0.5, 5.0
free = [0.0] * conns
lat = []
for n in range(int(rate * secs)):
    t = n / rate
    conn = heapq.heappop(free)
    ready = max(t, conn) + svc
    phase = ready % period
    done = ready + (pause - phase if phase < pause else 0.0)
    heapq.heappush(free, done)
    lat.append(done - t)
lat.sort()
q = lambda p: lat[max(0, int(-(-p * len(lat) // 1)) - 1)] * 1000
print(f"{q(0.5):.2f} {q(0.95):.1f} {q(0.99):.1f} {q(0.999):.1f}")
PY
}

for ((r = 1; r <= runs; r++)); do
  run ample "$WORK/ample-$r.json" -c 200
  run scarce "$WORK/scarce-$r.json" -c 20
  run drops "$WORK/drops-$r.json" -c 20 --max-lag 5ms
done

printf '\n%-8s %10s %10s %10s %10s %9s %16s\n' shape p50_ms p95_ms p99_ms p99.9_ms dropped censored
for shape in ample scarce drops; do
  cols=()
  for c in 2 3 4 5 6; do cols+=("$(awk -v s=$shape -v c=$c '$1 == s {print $c}' "$WORK/rows" | median)"); done
  cens=$(awk -v s=$shape '$1 == s {print $7}' "$WORK/rows" | sort | uniq -c | sort -rn | head -1 | awk '{print $2}')
  printf '%-8s %10.2f %10.1f %10.1f %10.1f %9.0f %16s\n' "$shape" "${cols[@]}" "$cens"
done
for c in 200 20; do
  printf '%-8s %s  (model, -c %s)\n' truth "$(truth "$c")" "$c"
done
echo "(medians of $runs alternating runs: --rate $rate for ${secs}s, target 2 ms + 500 ms pause every 5 s on CPU 1, generator on CPU 0)"
