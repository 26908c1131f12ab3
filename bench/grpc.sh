#!/usr/bin/env bash
# gRPC unary cost per call: regbench (grpc://, its own HTTP/2 client) vs h2load sending the same
# framed protobuf request on the same HTTP/2 path, against the demo target's
# regbench.demo.v1.Registry/Lookup (`regbench serve`, one thread on CPU 1). Both generators with one
# thread on CPU 0, CONNS connections × STREAMS concurrent streams; runs alternate; medians.
# h2load counts HTTP 200s (it does not read grpc-status); regbench counts gRPC OKs.
# Usage: bench/grpc.sh [RUNS] [SECONDS] [CONNS] [STREAMS]
source "$(dirname "$0")/lib.sh"
runs=${1:-5}; secs=${2:-5}; conns=${3:-10}; streams=${4:-10}
build_regbench
need h2load nghttp2-client
port=$(free_port)
taskset -c 1 "$REGBENCH" serve --addr "127.0.0.1:$port" --threads 1 >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$port"
method=regbench.demo.v1.Registry/Lookup
url="http://127.0.0.1:$port/$method"
proto=$ROOT/proto/registry.proto
json='{"name":"io.example.demo/server-0001"}'
# The same request h2load sends: LookupRequest{name} in gRPC's length-prefixed framing.
MSG=$WORK/lookup.bin
python3 - "$MSG" <<'PY'
import sys
name = b"io.example.demo/server-0001"
msg = b"\x0a" + bytes([len(name)]) + name
open(sys.argv[1], "wb").write(b"\x00" + len(msg).to_bytes(4, "big") + msg)
PY

run_tool() {
  local tool=$1 out=$2
  case $tool in
    regbench)
      taskset -c 0 "$REGBENCH" run "grpc://127.0.0.1:${url#http://127.0.0.1:}" --proto "$proto" -d "$json" \
        -c "$conns" --streams "$streams" -z "${secs}s" --threads 1 --quiet -o "json=$out.json" >/dev/null
      python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["overall"]["grpc_status"]["OK"])' "$out.json" ;;
    h2load)
      taskset -c 0 h2load -t1 -c "$conns" -m "$streams" -D "$secs" -d "$MSG" \
        -H 'content-type: application/grpc' -H 'te: trailers' "$url" > "$out.txt"
      awk '/^status codes:/ {print $3}' "$out.txt" ;;
  esac
}

bench_runs "$runs" "url proto json conns streams secs REGBENCH MSG" regbench h2load
bench_table h2load regbench h2load
echo "(medians of $runs alternating runs, ${secs}s each, $conns connections × $streams streams, h2c; generator on CPU 0, regbench serve on CPU 1)"
