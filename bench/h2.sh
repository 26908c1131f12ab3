#!/usr/bin/env bash
# HTTP/2 cost per request: regbench --h2c vs h2load (Debian nghttp2-client) against nginx's h2c
# listener on loopback (13-byte body). Both with one thread on CPU 0, CONNS connections × STREAMS
# concurrent streams; nginx on CPU 1. Runs alternate between the tools; the table shows medians.
# A second table shows nginx's CPU per request under each tool: when nginx is saturated, req/s is
# set by what each request costs the server, not the generator.
# Usage: bench/h2.sh [RUNS] [SECONDS] [CONNS] [STREAMS]
# REGBENCH_BASELINE=/path/to/an/older/regbench adds it as tool "baseline" (a before/after check).
source "$(dirname "$0")/lib.sh"
runs=${1:-5}; secs=${2:-5}; conns=${3:-10}; streams=${4:-10}
build_regbench
need h2load nghttp2-client
port=$(free_port)
start_nginx "$port" http2
url="http://127.0.0.1:$port/"
tools=(regbench h2load)
[[ -n ${REGBENCH_BASELINE:-} ]] && tools+=(baseline)
REGBENCH_BASELINE=${REGBENCH_BASELINE:-}
# nginx's worker (the master is the last started process): its user + sys clock ticks.
for _ in $(seq 50); do
  NGINX_WORKER=$(pgrep -P "${PIDS[-1]}" | head -1) && break
  sleep 0.1
done
[[ -n $NGINX_WORKER ]] || { echo "bench/h2.sh: cannot find nginx's worker process" >&2; exit 1; }
TICKS=$(getconf CLK_TCK)
SERVER_LOG=$WORK/server

# run_tool TOOL OUTFILE: runs one measurement and prints the number of 2xx responses; appends nginx's
# CPU microseconds per request during it to $SERVER_LOG. (bench_runs exports only this function.)
run_tool() {
  local tool=$1 out=$2 t0 t1 n
  t0=$(awk '{print $14 + $15}' "/proc/$NGINX_WORKER/stat")
  case $tool in
    regbench|baseline)
      local bin=$REGBENCH
      [[ $tool == baseline ]] && bin=$REGBENCH_BASELINE
      taskset -c 0 "$bin" run "$url" --h2c -c "$conns" --streams "$streams" -z "${secs}s" --threads 1 --quiet -o "json=$out.json" >/dev/null
      n=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["overall"]["connections"]["new"] == int(sys.argv[2]), r["overall"]["connections"]; print(r["overall"]["status_codes"]["200"])' "$out.json" "$conns") ;;
    h2load)
      # h2load speaks h2c with prior knowledge to http:// URLs.
      taskset -c 0 h2load -t1 -c "$conns" -m "$streams" -D "$secs" "$url" > "$out.txt"
      grep -q 'Application protocol: h2c' "$out.txt"
      n=$(awk '/^status codes:/ {print $3}' "$out.txt") ;;
  esac
  t1=$(awk '{print $14 + $15}' "/proc/$NGINX_WORKER/stat")
  awk -v t="$tool" -v d=$((t1 - t0)) -v hz="$TICKS" -v n="$n" 'BEGIN {printf "%s %.3f\n", t, d / hz / n * 1e6}' >> "$SERVER_LOG"
  echo "$n"
}

bench_runs "$runs" "url conns streams secs REGBENCH REGBENCH_BASELINE NGINX_WORKER TICKS SERVER_LOG" "${tools[@]}"
bench_table h2load "${tools[@]}"
printf '\n%-9s %22s\n' tool nginx_cpu_us_per_req
for tool in "${tools[@]}"; do
  printf '%-9s %22.2f\n' "$tool" "$(awk -v t="$tool" '$1 == t {print $2}' "$SERVER_LOG" | median)"
done
echo "(medians of $runs alternating runs, ${secs}s each, $conns connections × $streams streams, h2c; generator on CPU 0, nginx on CPU 1)"
