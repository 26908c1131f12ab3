#!/usr/bin/env bash
# Open-model accuracy at a fixed rate against nginx: achieved vs offered rate, schedule lag, latency vs
# service time, worker CPU. Compares the precise (timerfd) waiter with tokio's 1 ms timer
# (REGBENCH_TIMER=tokio) on the same build, alternating. Usage: bench/open.sh [RATE] [SECONDS] [RUNS]
source "$(dirname "$0")/lib.sh"
rate=${1:-20000}; secs=${2:-10}; runs=${3:-5}
build_regbench
port=$(free_port)
start_nginx "$port"
for ((r = 1; r <= runs; r++)); do
  for timer in precise tokio; do
    out=$WORK/open-$timer-$r.json
    REGBENCH_TIMER=$timer taskset -c 0 "$REGBENCH" run "http://127.0.0.1:$port/" --rate "$rate" -z "${secs}s" \
      -c 100 --threads 1 --quiet -o "json=$out" >/dev/null
    python3 - "$out" "$timer" >> "$WORK/rows" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); o = r["overall"]; op = r["run"]["scenarios"][0]["open"]
err = 100 * (op["achieved_rps"] - op["offered_rps"]) / op["offered_rps"]
cpu = r["generator"]["workers_cpu_ns"] / r["run"]["duration_ns"]
us = lambda d, q: d[q + "_ns"] / 1000  # the table is in microseconds
print(sys.argv[2], err, us(o["lag"], "p50"), us(o["lag"], "p99"), us(o["latency"], "p50"), us(o["latency"], "p99"),
      us(o["service_time"], "p50"), us(o["service_time"], "p99"), 100 * cpu)
PY
  done
done
printf '\n%-8s %10s %9s %9s %12s %12s %12s %12s %8s\n' waiter rate_err% lag_p50 lag_p99 latency_p50 latency_p99 service_p50 service_p99 cpu%
for timer in precise tokio; do
  cols=()
  for c in 2 3 4 5 6 7 8 9; do cols+=("$(awk -v t=$timer -v c=$c '$1 == t {print $c}' "$WORK/rows" | median)"); done
  printf '%-8s %10.3f %7.0fµs %7.0fµs %10.0fµs %10.0fµs %10.0fµs %10.0fµs %8.1f\n' "$timer" "${cols[@]}"
done
echo "(medians of $runs alternating runs: --rate $rate for ${secs}s, 100 connections, 1 thread on CPU 0, nginx on CPU 1)"
