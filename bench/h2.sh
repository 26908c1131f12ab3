#!/usr/bin/env bash
# HTTP/2 cost per request: regbench --h2c vs h2load (Debian nghttp2-client) against nginx's h2c
# listener on loopback (13-byte body). Both with one thread on CPU 0, CONNS connections × STREAMS
# concurrent streams; nginx on CPU 1. Runs alternate between the tools; the table shows medians.
# Usage: bench/h2.sh [RUNS] [SECONDS] [CONNS] [STREAMS]
source "$(dirname "$0")/lib.sh"
runs=${1:-5}; secs=${2:-5}; conns=${3:-10}; streams=${4:-10}
build_regbench
need h2load nghttp2-client
port=$(free_port)
start_nginx "$port" http2
url="http://127.0.0.1:$port/"
tools=(regbench h2load)

# run_tool TOOL OUTFILE: runs one measurement and prints the number of 2xx responses.
run_tool() {
  local tool=$1 out=$2
  case $tool in
    regbench)
      taskset -c 0 "$REGBENCH" run "$url" --h2c -c "$conns" --streams "$streams" -z "${secs}s" --threads 1 --quiet -o "json=$out.json" >/dev/null
      python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["overall"]["connections"]["new"] == int(sys.argv[2]), r["overall"]["connections"]; print(r["overall"]["status_codes"]["200"])' "$out.json" "$conns" ;;
    h2load)
      # h2load speaks h2c with prior knowledge to http:// URLs.
      taskset -c 0 h2load -t1 -c "$conns" -m "$streams" -D "$secs" "$url" > "$out.txt"
      grep -q 'Application protocol: h2c' "$out.txt"
      awk '/^status codes:/ {print $3}' "$out.txt" ;;
  esac
}

bench_runs "$runs" "url conns streams secs REGBENCH" "${tools[@]}"
bench_table h2load "${tools[@]}"
echo "(medians of $runs alternating runs, ${secs}s each, $conns connections × $streams streams, h2c; generator on CPU 0, nginx on CPU 1)"
