#!/usr/bin/env bash
# The open model's cost per request against its peers: regbench (default timer slack, and a coarser
# one), wrk2 (-R) and oha (-q --latency-correction), side by side at fixed rates against nginx,
# alternating, medians. Per run: CPU-s (user + sys, GNU time, whole process) per 100k requests, the
# achieved rate's error, regbench's schedule lag p99 (the peers do not report one), latency p50.
# Usage: bench/open-cost.sh [SECONDS] [RUNS] [RATES]   (default: 10 5 "5000 20000 50000")
# REGBENCH_BASELINE=/path/to/an/older/regbench adds it as tool "baseline".
source "$(dirname "$0")/lib.sh"
secs=${1:-10}; runs=${2:-5}; rates=${3:-"5000 20000 50000"}
PEERS=$ROOT/../shared/peers
[[ -x $PEERS/wrk2 && -x $PEERS/oha ]] || { echo "bench: $PEERS/wrk2 and $PEERS/oha are needed" >&2; exit 1; }
build_regbench
port=$(free_port)
start_nginx "$port"
url="http://127.0.0.1:$port/"
tools=(regbench regbench-200us wrk2 oha)
[[ -n ${REGBENCH_BASELINE:-} ]] && tools+=(baseline)

# run_tool TOOL RATE CONNS OUT: runs it pinned to CPU 0, prints "requests rate_err% lag_p99_us latency_p50_us".
run_tool() {
  local tool=$1 rate=$2 conns=$3 out=$4
  case $tool in
    regbench | regbench-200us | baseline)
      local bin=$REGBENCH slack=()
      [[ $tool == baseline ]] && bin=$REGBENCH_BASELINE
      [[ $tool == regbench-200us ]] && slack=(--timer-slack 200us)
      taskset -c 0 "$bin" run "$url" --rate "$rate" -z "${secs}s" -c "$conns" --threads 1 "${slack[@]}" \
        --quiet -o "json=$out.json" >/dev/null
      python3 - "$out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); o = r["overall"]; op = r["run"]["scenarios"][0]["open"]
print(o["requests"], 100 * (op["achieved_rps"] - op["offered_rps"]) / op["offered_rps"],
      o["lag"]["p99_ns"] / 1000, o["latency"]["p50_ns"] / 1000)
PY
      ;;
    wrk2)
      taskset -c 0 "$PEERS/wrk2" -t1 -c "$conns" -d "${secs}s" -R "$rate" --latency "$url" > "$out.txt"
      python3 - "$out.txt" "$rate" <<'PY'
import re, sys
t = open(sys.argv[1]).read(); rate = float(sys.argv[2])
n = int(re.search(r"(\d+) requests in", t).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
v, unit = re.search(r"50\.000%\s+([\d.]+)(us|ms|s)", t).groups()
p50 = float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
print(n, 100 * (rps - rate) / rate, "nan", p50)
PY
      ;;
    oha)
      taskset -c 0 "$PEERS/oha" -q "$rate" --latency-correction -c "$conns" -z "${secs}s" --no-tui \
        --output-format json "$url" > "$out.json"
      python3 - "$out.json" "$rate" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); rate = float(sys.argv[2])
n = sum(d["statusCodeDistribution"].values())
print(n, 100 * (d["summary"]["requestsPerSec"] - rate) / rate, "nan", d["latencyPercentiles"]["p50"] * 1e6)
PY
      ;;
  esac
}

for rate in $rates; do
  conns=50; ((rate > 20000)) && conns=100
  for ((r = 1; r <= runs; r++)); do
    for tool in "${tools[@]}"; do
      out=$WORK/$tool-$rate-$r
      /usr/bin/time -f '%U %S' -o "$out.time" bash -c "$(declare -f run_tool); $(declare -p url secs REGBENCH PEERS);
        REGBENCH_BASELINE='${REGBENCH_BASELINE:-}' run_tool $tool $rate $conns $out" > "$out.res"
      read -r user sys < "$out.time"
      read -r n err lag p50 < "$out.res"
      awk -v t="$tool" -v R="$rate" -v n="$n" -v u="$user" -v s="$sys" -v e="$err" -v l="$lag" -v p="$p50" \
        'BEGIN { printf "%s %s %.4f %.4f %s %.1f\n", t, R, (u + s) / n * 1e5, e, l, p }' >> "$WORK/rows"
    done
  done
done

printf '\n%-15s %7s %14s %12s %11s %11s %10s\n' tool rate cpu_s/100k vs_wrk2 rate_err% lag_p99 lat_p50
for rate in $rates; do
  ref=$(awk -v R="$rate" '$1 == "wrk2" && $2 == R {print $3}' "$WORK/rows" | median)
  for tool in "${tools[@]}"; do
    col() { awk -v t="$tool" -v R="$rate" -v c="$1" '$1 == t && $2 == R {print $c}' "$WORK/rows" | median; }
    cpu=$(col 3); err=$(col 4); lag=$(col 5); p50=$(col 6)
    lagf=$( [[ $lag == nan ]] && echo "–" || printf '%.0fµs' "$lag")
    printf '%-15s %7s %14.3f %11.2fx %11.3f %11s %8.0fµs\n' "$tool" "$rate" "$cpu" \
      "$(awk -v a="$cpu" -v b="$ref" 'BEGIN {print a / b}')" "$err" "$lagf" "$p50"
  done
done
echo "(medians of $runs alternating runs of ${secs}s each; generator on CPU 0 with one thread, nginx on CPU 1;"
echo " -c 50 up to 20k/s, -c 100 above; CPU = user + sys of the whole process per 100k requests)"
