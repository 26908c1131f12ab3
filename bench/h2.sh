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

for ((r = 1; r <= runs; r++)); do
  for tool in "${tools[@]}"; do
    out=$WORK/$tool-$r
    /usr/bin/time -f '%e %U %S %M' -o "$out.time" bash -c "$(declare -f run_tool); $(declare -p url conns streams secs REGBENCH); run_tool $tool $out" > "$out.n"
    read -r wall user sys rss < "$out.time"
    n=$(cat "$out.n")
    awk -v n="$n" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" -v t="$tool" \
      'BEGIN { printf "%s %.0f %.4f %d %.0f\n", t, n / w, (u + s) / n * 1e5, m, n / (u + s) }' >> "$WORK/results"
  done
done

ref=$(awk '$1 == "h2load" {print $5}' "$WORK/results" | median)
printf '\n%-9s %12s %18s %14s %16s %12s\n' tool req/s cpu_s/100k_req peak_RSS_KiB req/cpu_s vs_h2load
for tool in "${tools[@]}"; do
  rps=$(awk -v t="$tool" '$1 == t {print $2}' "$WORK/results" | median)
  cpu=$(awk -v t="$tool" '$1 == t {print $3}' "$WORK/results" | median)
  rss=$(awk -v t="$tool" '$1 == t {print $4}' "$WORK/results" | median)
  eff=$(awk -v t="$tool" '$1 == t {print $5}' "$WORK/results" | median)
  printf '%-9s %12.0f %18.4f %14.0f %16.0f %11.2fx\n' "$tool" "$rps" "$cpu" "$rss" "$eff" "$(awk -v a="$eff" -v b="$ref" 'BEGIN {print a / b}')"
done
echo "(medians of $runs alternating runs, ${secs}s each, $conns connections × $streams streams, h2c; generator on CPU 0, nginx on CPU 1)"
