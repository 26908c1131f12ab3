#!/usr/bin/env bash
# HTTP/1.1 keep-alive cost per request: regbench vs wrk (and hey, h2load --h1, oha when installed)
# against nginx on loopback (13-byte body). Generators pinned to CPU 0 with one thread, nginx to CPU 1.
# Runs alternate between tools; the table shows medians. Usage: bench/compare.sh [RUNS] [SECONDS] [CONNS]
# REGBENCH_BASELINE=/path/to/an/older/regbench adds it as tool "baseline" (a before/after check).
source "$(dirname "$0")/lib.sh"
runs=${1:-5}; secs=${2:-5}; conns=${3:-50}
build_regbench
need wrk wrk
port=$(free_port)
start_nginx "$port"
url="http://127.0.0.1:$port/"

tools=(regbench wrk)
[[ -n ${REGBENCH_BASELINE:-} ]] && tools+=(baseline)
command -v hey >/dev/null && tools+=(hey)
command -v h2load >/dev/null && tools+=(h2load)
command -v oha >/dev/null && tools+=(oha)

# run_tool TOOL OUTFILE: runs one measurement and prints the number of requests completed.
run_tool() {
  local tool=$1 out=$2
  case $tool in
    regbench|baseline)
      local bin=$REGBENCH
      [[ $tool == baseline ]] && bin=$REGBENCH_BASELINE
      taskset -c 0 "$bin" run "$url" -c "$conns" -z "${secs}s" --threads 1 --quiet -o "json=$out.json" >/dev/null
      python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["overall"]["status_codes"]["200"])' "$out.json" ;;
    wrk)
      taskset -c 0 wrk -t1 -c"$conns" -d"${secs}s" "$url" > "$out.txt"
      awk '/requests in/ {print $1}' "$out.txt" ;;
    hey)
      GOMAXPROCS=1 taskset -c 0 hey -z "${secs}s" -c "$conns" "$url" > "$out.txt"
      awk '/\[200\]/ {print $2}' "$out.txt" ;;
    h2load)
      taskset -c 0 h2load --h1 -t1 -c "$conns" -D "$secs" "$url" > "$out.txt"
      awk '/^requests:/ {print $8}' "$out.txt" ;;
    oha)
      taskset -c 0 oha -z "${secs}s" -c "$conns" --no-tui --output-format json "$url" > "$out.json"
      python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["statusCodeDistribution"]["200"])' "$out.json" ;;
  esac
}

REGBENCH_BASELINE=${REGBENCH_BASELINE:-}
bench_runs "$runs" "url conns secs REGBENCH REGBENCH_BASELINE" "${tools[@]}"
bench_table wrk "${tools[@]}"
echo "(medians of $runs alternating runs, ${secs}s each, $conns connections; generator on CPU 0, nginx on CPU 1)"
