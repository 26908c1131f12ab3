#!/usr/bin/env bash
# Memory per connection: N keep-alive connections held at a low rate (closed model, think time) against
# nginx, peak RSS vs a 10-connection baseline. Target: ≤ 8 KiB per connection.
# Usage: bench/connections.sh [N] [SECONDS] [RUNS]
source "$(dirname "$0")/lib.sh"
n=${1:-10000}; secs=${2:-10}; runs=${3:-3}
build_regbench
port=$(free_port)
start_nginx "$port"
rss() {  # rss CONNECTIONS → peak RSS in KiB (and checks every connection was opened)
  local out=$WORK/c$1.json
  taskset -c 0 "$REGBENCH" run "http://127.0.0.1:$port/" -c "$1" -z "${secs}s" --think 2s --threads 1 \
    --timeout 30s --quiet -o "json=$out" >/dev/null
  python3 - "$out" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); o = r["overall"]
assert o["connections"]["new"] >= int(sys.argv[2]), f'only {o["connections"]["new"]} connections opened'
assert o["errors_total"] == 0, o["errors"]
print(r["generator"]["max_rss_bytes"] // 1024)
PY
}
for ((r = 1; r <= runs; r++)); do
  base=$(rss 10); big=$(rss "$n")
  echo "$base $big" >> "$WORK/rows"
  awk -v b="$base" -v g="$big" -v n="$n" 'BEGIN { printf "run: baseline %d KiB, %d connections %d KiB → %.2f KiB per connection\n", b, n, g, (g - b) / n }'
done
per=$(awk -v n="$n" '{print ($2 - $1) / n}' "$WORK/rows" | median)
echo "median: $per KiB per connection above the baseline ($n connections, think 2s, ${secs}s, 1 thread)"
