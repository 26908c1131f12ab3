#!/usr/bin/env bash
# What watching the target costs the generator: 4 PIDs (two docker-registry, two `regbench serve`)
# and 2 scrapes (the registries' debug /metrics, default series plus a histogram), one sample a
# second, beside a light load. The watching thread measures its own CPU (CLOCK_THREAD_CPUTIME_ID);
# the run's JSON reports it as target.cost. Target: < 1% of a core.
# Usage: bench/watch-cost.sh [SECONDS] [RUNS]
source "$(dirname "$0")/lib.sh"
secs=${1:-30}
runs=${2:-3}
need docker-registry docker-registry
build_regbench

# Each sets REPLY_* (no subshell: the started PIDs must reach lib.sh's cleanup).
start_registry() {  # → REPLY_PID REPLY_PORT REPLY_DEBUG
  local port debug dir
  port=$(free_port); debug=$(free_port); dir=$(mktemp -d "$WORK/reg.XXXX")
  cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/data}}
http: {addr: 127.0.0.1:$port, debug: {addr: 127.0.0.1:$debug, prometheus: {enabled: true, path: /metrics}}}
EOF
  taskset -c 1 docker-registry serve "$dir/config.yml" >/dev/null 2>&1 &
  PIDS+=($!)
  REPLY_PID=$! REPLY_PORT=$port REPLY_DEBUG=$debug
  wait_port "$port"; wait_port "$debug"
}
start_serve() {  # → REPLY_PID
  local port; port=$(free_port)
  taskset -c 1 "$REGBENCH" serve --addr "127.0.0.1:$port" >/dev/null 2>&1 &
  PIDS+=($!)
  REPLY_PID=$!
  wait_port "$port"
}

start_registry; r1=$REPLY_PID p1=$REPLY_PORT d1=$REPLY_DEBUG
start_registry; r2=$REPLY_PID d2=$REPLY_DEBUG
start_serve; s1=$REPLY_PID
start_serve; s2=$REPLY_PID

for i in $(seq "$runs"); do
  taskset -c 0 "$REGBENCH" run "http://127.0.0.1:$p1/v2/" --rate 50 -z "${secs}s" -c 4 --threads 1 \
    --watch-pid "reg1=$r1" --watch-pid "reg2=$r2" --watch-pid "serve1=$s1" --watch-pid "serve2=$s2" \
    --scrape "reg1=http://127.0.0.1:$d1/metrics" --scrape "reg2=http://127.0.0.1:$d2/metrics" \
    --scrape-metric go_goroutines --scrape-metric process_resident_memory_bytes \
    --scrape-metric registry_http_request_duration_seconds \
    --scrape-metric 'registry_http_requests_total{method="get"}' \
    -o "json=$WORK/run$i.json" --quiet >/dev/null
  python3 - "$WORK/run$i.json" "$i" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["target"]["cost"]
gen = r["generator"]["process_cpu_ns"] / 1e9
points = sum(len(s["points"]) for s in r["target"]["series"])
print(f"run {sys.argv[2]}: watching {c['cpu_s']*1000:.1f} ms CPU over {c['elapsed_s']:.1f} s = "
      f"{100*c['share_of_core']:.3f}% of a core ({len(r['target']['series'])} series, {points} points); "
      f"whole generator process {gen:.2f} CPU-s")
PY
done
