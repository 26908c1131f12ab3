#!/usr/bin/env bash
# Peak RSS of regbench for 100 thousand vs 10 million requests against nginx on loopback: memory must
# not grow with the number of requests (DESIGN.md §4). Usage: bench/memory.sh [LARGE_N]
source "$(dirname "$0")/lib.sh"
build_regbench
large=${1:-10000000}
port=$(free_port)
start_nginx "$port"
printf '%-12s %12s %10s %14s %12s\n' requests seconds req/s peak_rss_KiB series_rows
for n in 100000 "$large"; do
  out=$WORK/mem-$n.json
  taskset -c 0 "$REGBENCH" run "http://127.0.0.1:$port/" -c 50 -n "$n" --threads 1 --quiet -o "json=$out" >/dev/null
  python3 - "$out" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["overall"]["requests"] == int(sys.argv[2]), "not every request finished"
secs = r["run"]["duration_ns"] / 1e9
print(f'{sys.argv[2]:<12} {secs:12.1f} {r["overall"]["rps"]:10.0f} {r["generator"]["max_rss_bytes"]//1024:14d} {len(r["time_series"]):12d}')
PY
done
