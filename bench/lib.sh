# Shared helpers for the benchmark scripts in bench/. Source it; it needs bash.
# Targets run on loopback only; the target is pinned to CPU 1, generators to CPU 0.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
REGBENCH=${REGBENCH:-$ROOT/target/release/regbench}
WORK=$(mktemp -d /tmp/regbench-bench.XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need() {  # need BINARY DEBIAN-PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "bench: '$1' is missing; installing Debian package '$2'" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null
}

build_regbench() {
  [[ -x $REGBENCH && ${SKIP_BUILD:-} == 1 ]] && return 0
  (cd "$ROOT" && cargo build --release --quiet)
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {  # wait_port PORT
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# start_nginx PORT [http2]: one nginx worker pinned to CPU 1 answering every request with a 13-byte
# body; with "http2", the listener speaks HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
start_nginx() {
  need nginx nginx-light
  local port=$1 proto=${2:-} dir=$WORK/nginx
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
worker_cpu_affinity 10;
worker_rlimit_nofile 20000;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 19000; }
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 300s;
  client_body_temp_path $dir/body;
  default_type text/plain;
  server {
    listen 127.0.0.1:$port backlog=4096 $proto;
    location / { return 200 "hello, world\n"; }
  }
}
CONF
  taskset -c 1 nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
  PIDS+=($!)
  wait_port "$port"
}

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# bench_runs RUNS VARS TOOL...: RUNS rounds, each running every TOOL once in turn (alternating), through
# the calling script's `run_tool TOOL OUTFILE`, which prints the number of 2xx responses. VARS names the
# variables run_tool reads. Appends "tool req/s cpu_s_per_100k peak_rss_kib req_per_cpu_s" per run to
# $WORK/results (CPU = user + sys from GNU time).
bench_runs() {
  local runs=$1 vars=$2; shift 2
  local r tool out wall user sys rss n
  for ((r = 1; r <= runs; r++)); do
    for tool in "$@"; do
      out=$WORK/$tool-$r
      # shellcheck disable=SC2086
      /usr/bin/time -f '%e %U %S %M' -o "$out.time" bash -c "$(declare -f run_tool); $(declare -p $vars); run_tool $tool $out" > "$out.n"
      read -r wall user sys rss < "$out.time"
      n=$(cat "$out.n")
      awk -v n="$n" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" -v t="$tool" \
        'BEGIN { printf "%s %.0f %.4f %d %.0f\n", t, n / w, (u + s) / n * 1e5, m, n / (u + s) }' >> "$WORK/results"
    done
  done
}

# bench_table REF TOOL...: medians per tool from $WORK/results, requests per CPU-second as a ratio to REF.
bench_table() {
  local ref_tool=$1; shift
  local ref tool rps cpu rss eff
  ref=$(awk -v t="$ref_tool" '$1 == t {print $5}' "$WORK/results" | median)
  printf '\n%-9s %12s %18s %14s %16s %10s\n' tool req/s cpu_s/100k_req peak_RSS_KiB req/cpu_s "vs_$ref_tool"
  for tool in "$@"; do
    rps=$(awk -v t="$tool" '$1 == t {print $2}' "$WORK/results" | median)
    cpu=$(awk -v t="$tool" '$1 == t {print $3}' "$WORK/results" | median)
    rss=$(awk -v t="$tool" '$1 == t {print $4}' "$WORK/results" | median)
    eff=$(awk -v t="$tool" '$1 == t {print $5}' "$WORK/results" | median)
    printf '%-9s %12.0f %18.4f %14.0f %16.0f %9.2fx\n' "$tool" "$rps" "$cpu" "$rss" "$eff" "$(awk -v a="$eff" -v b="$ref" 'BEGIN {print a / b}')"
  done
}
